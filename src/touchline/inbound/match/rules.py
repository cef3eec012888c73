"""The keep-or-ignore rules of SPEC §2 (synced mail) and §4 (logged mail), as ordered data.

Each rule is a small pure predicate over a `MatchContext`; the first that hits decides, and what it
returns is the reason shown to people. Everything a rule needs about each participant is worked out
once, beforehand, in `assess`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from touchline.inbound.directory import Standing
from touchline.inbound.match.model import Action, ParticipantMatch, Role


@dataclass(frozen=True, slots=True)
class MatchContext:
    """One message as the rules see it: the From participant and every participant, assessed.

    `considered` leaves out blocklisted participants, which the rules disregard; `matched` holds the
    participants that are contacts or at a company domain.
    """

    sender: str | None
    sender_standing: Standing | None
    participants: tuple[ParticipantMatch, ...]
    considered: tuple[ParticipantMatch, ...]
    matched: tuple[ParticipantMatch, ...]
    contact_creation_blocked_by: str | None
    """Why a domain match creates no contact: bulk mail, an automatic reply, or the setting is off."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A named predicate and the action it takes when it hits; `test` returns the reason, or None."""

    name: str
    action: Action
    test: Callable[[MatchContext], str | None]


def assess(
    address: str, standing: Standing, roles: tuple[Role, ...], *, apply_blocklist: bool
) -> ParticipantMatch:
    """What one participant is to the workspace; whether a contact gets created is decided later."""
    if apply_blocklist and standing.blocked_by is not None:
        return ParticipantMatch(address, roles, "blocklisted", None, f"blocklisted by {standing.blocked_by}")
    if standing.internal_by is not None:
        source = "a user" if standing.is_user else f"internal domain {standing.internal_by}"
        return ParticipantMatch(address, roles, "internal", None, f"internal ({source})")
    if standing.is_contact:
        company = standing.contact_company
        detail = f"contact of company {company}" if company else "contact without a company"
        return ParticipantMatch(address, roles, "contact", company, detail)
    if standing.domain_company is not None:
        detail = f"domain {standing.company_domain} of company {standing.domain_company}"
        return ParticipantMatch(address, roles, "company-domain", standing.domain_company, detail)
    if standing.free_mail_domain is not None:
        detail = f"free-mail domain {standing.free_mail_domain} and not a contact"
        return ParticipantMatch(address, roles, "free-mail", None, detail)
    return ParticipantMatch(address, roles, "unknown", None, "not a contact, and no company has its domain")


def _explain(matches: tuple[ParticipantMatch, ...]) -> str:
    return "; ".join(f"{match.address} ({match.detail})" for match in matches)


def _blocklisted_sender(context: MatchContext) -> str | None:
    standing = context.sender_standing
    if standing is None or standing.blocked_by is None:
        return None
    return f"From {context.sender} is blocklisted by {standing.blocked_by}"


def _no_participants(context: MatchContext) -> str | None:
    if context.considered:
        return None
    disregarded = len(context.participants)
    if disregarded:
        return f"no participant left: all {disregarded} are blocklisted"
    return "no readable From, To or Cc address"


def _all_internal(context: MatchContext) -> str | None:
    considered = context.considered
    if all(match.outcome == "internal" for match in considered):
        return f"all {len(considered)} participants are internal"
    return None


def _matched(context: MatchContext) -> str | None:
    matched = context.matched
    if not matched:
        return None
    reason = f"{len(matched)} of {len(context.participants)} participants matched: {_explain(matched)}"
    by_domain_only = [match.address for match in matched if match.outcome == "company-domain"]
    if by_domain_only and context.contact_creation_blocked_by is None:
        return f"{reason}; new contacts: {', '.join(by_domain_only)}"
    if by_domain_only:
        return f"{reason}; no contact created: {context.contact_creation_blocked_by}"
    return reason


def _no_match(context: MatchContext) -> str:
    external = [match for match in context.considered if match.outcome != "internal"]
    return f"no participant is a contact or at a company domain: {_explain(tuple(external))}"


def _sender_not_user(context: MatchContext) -> str | None:
    standing = context.sender_standing
    if standing is None:
        return "no readable From address; only users of the workspace may log mail"
    if not standing.is_user:
        return f"From {context.sender} is not a user of this workspace; only users may log mail"
    return None


def _unassigned(context: MatchContext) -> str:
    return "no participant is a contact or at a company domain; left for a user to assign"


SYNCED_RULES: tuple[Rule, ...] = (
    Rule("blocklisted-sender", "ignore", _blocklisted_sender),
    Rule("no-participants", "ignore", _no_participants),
    Rule("all-internal", "ignore", _all_internal),
    Rule("matched", "keep", _matched),
    Rule("no-match", "ignore", _no_match),
)
"""SPEC §2 rules 2-6 in order: the first rule that hits decides."""

LOGGED_RULES: tuple[Rule, ...] = (
    Rule("sender-not-user", "refuse", _sender_not_user),
    Rule("matched", "keep", _matched),
    Rule("unassigned", "unassigned", _unassigned),
)
"""SPEC §4: only a user may log mail; the blocklist and the all-internal rule do not apply."""
