"""The user's Email tab and the admin's "Apply to all users" progress page. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError, TooManyAttemptsError
from touchline.mailboxes import oauth_connect, service
from touchline.mailboxes.connect import check_imap_login, smtp_connection
from touchline.mailboxes.providers.base import Folder
from touchline.mailboxes.schemas import ImapConnect
from touchline.models import User
from touchline.ui import (
    CheckedForm,
    check_csrf,
    field_errors,
    flash,
    local_time,
    redirect,
    render,
    request_zone,
    validation_messages,
)
from touchline.workspace.auth import AppSettings, Now, PageActor, Sessions
from touchline.workspace.permissions import Actor, Permission

router = APIRouter(include_in_schema=False)

EmailTabSection = Callable[[Session, Actor], dict[str, object]]
"""Adds a section's values to the Email tab. Features above this layer (the public account switch of
sending) are listed in the app's `email_tab_sections`, so this page needs no import of them."""


def _email_tab(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    error: str | None = None,
    status: int = 200,
    form: dict[str, str] | None = None,
    field_errors: dict[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> HTMLResponse:
    actor.require(Permission.EMAIL_SYNC)
    assert actor.user_id is not None
    with session_scope(sessions) as session:
        mailbox = service.mailbox_of_user(session, actor, actor.user_id)
        held = service.count_holdings(session, actor.workspace_id, actor.user_id)
        context: dict[str, object] = {
            "mailbox": mailbox,
            "held": held,
            "error": error,
            "form": form or {},
            "field_errors": field_errors or {},
            "folder_summary": service.health_summary(mailbox) if mailbox else None,
            "sending_allowed": (
                oauth_connect.sending_allowed(mailbox, request.app.state.secret_box) if mailbox else None
            ),
            "sync_progress": service.sync_progress(mailbox, now or datetime.now(UTC)) if mailbox else None,
            "demo_imap": _demo_imap(request.app.state.settings, session, actor.user_id),
            "stalled_since": service.sync_stalled_since(
                mailbox, now or datetime.now(UTC), service.stalled_after(request.app.state.settings)
            )
            if mailbox
            else None,
        }
        demo_imap = context["demo_imap"]
        if isinstance(demo_imap, DemoImap) and not form:
            context["form"] = demo_imap.form()
        sections: Sequence[EmailTabSection] = getattr(request.app.state, "email_tab_sections", ())
        for section in sections:
            context.update(section(session, actor))
        return render(request, "email_tab.html", actor, context, status_code=status)


@dataclass(frozen=True)
class DemoImap:
    """The mailbox `touchline demo` serves this user, which its Email page offers to connect."""

    host: str
    port: int
    username: str
    password: str | None
    smtp_port: int | None

    def form(self) -> dict[str, str]:
        form = {"host": self.host, "port": str(self.port), "security": "plain", "username": self.username}
        if self.smtp_port is not None:
            form |= {"smtp_host": self.host, "smtp_port": str(self.smtp_port), "smtp_security": "plain"}
        return form


def _demo_imap(settings: Settings, session: Session, user_id: uuid.UUID | None) -> DemoImap | None:
    if settings.demo_imap_port is None or user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None:
        return None
    return DemoImap(
        settings.demo_imap_host,
        settings.demo_imap_port,
        user.email,
        settings.demo_imap_passwords.get(user.email),
        # Under the demo, the relay is its sink, which takes the demo mailboxes' logins too.
        settings.relay_smtp_port if settings.relay_smtp_host == settings.demo_imap_host else None,
    )


@router.get("/profile/email", response_class=HTMLResponse)
def email_tab(request: Request, actor: PageActor, sessions: Sessions, now: Now) -> HTMLResponse:
    return _email_tab(request, actor, sessions, now=now)


@router.get("/profile/email/sync-progress")
def sync_progress(request: Request, actor: PageActor, sessions: Sessions, now: Now) -> dict[str, object]:
    """What the Email page refreshes its sync counts from while a sync runs."""
    actor.require(Permission.EMAIL_SYNC)
    assert actor.user_id is not None
    with sessions() as session:
        mailbox = service.mailbox_of_user(session, actor, actor.user_id)
        if mailbox is None:
            raise NotFoundError("no mailbox is connected")
        progress = service.sync_progress(mailbox, now)
    return {
        "state": progress.state,
        "checked": progress.checked,
        "kept": progress.kept,
        "ignored": progress.ignored,
        "quarantined": progress.quarantined,
        "last_synced_at": local_time(progress.last_synced_at, request_zone(request), "%Y-%m-%d %H:%M:%S %Z")
        if progress.last_synced_at
        else None,
    }


IMAP_FORM_FIELDS = ("host", "port", "security", "username", "smtp_host", "smtp_port", "smtp_security")
"""What the connect form shows again after a mistake (never the password)."""


def _imap_request(fields: dict[str, str]) -> ImapConnect:
    """The form checked by the API's own model, so both say the same about the same mistake; a blank
    optional field is "not given", as it is when the API's JSON leaves it out."""
    given = {name: value.strip() for name, value in fields.items() if name != "password" and value.strip()}
    if fields["password"]:
        given["password"] = fields["password"]  # as typed: spaces may be part of it
    return ImapConnect.model_validate(given)


@router.post("/profile/email/imap", response_class=HTMLResponse)
async def connect_imap(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    settings: AppSettings,
    now: Now,
    host: Annotated[str, Form()] = "",
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    security: Annotated[str, Form()] = "tls",
    port: Annotated[str, Form()] = "",
    smtp_host: Annotated[str, Form()] = "",
    smtp_port: Annotated[str, Form()] = "",
    smtp_security: Annotated[str, Form()] = "starttls",
) -> Response:
    # Async, so that the login check is awaited on threads of its own, not on one that serves requests.
    check_csrf(request, csrf_token)
    actor.require(Permission.EMAIL_SYNC)
    user_id = actor.user_id
    assert user_id is not None
    typed = {
        "host": host,
        "port": port,
        "security": security,
        "username": username,
        "smtp_host": smtp_host,
        "smtp_port": smtp_port,
        "smtp_security": smtp_security,
    }
    shown = {name: typed[name] for name in IMAP_FORM_FIELDS}

    def again(error: str, status: int, marked: dict[str, str] | None = None) -> HTMLResponse:
        return _email_tab(request, actor, sessions, error, status, shown, marked)

    try:
        body = _imap_request({**typed, "password": password})
    except ValidationError as invalid:
        errors = invalid.errors()
        return await run_in_threadpool(
            again, "; ".join(validation_messages(errors)), 422, field_errors(errors)
        )

    def count_attempt() -> None:
        with session_scope(sessions) as session:
            service.count_connect_attempt(session, actor, settings, now)

    try:
        await run_in_threadpool(count_attempt)
    except TooManyAttemptsError as refused:
        return await run_in_threadpool(again, str(refused), 429)
    connection: dict[str, Any] = {
        "host": body.host,
        "port": body.port,
        "security": body.security,
        "username": body.username,
        "smtp": smtp_connection(body.host, body.smtp_host, body.smtp_port, body.smtp_security),
    }
    box: SecretBox = request.app.state.secret_box

    def store(folders: list[Folder]) -> None:
        with session_scope(sessions) as session:
            service.connect_mailbox(
                session,
                actor,
                box,
                user_id=user_id,
                provider="imap",
                address=body.username,
                connection=connection,
                credentials={"password": body.password},
                folders=folders,
            )

    try:
        folders = await check_imap_login(connection, body.password, request.app.state.settings)
        await run_in_threadpool(store, folders)
    except (InvalidInputError, ConflictError) as error:
        return await run_in_threadpool(again, str(error), 400)
    flash(request, "Mailbox connected. Pick the folders to sync, then Update sync settings.")
    return redirect("/profile/email")


@router.post("/profile/email/folders", response_class=HTMLResponse)
def update_folders(request: Request, actor: PageActor, sessions: Sessions, form: CheckedForm) -> Response:
    try:
        selected = {uuid.UUID(str(value)) for value in form.getlist("folders")}
        mailbox_id = uuid.UUID(str(form.get("mailbox_id", "")))
    except ValueError:
        return _email_tab(request, actor, sessions, "the form was damaged; reload the page", 400)
    with session_scope(sessions) as session:
        service.select_folders(session, actor, mailbox_id, selected)
    flash(request, "Sync settings updated. New mail appears on customers' timelines within a minute.")
    return redirect("/profile/email")


@router.post("/profile/email/lookback", response_class=HTMLResponse)
def extend_lookback(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    mailbox_id: Annotated[uuid.UUID, Form()],
    lookback_days: Annotated[int, Form()],
) -> Response:
    check_csrf(request, csrf_token)
    try:
        with session_scope(sessions) as session:
            service.extend_lookback(session, actor, mailbox_id, lookback_days)
    except InvalidInputError as error:
        return _email_tab(request, actor, sessions, str(error), 400)
    flash(request, f"Looking back {lookback_days} days; older mail is being fetched.")
    return redirect("/profile/email")


@router.post("/profile/email/remove-synced")
def remove_synced(
    request: Request, actor: PageActor, sessions: Sessions, csrf_token: Annotated[str, Form()]
) -> Response:
    check_csrf(request, csrf_token)
    assert actor.user_id is not None
    with session_scope(sessions) as session:
        outcome = service.remove_synced_emails(session, actor, actor.user_id)
    flash(
        request,
        f"Removed {outcome['deleted']} emails only you held; "
        f"{outcome['kept_for_others']} stay for colleagues.",
    )
    return redirect("/profile/email")


@router.post("/profile/email/disconnect")
def disconnect(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    mailbox_id: Annotated[uuid.UUID, Form()],
) -> Response:
    check_csrf(request, csrf_token)
    oauth_connect.disconnect_and_revoke(
        sessions, request.app.state.settings, request.app.state.secret_box, actor, mailbox_id
    )
    flash(request, "Mailbox disconnected; sync has stopped. Mail already synced stays.")
    return redirect("/profile/email")


@router.post("/settings/default-synced-labels/apply")
def apply_default_labels(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    labels_on_screen: Annotated[str, Form()] = "",
    default_sync_inbox: Annotated[str, Form()] = "",
    default_sync_sent: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    # Sent from the settings form, the boxes on screen are applied (and saved); an unchecked box
    # sends nothing, hence the marker that says the boxes came along.
    shown = (bool(default_sync_inbox), bool(default_sync_sent)) if labels_on_screen else None
    with session_scope(sessions) as session:
        task = service.start_apply_default_labels(session, actor, shown=shown)
        task_id = task.id
    return redirect(f"/settings/tasks/{task_id}")


@router.get("/settings/tasks/{task_id}", response_class=HTMLResponse)
def task_page(request: Request, task_id: uuid.UUID, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    actor.require(Permission.ADMIN_ACCESS)
    with session_scope(sessions) as session:
        return render(request, "task.html", actor, {"task": service.get_task(session, actor, task_id)})
