"""Profile > Notifications (settings, webhook secret, a test notification, the recent delivery log) and
the browser's notification stream. Thin.

The stream (`GET /notifications/stream`, server-sent events) reads the user's browser notifications
from the delivery log, so whichever API process a browser reaches serves it; each event's id is the
notification's id, and a reconnecting browser's Last-Event-ID resumes after it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError
from touchline.outbound.notify import CHANNELS, KINDS, messages, repository, service, tasks
from touchline.ui import check_csrf, flash, redirect, render
from touchline.workspace.auth import AppSettings, Now, PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

PAGE: Final = "/profile/notifications"
RECENT_DELIVERIES: Final = 25
POLL_SECONDS: Final = 1.0
"""How often the stream looks for new notifications."""
KEEP_ALIVE_SECONDS: Final = 15.0
STREAM_SECONDS: Final = 300.0
"""A stream ends after this long; the browser reconnects at once, resuming from its Last-Event-ID (the
login is checked again then)."""


def _page(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    *,
    typed: dict[str, Any] | None = None,
    secret: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    assert actor.user_id is not None
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        current = service.read_settings(session, actor, box, request.app.state.settings)
        deliveries = repository.recent_deliveries(
            session, actor.workspace_id, actor.user_id, RECENT_DELIVERIES
        )
        form = typed or {
            "kinds": {
                f"{channel}:{kind}" for channel, kinds in current.kinds_by_channel.items() for kind in kinds
            },
            "slack_url": "",
            "webhook_url": "",
            "coalesce_minutes": str(current.coalesce_minutes),
        }
        return render(
            request,
            "notifications.html",
            actor,
            {
                "settings": current,
                "deliveries": deliveries,
                "form": form,
                "secret": secret,
                "error": error,
                "channels": CHANNELS,
                "kinds": KINDS,
                "stream_after": _last_event_id(request.query_params.get("after")),
            },
            status_code=status,
        )


@router.get(PAGE, response_class=HTMLResponse)
def notifications_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    return _page(request, actor, sessions)


@router.post(PAGE, response_class=HTMLResponse)
def save_notifications(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf_token: Annotated[str, Form()],
    kinds: Annotated[list[str] | None, Form()] = None,
    slack_url: Annotated[str, Form()] = "",
    webhook_url: Annotated[str, Form()] = "",
    remove_slack: Annotated[str, Form()] = "",
    remove_webhook: Annotated[str, Form()] = "",
    coalesce_minutes: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    assert actor.user_id is not None
    chosen = set(kinds or [])
    typed = {
        "kinds": chosen,
        "slack_url": slack_url,
        "webhook_url": webhook_url,
        "coalesce_minutes": coalesce_minutes,
    }
    by_channel: dict[str, list[str]] = {channel: [] for channel in CHANNELS}
    for pair in chosen:
        channel, _, kind = pair.partition(":")
        by_channel.setdefault(channel, []).append(kind)
    try:
        minutes = int(coalesce_minutes) if coalesce_minutes.strip() else None
    except ValueError:
        return _page(
            request, actor, sessions, typed=typed, error="the window is a number of minutes", status=400
        )
    change = service.SettingsChange(
        kinds_by_channel=by_channel,
        slack_url="" if remove_slack else (slack_url if slack_url.strip() else None),
        webhook_url="" if remove_webhook else (webhook_url if webhook_url.strip() else None),
        coalesce_minutes=minutes,
    )
    try:
        with session_scope(sessions) as session:
            service.update_settings(
                session, actor, request.app.state.secret_box, settings, actor.user_id, change, now
            )
    except InvalidInputError as refused:
        return _page(request, actor, sessions, typed=typed, error=str(refused), status=400)
    flash(request, "Notification settings saved.")
    return redirect(PAGE)


@router.post(f"{PAGE}/secret", response_class=HTMLResponse)
def generate_secret(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf_token: Annotated[str, Form()],
) -> HTMLResponse:
    """A new signing secret, shown on this answer only (never put in a redirect or a cookie)."""
    check_csrf(request, csrf_token)
    assert actor.user_id is not None
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        current = service.read_settings(session, actor, box, settings)
        keep = service.SettingsChange(
            kinds_by_channel=current.kinds_by_channel,
            coalesce_minutes=current.coalesce_minutes,
            generate_secret=True,
        )
        _, secret = service.update_settings(session, actor, box, settings, actor.user_id, keep, now)
    return _page(request, actor, sessions, secret=secret)


@router.post(f"{PAGE}/test")
def send_test_notification(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf_token: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf_token)
    with session_scope(sessions) as session:
        created = tasks.send_test(session, actor, settings, now)
    others = [channel for channel in created if channel != "browser"]
    flash(
        request,
        "A test notification was sent"
        + (f" (also by {', '.join(others)}: see the log below)." if others else "."),
    )
    # The next page's stream starts just before the test notification, so that this page shows it.
    return redirect(f"{PAGE}?after={created['browser'] - 1}" if "browser" in created else PAGE)


def _last_event_id(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


@router.get("/notifications/stream")
async def notification_stream(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    last_event_id: Annotated[str | None, Header()] = None,
    after: str | None = None,
) -> StreamingResponse:
    assert actor.user_id is not None
    user_id = actor.user_id

    def latest() -> int:
        with session_scope(sessions) as session:
            return repository.latest_browser_id(session, actor.workspace_id, user_id)

    def newer(cursor: int) -> list[tuple[int, str]]:
        with session_scope(sessions) as session:
            rows = repository.browser_after(session, actor.workspace_id, user_id, cursor)
            return [
                (row.id, json.dumps(messages.as_json(service.notification_of(row)), ensure_ascii=False))
                for row in rows
            ]

    # A reconnecting browser names the last event it saw; a page may ask to start after a given one.
    resumed = _last_event_id(last_event_id)
    if resumed is None:
        resumed = _last_event_id(after)
    # A new stream starts after what is already there: a page load does not replay old notifications.
    cursor = resumed if resumed is not None else await run_in_threadpool(latest)

    async def events() -> AsyncIterator[str]:
        nonlocal cursor
        started = quiet_since = time.monotonic()
        yield f"retry: 3000\nid: {cursor}\n\n"
        while time.monotonic() - started < STREAM_SECONDS and not await request.is_disconnected():
            for notification_id, data in await run_in_threadpool(newer, cursor):
                cursor = notification_id
                quiet_since = time.monotonic()
                yield f"id: {notification_id}\nevent: notification\ndata: {data}\n\n"
            if time.monotonic() - quiet_since >= KEEP_ALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
