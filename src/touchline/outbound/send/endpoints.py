"""JSON API of the outbox: send (now or at a time), list, read, edit a scheduled email, cancel. Thin."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from touchline.db import session_scope
from touchline.outbound.send import service
from touchline.outbound.send.schemas import OutboundOut, RecipientIn, ScheduledChange, SendRequest
from touchline.outbound.track.utm import checked_utm
from touchline.workspace.auth import ApiActor, AppSettings, Now, Sessions

router = APIRouter(prefix="/api/v1", tags=["outbox"])


def _recipients(given: list[RecipientIn] | None) -> list[service.Recipient] | None:
    return None if given is None else [service.Recipient(r.address, r.name) for r in given]


@router.post(
    "/outbox",
    status_code=status.HTTP_201_CREATED,
    summary="Send an email now, or schedule it with send_at (needs send_email)",
    response_model_by_alias=True,
)
def send(
    body: SendRequest, actor: ApiActor, sessions: Sessions, settings: AppSettings, now: Now
) -> OutboundOut:
    draft = service.Draft(
        sender=body.sender,
        to=_recipients(body.to) or [],
        cc=_recipients(body.cc) or [],
        subject=body.subject,
        html=body.html,
        text=body.text,
        template_id=body.template_id,
        send_at=body.send_at,
        reply_to_email_id=body.in_reply_to_email_id,
        idempotency_key=body.idempotency_key,
        track_opens=body.track_opens,
        track_clicks=body.track_clicks,
        utm=checked_utm(body.utm.model_dump()) if body.utm is not None else None,
    )
    with session_scope(sessions) as session:
        return OutboundOut.of(service.send_email(session, actor, draft, settings=settings, now=now))


@router.get("/outbox", summary="Your outbound emails, newest first (every user's for admins)")
def list_outbox(actor: ApiActor, sessions: Sessions) -> list[OutboundOut]:
    with session_scope(sessions) as session:
        return [OutboundOut.of(row) for row in service.list_outbox(session, actor)]


@router.get("/outbox/{outbound_id}", summary="One outbound email and what became of it")
def read_outbound(outbound_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> OutboundOut:
    with session_scope(sessions) as session:
        return OutboundOut.of(service.get_outbound(session, actor, outbound_id))


@router.patch(
    "/outbox/{outbound_id}",
    summary="Edit a scheduled email; a From that is no longer yours to use falls back (see notice)",
)
def edit_scheduled(
    outbound_id: uuid.UUID,
    body: ScheduledChange,
    actor: ApiActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
) -> OutboundOut:
    changes = service.Changes(
        sender=body.sender,
        to=_recipients(body.to),
        cc=_recipients(body.cc),
        subject=body.subject,
        html=body.html,
        text=body.text,
        send_at=body.send_at,
    )
    with session_scope(sessions) as session:
        return OutboundOut.of(
            service.edit_scheduled(session, actor, outbound_id, changes, settings=settings, now=now)
        )


@router.post("/outbox/{outbound_id}/cancel", summary="Cancel an email that has not left yet")
def cancel(outbound_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> OutboundOut:
    with session_scope(sessions) as session:
        return OutboundOut.of(service.cancel(session, actor, outbound_id))
