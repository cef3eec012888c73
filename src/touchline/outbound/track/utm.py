"""UTM settings of a template or a send: which parameters, checked, and rendered for one recipient."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from touchline.kit.errors import InvalidInputError
from touchline.outbound.compose.merge import MergeContext
from touchline.outbound.compose.templates import RenderFailure, render_value
from touchline.outbound.track.links import UTM_KEYS

MAX_UTM_CHARS: Final = 200


def checked_utm(values: Mapping[str, str | None] | None) -> dict[str, str] | None:
    """The UTM parameters given (empty ones left out), or None when there are none."""
    kept = {key: value.strip() for key, value in (values or {}).items() if value and value.strip()}
    unknown = sorted(set(kept) - set(UTM_KEYS))
    if unknown:
        raise InvalidInputError(f"unknown UTM parameter {unknown[0]!r}; use {', '.join(UTM_KEYS)}")
    for key, value in kept.items():
        if len(value) > MAX_UTM_CHARS:
            raise InvalidInputError(f"{key} has at most {MAX_UTM_CHARS} characters")
    return kept or None


def rendered_utm(values: Mapping[str, str], context: MergeContext) -> dict[str, str]:
    """Each value's merge fields filled in for this recipient; raises InvalidInputError naming what
    cannot be."""
    rendered = {}
    for key, source in values.items():
        outcome = render_value(source, context)
        if isinstance(outcome, RenderFailure):
            raise InvalidInputError(f"{key}: {outcome}")
        if outcome:
            rendered[key] = outcome
    return rendered
