"""Who an email may be sent from: the From field's choices and checks (SPEC §5), as pure decisions.

- A user's address is public only while the user has switched public account usage on, the user's
  role has `email_on_my_behalf` and the user has a connected mailbox; only the user may switch it.
- From offers the sender's own address, every public address and, for emails sent on behalf of a
  company (templates, playbooks, scheduled sends), "Account Owner" first.
- A reply may come from a public address only when that address is a participant of the
  conversation; a new email may come from any public address; another user's private address never.
- A scheduled email whose sender is no longer a choice when edited gets the first choice instead,
  and the editor is told.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from touchline.kit.addresses import InvalidAddressError, normalise_address

ACCOUNT_OWNER: Final = "account-owner"
"""The From choice that sends as the company's account owner, whoever that is at send time."""

ChoiceKind = Literal["account-owner", "own", "public"]


@dataclass(frozen=True, slots=True)
class TeamUser:
    """What the From rules need to know about a user; `address` is normalised."""

    user_id: uuid.UUID
    address: str
    name: str
    public_account_usage: bool = False
    may_email_on_behalf: bool = False
    has_mailbox: bool = False

    @property
    def offers_public_address(self) -> bool:
        """Public only while every condition for switching it on still holds."""
        return self.public_account_usage and self.may_email_on_behalf and self.has_mailbox


@dataclass(frozen=True, slots=True)
class FromChoice:
    kind: ChoiceKind
    key: str
    """ACCOUNT_OWNER or the normalised address: what a stored email keeps as its sender."""
    label: str
    user_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class FromDecision:
    allowed: bool
    reason: str
    choice: FromChoice | None = None


@dataclass(frozen=True, slots=True)
class SenderAfterEdit:
    """The sender a scheduled email keeps after an edit, and what the editor is told if it changed."""

    sender: FromChoice
    changed: bool
    notice: str | None = None


ACCOUNT_OWNER_CHOICE: Final = FromChoice("account-owner", ACCOUNT_OWNER, "Account Owner")


def public_account_usage_change(actor: TeamUser, target: TeamUser, *, turn_on: bool) -> Decision:
    """May `actor` switch `target`'s public account usage on or off?"""
    if actor.user_id != target.user_id:
        return Decision(
            False, "Only the user themself can change whether their address is public, admins included."
        )
    if not turn_on:
        return Decision(True, "Your address is no longer public.")
    if not target.may_email_on_behalf:
        return Decision(
            False,
            'Your role lacks the "Email on my behalf" permission; an admin can add it to your role.',
        )
    if not target.has_mailbox:
        return Decision(
            False,
            "Connect your mailbox first: colleagues can only send from an address touchline can send with.",
        )
    return Decision(True, "Colleagues can now send from your address.")


def _choice_for(user: TeamUser, composer: TeamUser) -> FromChoice:
    kind: ChoiceKind = "own" if user.user_id == composer.user_id else "public"
    label = f"{user.name} <{user.address}>" if user.name else user.address
    return FromChoice(kind, user.address, label, user.user_id)


def from_choices(
    composer: TeamUser, users: Sequence[TeamUser], *, on_behalf_of_company: bool
) -> tuple[FromChoice, ...]:
    """The From field's options, in order: Account Owner (company-level sends), the composer's own
    address, then every other public address by name."""
    choices: list[FromChoice] = [ACCOUNT_OWNER_CHOICE] if on_behalf_of_company else []
    choices.append(_choice_for(composer, composer))
    public = sorted(
        (user for user in users if user.offers_public_address and user.user_id != composer.user_id),
        key=lambda user: (user.name.casefold(), user.address),
    )
    choices.extend(_choice_for(user, composer) for user in public)
    return tuple(choices)


def _key(requested: str) -> str | None:
    if requested == ACCOUNT_OWNER:
        return ACCOUNT_OWNER
    try:
        return normalise_address(requested)
    except InvalidAddressError:
        return None


def check_from(
    requested: str,
    composer: TeamUser,
    users: Sequence[TeamUser],
    *,
    on_behalf_of_company: bool,
    reply_participants: Collection[str] | None = None,
) -> FromDecision:
    """May `composer` send from `requested` (an address or ACCOUNT_OWNER)?

    `reply_participants` are the addresses of the conversation being answered; None for a new email."""
    key = _key(requested)
    if key == ACCOUNT_OWNER:
        if on_behalf_of_company and reply_participants is None:
            return FromDecision(True, "Sent as the company's account owner.", ACCOUNT_OWNER_CHOICE)
        return FromDecision(False, "Account Owner can only send emails on behalf of a company.")
    owner = (
        composer if key == composer.address else next((user for user in users if user.address == key), None)
    )
    refusal = _refusal(requested, key, composer, owner, reply_participants)
    if refusal is not None or owner is None:
        return FromDecision(False, refusal or f"{requested!r} is not an email address.")
    if owner is composer:
        return FromDecision(True, "Sent from your own address.", _choice_for(composer, composer))
    return FromDecision(True, f"Sent from the public address {key}.", _choice_for(owner, composer))


def _refusal(
    requested: str,
    key: str | None,
    composer: TeamUser,
    owner: TeamUser | None,
    reply_participants: Collection[str] | None,
) -> str | None:
    if key is None:
        return f"{requested!r} is not an email address."
    if owner is None:
        return f"{key} is not the address of a user in this workspace."
    if owner is composer:
        return None  # one's own address: new email or reply alike
    if not owner.offers_public_address:
        return f"{key} is another user's private address: you can only send from public addresses."
    if reply_participants is not None and key not in {_key(address) for address in reply_participants}:
        return (
            f"{key} is not part of this conversation, so you cannot reply from it. "
            f"Forward the email to {key} first, then reply from there."
        )
    return None


def sender_after_edit(current: str, editor: TeamUser, users: Sequence[TeamUser]) -> SenderAfterEdit:
    """The sender of a scheduled email that `editor` is editing: kept while it is one of the editor's
    From choices, otherwise the first choice (Account Owner) with a notice saying why."""
    choices = from_choices(editor, users, on_behalf_of_company=True)
    key = _key(current)
    kept = next((choice for choice in choices if choice.key == key), None)
    if kept is not None:
        return SenderAfterEdit(kept, changed=False)
    first = choices[0]
    return SenderAfterEdit(
        first,
        changed=True,
        notice=(
            f"This email was to be sent from {current}, which is not one of your From choices "
            f"(it is not your address and not public), so it will now be sent from {first.label}."
        ),
    )
