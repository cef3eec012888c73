"""The From field's service calls: the public account switch, the From choices and the From check.
The rules themselves are the pure decisions of touchline.outbound.compose.senders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from touchline.inbound import repository as inbound_repository
from touchline.kit.errors import ConflictError, InvalidInputError, PermissionDeniedError
from touchline.outbound.compose import senders
from touchline.outbound.compose.senders import FromChoice, FromDecision, SenderAfterEdit, TeamUser
from touchline.outbound.from_field import repository
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission


@dataclass(frozen=True, slots=True)
class PublicAccountState:
    """What the Email tab and the API show about the caller's own public account usage."""

    switched_on: bool
    """The stored switch."""
    public: bool
    """Whether colleagues can send from the address now (the switch and every condition it needs)."""
    address: str
    may_switch_on: bool
    why_not: str | None
    """Why it cannot be switched on, when it cannot."""


@dataclass(frozen=True, slots=True)
class ComposeContext:
    """What the From rules need to know about the email being written."""

    company_id: uuid.UUID | None = None
    """Set for emails sent on behalf of a company: Account Owner is then a choice."""
    reply_to: uuid.UUID | None = None
    """The stored email being answered; None for a new email."""


def _me(session: Session, actor: Actor) -> TeamUser:
    """The acting user as the From rules see them; their permissions are the actor's, as of now."""
    if actor.user_id is None:
        raise InvalidInputError("the From field belongs to a user: act as one (for example --user)")
    user = workspace_service.get_user(session, actor, actor.user_id)
    me, _ = repository.team_user_of(session, user)
    return replace(me, may_email_on_behalf=actor.can(Permission.EMAIL_ON_MY_BEHALF))


def public_account_state(session: Session, actor: Actor) -> PublicAccountState:
    me = _me(session, actor)
    may_switch_on = senders.public_account_usage_change(me, me, turn_on=True)
    return PublicAccountState(
        switched_on=me.public_account_usage,
        public=me.offers_public_address,
        address=me.address,
        may_switch_on=may_switch_on.allowed,
        why_not=None if may_switch_on.allowed else may_switch_on.reason,
    )


def set_public_account_usage(
    session: Session, actor: Actor, user_id: uuid.UUID, *, turn_on: bool
) -> PublicAccountState:
    """Switches `user_id`'s public account usage; only that user may (SPEC §5), admins included."""
    me = _me(session, actor)
    target_user = workspace_service.get_user(session, actor, user_id)
    target = me if user_id == me.user_id else repository.team_user_of(session, target_user)[0]
    decision = senders.public_account_usage_change(me, target, turn_on=turn_on)
    if not decision.allowed:
        if target is not me or not me.may_email_on_behalf:
            raise PermissionDeniedError(decision.reason)
        raise ConflictError(decision.reason)  # no mailbox yet: connecting one fixes it
    if target_user.public_account_usage != turn_on:
        target_user.public_account_usage = turn_on
        workspace_service.record_audit(
            session, actor, "user.public_account_usage", "user", user_id, {"public": turn_on}
        )
        session.flush()
    return public_account_state(session, actor)


def _participants(session: Session, actor: Actor, context: ComposeContext) -> set[str] | None:
    if context.reply_to is None:
        return None
    email = inbound_repository.get_email(session, actor, context.reply_to)
    return repository.conversation_participants(session, email)


def _on_behalf_of_company(session: Session, actor: Actor, context: ComposeContext) -> bool:
    if context.company_id is None:
        return False
    workspace_service.get_company(session, actor, context.company_id)  # 404 unless in this workspace
    return True


def from_choices(session: Session, actor: Actor, context: ComposeContext) -> tuple[FromChoice, ...]:
    """Exactly the From choices the caller may pick for this email, in the order the page offers them."""
    actor.require(Permission.SEND_EMAIL)
    me = _me(session, actor)
    users = repository.team_users(session, actor.workspace_id)
    on_behalf = _on_behalf_of_company(session, actor, context)
    participants = _participants(session, actor, context)
    offered = senders.from_choices(me, users, on_behalf_of_company=on_behalf)
    if participants is None:
        return offered
    # A reply offers only what it may be sent from: public addresses already in the conversation.
    return tuple(
        choice
        for choice in offered
        if senders.check_from(
            choice.key, me, users, on_behalf_of_company=on_behalf, reply_participants=participants
        ).allowed
    )


def check_from(session: Session, actor: Actor, requested: str, context: ComposeContext) -> FromDecision:
    """May the caller send this email from `requested` (an address or "account-owner")? The reason
    says why not, in words for the person composing."""
    actor.require(Permission.SEND_EMAIL)
    return senders.check_from(
        requested,
        _me(session, actor),
        repository.team_users(session, actor.workspace_id),
        on_behalf_of_company=_on_behalf_of_company(session, actor, context),
        reply_participants=_participants(session, actor, context),
    )


def sender_after_edit(session: Session, actor: Actor, current: str) -> SenderAfterEdit:
    """The sender a scheduled email keeps when the caller edits it: kept while it is one of the
    caller's From choices, otherwise the first choice, with the notice the editor is shown."""
    actor.require(Permission.SEND_EMAIL)
    return senders.sender_after_edit(
        current, _me(session, actor), repository.team_users(session, actor.workspace_id)
    )
