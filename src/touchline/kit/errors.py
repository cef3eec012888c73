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


class TooManyAttemptsError(TouchlineError):
    """Too many attempts in a short time; the message says how long to wait."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
