"""JSON API: an editor clears a contact's unsubscribe. Thin; `unsubscribed_at` is on the contact."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from touchline.db import session_scope
from touchline.outbound.unsubscribe import service
from touchline.workspace.auth import ApiActor, Sessions
from touchline.workspace.schemas import ContactOut

router = APIRouter(prefix="/api/v1", tags=["contacts"])


@router.delete(
    "/contacts/{contact_id}/unsubscribe",
    summary="Clear a contact's unsubscribe",
    description="Bulk and sequence emails reach the contact again (for when they asked to hear from you).",
)
def clear_unsubscribe(contact_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> ContactOut:
    with session_scope(sessions) as session:
        return ContactOut.of(service.clear_unsubscribe(session, actor, contact_id))
