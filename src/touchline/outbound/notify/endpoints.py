"""JSON API for the caller's own notification settings and delivery log. Thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.outbound.notify import repository, service
from touchline.outbound.notify.schemas import DeliveryOut, NotificationSettingsIn, NotificationSettingsOut
from touchline.workspace.auth import ApiActor, AppSettings, Now, Sessions

router = APIRouter(prefix="/api/v1", tags=["notifications"])


@router.get("/me/notifications", summary="Your notification settings")
def read_notification_settings(
    request: Request, actor: ApiActor, sessions: Sessions, settings: AppSettings
) -> NotificationSettingsOut:
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        return NotificationSettingsOut.of(service.read_settings(session, actor, box, settings))


@router.put(
    "/me/notifications",
    summary="Change your notification settings",
    description="Only your own: nobody, admins included, changes another user's. Webhook URLs are "
    "checked before they are stored (https; no private, loopback or link-local addresses).",
)
def update_notification_settings(
    body: NotificationSettingsIn,
    request: Request,
    actor: ApiActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
) -> NotificationSettingsOut:
    assert actor.user_id is not None  # API tokens belong to users
    box: SecretBox = request.app.state.secret_box
    change = service.SettingsChange(
        kinds_by_channel=body.channels.model_dump(),
        slack_url=body.slack_url,
        webhook_url=body.webhook_url,
        coalesce_minutes=body.coalesce_minutes,
        generate_secret=body.generate_secret,
    )
    with session_scope(sessions) as session:
        updated, secret = service.update_settings(session, actor, box, settings, actor.user_id, change, now)
        return NotificationSettingsOut.of(updated, secret)


@router.get("/me/notifications/deliveries", summary="Your recent notification deliveries, newest first")
def list_notification_deliveries(
    actor: ApiActor,
    sessions: Sessions,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryOut]:
    assert actor.user_id is not None
    with session_scope(sessions) as session:
        rows = repository.recent_deliveries(session, actor.workspace_id, actor.user_id, limit)
        return [DeliveryOut.of(row) for row in rows]
