"""Bulk send decisions, free of I/O: whom a bulk send skips and why, which templates may go to many
people in one email, how the recipients of one email to all are split, and when a waiting send
continues."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, TypeVar
from zoneinfo import ZoneInfo

from jinja2 import Environment, TemplateSyntaxError, meta

from touchline.kit.addresses import InvalidAddressError, domain_of, normalise_address
from touchline.kit.zones import on_wall_clock
from touchline.outbound.compose.mime import (
    InvalidMessageError,
    refuse_header_injection,
    unsubscribe_url_problem,
)
from touchline.outbound.compose.templates import EmailTemplate
from touchline.outbound.compose.unsubscribes import unsubscribe_skip_reason

Mode = Literal["each", "one"]
MODES: Final[tuple[Mode, ...]] = ("each", "one")

_T = TypeVar("_T")
NO_MAIL_DOMAINS: Final = ("invalid", "localhost")
"""Names reserved so that no mail can reach them (RFC 6761 6.3, 6.4)."""
_PARSER: Final = Environment(autoescape=True)
"""Only parses (never renders): the sandbox renders, this finds the names a template reads."""


def skip_reason(
    address: str, unsubscribed_at: datetime | None, undeliverable_reason: str | None = None
) -> str | None:
    """Why a bulk send makes no email for this enduser, or None when it does: the enduser
    unsubscribed, their address bounced hard (`undeliverable_reason`, until an admin clears it), or
    it is one touchline cannot send to."""
    unsubscribed = unsubscribe_skip_reason("bulk", unsubscribed_at)
    if unsubscribed is not None:
        return unsubscribed
    if undeliverable_reason is not None:
        return f"undeliverable: {undeliverable_reason}"
    try:
        refuse_header_injection("the address", address)
        normalised = normalise_address(address)
    except (InvalidAddressError, InvalidMessageError) as error:
        return f"undeliverable: {error}"
    domain = domain_of(normalised)
    if any(domain == name or domain.endswith(f".{name}") for name in NO_MAIL_DOMAINS):
        return f"undeliverable: {domain} is a reserved domain that receives no mail (RFC 6761)"
    return None


def render_skip_reason(missing_fields: Sequence[str], problems: str) -> str:
    """A recipient the template cannot be rendered for gets nothing (never a half-rendered email)."""
    if missing_fields:
        return f"missing field{'s' if len(missing_fields) > 1 else ''}: {', '.join(missing_fields)}"
    return f"the template cannot be rendered for this enduser: {problems}"


def reads_enduser_fields(template: EmailTemplate) -> bool:
    """Does any part of the template read `enduser.*`? One email to all cannot be personal."""
    for source in (template.subject, template.html, template.text):
        if not source:
            continue
        try:
            names = meta.find_undeclared_variables(_PARSER.parse(source))
        except TemplateSyntaxError:
            return True  # stored templates parse; one that does not is not sent to many either
        if "enduser" in names:
            return True
    return False


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def continues_message(when: datetime, now: datetime, zone: ZoneInfo) -> str:
    """`continues at 14:05 Europe/Berlin` today, `continues tomorrow at 00:00 Europe/Berlin`, or the
    date when later: on the calendar and clock of the workspace's zone."""
    local, today = on_wall_clock(when, zone), on_wall_clock(now, zone).date()
    if local.date() <= today:
        return f"continues at {local:%H:%M} {zone.key}"
    if local.date() == today + timedelta(days=1):
        return f"continues tomorrow at {local:%H:%M} {zone.key}"
    return f"continues on {local:%Y-%m-%d} at {local:%H:%M} {zone.key}"


def unsubscribe_link_problem(base_url: str, mode: Mode) -> str | None:
    """Each personalised bulk email carries its enduser's one-click unsubscribe link under touchline's
    address, which RFC 8058 wants on https (plain http only on a loopback address)."""
    if mode == "each" and unsubscribe_url_problem(f"{base_url.rstrip('/')}/u/token") is not None:
        return (
            "each bulk email carries a one-click unsubscribe link, which must be an https address "
            f"(RFC 8058), and touchline's address is {base_url}; set TOUCHLINE_BASE_URL to its https address"
        )
    return None
