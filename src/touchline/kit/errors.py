"""Errors every layer raises and every edge translates (HTTP status, page message, CLI exit)."""

from __future__ import annotations


class TouchlineError(Exception):
    """Base class; the message is written for the person who will read it."""


class NotFoundError(TouchlineError):
    """Absent, or in another workspace: the two are never told apart."""


class PermissionDeniedError(TouchlineError):
    """The caller's role lacks a permission."""


class ConflictError(TouchlineError):
    """The change contradicts what is stored (a duplicate name, a domain owned elsewhere)."""


class InvalidInputError(TouchlineError):
    """The input cannot be used as given; the message says how to fix it."""
