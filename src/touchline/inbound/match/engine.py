"""Run a rule chain over one parsed message and turn the rule that hit into a `Decision`."""

from __future__ import annotations

from dataclasses import replace
from weakref import WeakKeyDictionary

from touchline.inbound.directory import Directory
from touchline.inbound.match.model import Decision, NewContact, ParticipantMatch, Role
from touchline.inbound.match.rules import LOGGED_RULES, SYNCED_RULES, MatchContext, Rule, assess
from touchline.inbound.parse.model import ParsedEmail
from touchline.kit.addresses import InvalidAddressError, name_from_address, normalise_address

_FROM, _TO, _CC = 1, 2, 4
_ROLE_BITS: tuple[tuple[int, Role], ...] = ((_FROM, "from"), (_TO, "to"), (_CC, "cc"))
_ROLES_BY_MASK: tuple[tuple[Role, ...], ...] = tuple(
    tuple(role for bit, role in _ROLE_BITS if mask & bit) for mask in range(8)
)
_MAX_REMEMBERED_ASSESSMENTS = 200_000
_MATCHING_OUTCOMES = frozenset({"contact", "company-domain"})

# An assessment depends only on the directory, the address, its roles and whether the blocklist
# applies; remembering it per directory generation turns most participants into one lookup.
_AssessmentKey = tuple[str, int, bool]
_assessments: WeakKeyDictionary[Directory, tuple[int, dict[_AssessmentKey, ParticipantMatch]]] = (
    WeakKeyDictionary()
)


def match(email: ParsedEmail, directory: Directory) -> Decision:
    """Keep or ignore a synced message (SPEC §2, rules 2-6)."""
    return run_rules(SYNCED_RULES, email, directory, apply_blocklist=True)


def match_logged(
    email: ParsedEmail,
    directory: Directory,
    log_address: str | None = None,
    *,
    contacts_blocked_by: str | None = None,
) -> Decision:
    """Link a message sent to the log address (SPEC §4): keep, "unassigned", or "refuse" a non-user.

    The log address itself is no participant: it is where the message was sent, not who it concerns.
    `contacts_blocked_by` says why this message may create no contacts (its sender may not edit
    customers); it is then linked to the companies whose domains match.
    """
    excluded: frozenset[str] = frozenset()
    if log_address:
        try:
            excluded = frozenset({normalise_address(log_address)})
        except InvalidAddressError:
            excluded = frozenset()
    return run_rules(
        LOGGED_RULES,
        email,
        directory,
        apply_blocklist=False,
        excluded=excluded,
        contacts_blocked_by=contacts_blocked_by,
    )


def run_rules(
    rules: tuple[Rule, ...],
    email: ParsedEmail,
    directory: Directory,
    *,
    apply_blocklist: bool,
    excluded: frozenset[str] = frozenset(),
    contacts_blocked_by: str | None = None,
) -> Decision:
    """The first rule of `rules` that hits decides; a chain should end with a rule that always hits."""
    participants = _assessed_participants(email, directory, apply_blocklist, excluded)
    considered: list[ParticipantMatch] = []
    matched: list[ParticipantMatch] = []
    for participant in participants:
        outcome = participant.outcome
        if outcome != "blocklisted":
            considered.append(participant)
            if outcome in _MATCHING_OUTCOMES:
                matched.append(participant)
    sender = email.from_[0].address if email.from_ else None
    context = MatchContext(
        sender=sender,
        sender_standing=directory.standing(sender) if sender is not None else None,
        participants=participants,
        considered=tuple(considered),
        matched=tuple(matched),
        contact_creation_blocked_by=_creation_blocked_by(email, directory) or contacts_blocked_by,
    )
    for rule in rules:
        reason = rule.test(context)
        if reason is not None:
            if rule.action == "keep":
                return _linked(rule, reason, context)
            return Decision(rule.action, rule.name, reason, matches=participants)
    raise ValueError("the rule chain ended without a decision; its last rule must always hit")


def _assessed_participants(
    email: ParsedEmail, directory: Directory, apply_blocklist: bool, excluded: frozenset[str]
) -> tuple[ParticipantMatch, ...]:
    """Each From, To and Cc address once, sorted, with the headers it is in (Bcc is not considered)."""
    masks: dict[str, int] = {}
    get = masks.get
    for bit, field in ((_FROM, email.from_), (_TO, email.to), (_CC, email.cc)):
        for mailbox in field:
            address = mailbox.address
            masks[address] = get(address, 0) | bit
    for address in excluded:
        masks.pop(address, None)
    generation = directory.generation
    remembered = _assessments.get(directory)
    if remembered is None or remembered[0] != generation or len(remembered[1]) > _MAX_REMEMBERED_ASSESSMENTS:
        remembered = (generation, {})
        _assessments[directory] = remembered
    known = remembered[1]
    assessed = []
    for address in sorted(masks):
        key = (address, masks[address], apply_blocklist)
        found = known.get(key)
        if found is None:
            roles = _ROLES_BY_MASK[key[1]]
            found = assess(address, directory.standing(address), roles, apply_blocklist=apply_blocklist)
            known[key] = found
        assessed.append(found)
    return tuple(assessed)


def _creation_blocked_by(email: ParsedEmail, directory: Directory) -> str | None:
    if email.bulk is not None:
        return f"bulk mail ({email.bulk})"
    if email.auto_reply is not None:
        return f"automatic reply ({email.auto_reply})"
    if not directory.create_contacts:
        return "creating contacts automatically is off"
    return None


def _linked(rule: Rule, reason: str, context: MatchContext) -> Decision:
    creates = context.contact_creation_blocked_by is None
    matches: list[ParticipantMatch] = []
    created: list[NewContact] = []
    companies: set[str] = set()
    contacts: list[str] = []
    for participant in context.participants:
        if participant.matched:
            if participant.company is not None:
                companies.add(participant.company)
            if participant.outcome == "contact":
                contacts.append(participant.address)
            elif creates and participant.company is not None:
                address = participant.address
                created.append(NewContact(address, name_from_address(address), participant.company))
                contacts.append(address)
                matches.append(replace(participant, created=True))
                continue
        matches.append(participant)
    return Decision(
        action=rule.action,
        rule=rule.name,
        reason=reason,
        companies=tuple(sorted(companies)),
        contacts=tuple(contacts),
        created_contacts=tuple(created),
        matches=tuple(matches),
    )
