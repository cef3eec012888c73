"""JSON API for the From field: the caller's public account switch, From choices and the From check. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from touchline.db import session_scope
from touchline.outbound.from_field import service
from touchline.outbound.from_field.schemas import (
    FromCheckIn,
    FromCheckOut,
    FromChoiceOut,
    FromChoicesOut,
    PublicAccountIn,
    PublicAccountOut,
)
from touchline.workspace.auth import ApiActor, Sessions

router = APIRouter(prefix="/api/v1", tags=["sending"])


@router.get("/profile/public-account", summary="Your public account usage")
def read_public_account(actor: ApiActor, sessions: Sessions) -> PublicAccountOut:
    with session_scope(sessions) as session:
        return PublicAccountOut.of(service.public_account_state(session, actor))


@router.put(
    "/profile/public-account",
    summary="Switch your public account usage",
    description="Needs the `email_on_my_behalf` permission and a connected mailbox to switch on.",
)
def update_public_account(body: PublicAccountIn, actor: ApiActor, sessions: Sessions) -> PublicAccountOut:
    assert actor.user_id is not None  # API tokens belong to users
    with session_scope(sessions) as session:
        state = service.set_public_account_usage(session, actor, actor.user_id, turn_on=body.public)
        return PublicAccountOut.of(state)


@router.put(
    "/users/{user_id}/public-account",
    summary="Switch a user's public account usage (only your own)",
    description="Only the user themself may switch it, admins included; anyone else gets 403.",
)
def update_users_public_account(
    user_id: uuid.UUID, body: PublicAccountIn, actor: ApiActor, sessions: Sessions
) -> PublicAccountOut:
    with session_scope(sessions) as session:
        return PublicAccountOut.of(
            service.set_public_account_usage(session, actor, user_id, turn_on=body.public)
        )


@router.get("/compose/from-choices", summary="The From choices for an email you are writing")
def read_from_choices(
    actor: ApiActor,
    sessions: Sessions,
    company_id: Annotated[
        uuid.UUID | None, Query(description="Set when sending on behalf of a company (offers Account Owner)")
    ] = None,
    reply_to: Annotated[
        uuid.UUID | None, Query(description="The id of the stored email being answered")
    ] = None,
) -> FromChoicesOut:
    with session_scope(sessions) as session:
        choices = service.from_choices(session, actor, service.ComposeContext(company_id, reply_to))
        return FromChoicesOut(choices=[FromChoiceOut.of(choice) for choice in choices])


@router.post("/compose/check-from", summary="May you send this email from this address?")
def check_from(body: FromCheckIn, actor: ApiActor, sessions: Sessions) -> FromCheckOut:
    with session_scope(sessions) as session:
        decision = service.check_from(
            session, actor, body.sender, service.ComposeContext(body.company_id, body.reply_to)
        )
        return FromCheckOut.of(decision)
