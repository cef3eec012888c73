"""Pages for users and roles: the Users page, one user's page (admins), and the invitation and
password reset links a user opens to set their password. Thin.

Forms are checked with the API's own models first, so the page and the API say the same about the
same mistake; a mistake shows the form again with what was typed and the field marked.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.ui import CheckedForm, check_csrf, field_errors, flash, redirect, render, validation_messages
from touchline.workspace import account_links, service
from touchline.workspace.account_links import INVITATION, RESET, IssuedLink, Purpose, UnusableLinkError
from touchline.workspace.auth import SESSION_LOGIN_KEY, AppSettings, Now, PageActor, Sessions
from touchline.workspace.pages import FORM_ERRORS, Csrf
from touchline.workspace.permissions import PERMISSION_LABELS, Actor, Permission
from touchline.workspace.schemas import UserCreate, UserPatch

router = APIRouter(include_in_schema=False)

# The form field a service's message is about, by the words it starts with.
_FIELDS_BY_MESSAGE = (
    ("email", "email"),
    ("a password", "password"),
    ("role", "role_id"),
)


def _checked(model: type[BaseModel], values: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """The API model's verdict on the form: None when it passes, else the message and marked fields."""
    try:
        model.model_validate(values)
    except ValidationError as invalid:
        errors = invalid.errors()
        return "; ".join(validation_messages(errors)), field_errors(errors)
    return None


def _marked(error: Exception) -> dict[str, str]:
    message = str(error)
    if "already has a touchline login" in message:
        return {"email": message}
    for start, field in _FIELDS_BY_MESSAGE:
        if message.startswith(start):
            return {field: message}
    return {}


# --- the Users page ------------------------------------------------------------------------------


def _users_context(session: Session, actor: Actor, now: datetime) -> dict[str, object]:
    admin = actor.can(Permission.ADMIN_ACCESS)
    pending = account_links.pending(session, actor, now) if admin else []
    return {
        "users": service.list_users(session, actor),
        "roles": service.list_roles(session, actor),
        "permission_labels": PERMISSION_LABELS,
        "pending_links": {link.user_id: link for link in pending},
        "error": None,
        "form": {},
        "field_errors": {},
        "issued": None,
    }


def _users_page(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    now: datetime,
    status_code: int = 200,
    **extra: object,
) -> HTMLResponse:
    with session_scope(sessions) as session:
        context = _users_context(session, actor, now) | extra
        return render(request, "users.html", actor, context, status_code=status_code)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, actor: PageActor, sessions: Sessions, now: Now) -> HTMLResponse:
    return _users_page(request, actor, sessions, now)


@router.post("/users", response_class=HTMLResponse)
def add_user(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
    email: Annotated[str, Form()],
    role_id: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    actor.require(Permission.ADMIN_ACCESS)
    typed = {"email": email, "name": name, "role_id": role_id}

    def again(error: str, marked: dict[str, str]) -> HTMLResponse:
        return _users_page(request, actor, sessions, now, 400, error=error, form=typed, field_errors=marked)

    fields = {"email": email.strip(), "name": name, "role_id": role_id, "password": password or None}
    if verdict := _checked(UserCreate, fields):
        return again(*verdict)
    try:
        with session_scope(sessions) as session:
            user, issued = account_links.add_user(
                session,
                actor,
                settings,
                email,
                name=name,
                role=uuid.UUID(role_id),
                password=password or None,
                now=now,
            )
            address = user.email
    except FORM_ERRORS as error:
        return again(str(error), _marked(error))
    if issued is not None and not issued.emailed:
        # The link is shown this once, on this answer: it is stored nowhere else.
        flash(request, f"User {address} added and invited.")
        return _users_page(request, actor, sessions, now, issued=_shown(address, issued))
    flash(request, f"User {address} added and invited by email." if issued else f"User {address} added.")
    return redirect("/users")


def _shown(address: str, issued: IssuedLink) -> dict[str, object]:
    return {
        "email": address,
        "url": issued.url,
        "purpose": issued.link.purpose,
        "expires_at": issued.link.expires_at,
    }


@router.post("/roles", response_class=HTMLResponse)
def create_role(
    request: Request, actor: PageActor, sessions: Sessions, now: Now, form: CheckedForm
) -> Response:
    actor.require(Permission.ADMIN_ACCESS)
    permissions = [str(value) for value in form.getlist("permissions")]
    try:
        with session_scope(sessions) as session:
            service.create_role(session, actor, str(form.get("name", "")), permissions)
    except FORM_ERRORS as error:
        return _users_page(request, actor, sessions, now, 400, error=str(error))
    flash(request, "Role created.")
    return redirect("/users")


# --- one user (admins) ---------------------------------------------------------------------------


def _user_page(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    now: datetime,
    user_id: uuid.UUID,
    status_code: int = 200,
    **extra: object,
) -> HTMLResponse:
    actor.require(Permission.ADMIN_ACCESS)
    with session_scope(sessions) as session:
        user = service.get_user(session, actor, user_id)
        pending = [link for link in account_links.pending(session, actor, now) if link.user_id == user.id]
        context: dict[str, object] = {
            "user": user,
            "roles": service.list_roles(session, actor),
            "invitation": next((link for link in pending if link.purpose == INVITATION), None),
            "reset_link": next((link for link in pending if link.purpose == RESET), None),
            "is_me": user.id == actor.user_id,
            "error": None,
            "form": {},
            "field_errors": {},
            "issued": None,
        } | extra
        return render(request, "user.html", actor, context, status_code=status_code)


@router.get("/users/{user_id}", response_class=HTMLResponse)
def user_page(
    request: Request, user_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now
) -> HTMLResponse:
    return _user_page(request, actor, sessions, now, user_id)


@router.post("/users/{user_id}", response_class=HTMLResponse)
def edit_user(
    request: Request,
    user_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    now: Now,
    csrf: Csrf,
    role_id: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> Response:
    """The name and role; a mistake keeps what was typed."""
    check_csrf(request, csrf)
    actor.require(Permission.ADMIN_ACCESS)
    typed = {"name": name, "role_id": role_id}

    def again(error: str, marked: dict[str, str]) -> HTMLResponse:
        return _user_page(
            request, actor, sessions, now, user_id, 400, error=error, form=typed, field_errors=marked
        )

    if verdict := _checked(UserPatch, typed):
        return again(*verdict)
    try:
        with session_scope(sessions) as session:
            service.update_user(session, actor, user_id, name=name, role_id=uuid.UUID(role_id))
    except FORM_ERRORS as error:
        return again(str(error), _marked(error))
    flash(request, "User saved.")
    return redirect(f"/users/{user_id}")


def _set_active(
    request: Request, user_id: uuid.UUID, actor: Actor, sessions: Sessions, now: datetime, active: bool
) -> Response:
    actor.require(Permission.ADMIN_ACCESS)
    try:
        with session_scope(sessions) as session:
            user = service.update_user(session, actor, user_id, active=active)
            address = user.email
    except FORM_ERRORS as error:
        return _user_page(request, actor, sessions, now, user_id, 409, error=str(error))
    flash(
        request,
        f"{address} is active again and can sign in."
        if active
        else f"{address} is deactivated: their logins have ended and they cannot sign in.",
    )
    return redirect(f"/users/{user_id}")


@router.post("/users/{user_id}/deactivate", response_class=HTMLResponse)
def deactivate_user(
    request: Request, user_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    return _set_active(request, user_id, actor, sessions, now, active=False)


@router.post("/users/{user_id}/reactivate", response_class=HTMLResponse)
def reactivate_user(
    request: Request, user_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    return _set_active(request, user_id, actor, sessions, now, active=True)


def _issue(
    request: Request,
    user_id: uuid.UUID,
    actor: Actor,
    sessions: Sessions,
    settings: AppSettings,
    now: datetime,
    purpose: Purpose,
) -> Response:
    actor.require(Permission.ADMIN_ACCESS)
    try:
        with session_scope(sessions) as session:
            issued = account_links.issue(session, actor, settings, user_id, purpose, now)
            address = service.get_user(session, actor, user_id).email
    except FORM_ERRORS as error:
        return _user_page(request, actor, sessions, now, user_id, 409, error=str(error))
    what = "Invitation" if purpose == INVITATION else "Password reset link"
    if issued.emailed:
        flash(request, f"{what} emailed to {address}.")
        return redirect(f"/users/{user_id}")
    flash(request, f"{what} made for {address}.")
    return _user_page(request, actor, sessions, now, user_id, issued=_shown(address, issued))


def _revoke(
    request: Request, user_id: uuid.UUID, actor: Actor, sessions: Sessions, now: datetime, purpose: Purpose
) -> Response:
    with session_scope(sessions) as session:
        account_links.revoke(session, actor, user_id, purpose, now)
    flash(request, "Invitation revoked." if purpose == INVITATION else "Password reset link revoked.")
    return redirect(f"/users/{user_id}")


@router.post("/users/{user_id}/invitation", response_class=HTMLResponse)
def invite_user(
    request: Request,
    user_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
) -> Response:
    check_csrf(request, csrf)
    return _issue(request, user_id, actor, sessions, settings, now, INVITATION)


@router.post("/users/{user_id}/invitation/revoke", response_class=HTMLResponse)
def revoke_invitation(
    request: Request, user_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    return _revoke(request, user_id, actor, sessions, now, INVITATION)


@router.post("/users/{user_id}/password-reset", response_class=HTMLResponse)
def reset_password(
    request: Request,
    user_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
) -> Response:
    check_csrf(request, csrf)
    return _issue(request, user_id, actor, sessions, settings, now, RESET)


@router.post("/users/{user_id}/password-reset/revoke", response_class=HTMLResponse)
def revoke_password_reset(
    request: Request, user_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    return _revoke(request, user_id, actor, sessions, now, RESET)


# --- the links a user opens ----------------------------------------------------------------------


def _link_page(
    request: Request,
    sessions: Sessions,
    now: datetime,
    purpose: Purpose,
    token: str,
    status_code: int = 200,
    **extra: object,
) -> HTMLResponse:
    try:
        with session_scope(sessions) as session:
            opened = account_links.open_link(session, purpose, token, now)
            context: dict[str, object] = {
                "purpose": purpose,
                "email": opened.user.email,
                "name": opened.user.name,
                "action": f"{account_links.PATHS[purpose]}/{token}",
                "error": None,
                "form": {},
                "field_errors": {},
                "unusable": None,
            } | extra
    except UnusableLinkError as error:
        return render(request, "account_link.html", None, {"purpose": purpose, "unusable": str(error)}, 410)
    return render(request, "account_link.html", None, context, status_code)


def _accept(
    request: Request,
    sessions: Sessions,
    settings: AppSettings,
    now: datetime,
    purpose: Purpose,
    token: str,
    name: str,
    password: str,
    repeated: str,
) -> Response:
    typed = {"name": name}
    if password != repeated:
        return _link_page(
            request,
            sessions,
            now,
            purpose,
            token,
            400,
            error="the two passwords differ",
            form=typed,
            field_errors={"password_again": "the two passwords differ"},
        )
    try:
        with session_scope(sessions) as session:
            login = account_links.accept(
                session,
                settings,
                purpose,
                token,
                password=password,
                name=name if purpose == INVITATION else None,
                now=now,
            )
    except UnusableLinkError:
        return _link_page(request, sessions, now, purpose, token)
    except FORM_ERRORS as error:
        return _link_page(
            request,
            sessions,
            now,
            purpose,
            token,
            400,
            error=str(error),
            form=typed,
            field_errors=_marked(error),
        )
    request.session.clear()
    request.session[SESSION_LOGIN_KEY] = login
    flash(
        request,
        "Welcome to touchline: you are signed in."
        if purpose == INVITATION
        else "Password set: you are signed in.",
    )
    return redirect("/")


@router.get("/invitations/{token}", response_class=HTMLResponse)
def invitation_page(request: Request, token: str, sessions: Sessions, now: Now) -> HTMLResponse:
    return _link_page(request, sessions, now, INVITATION, token)


@router.post("/invitations/{token}", response_class=HTMLResponse)
def accept_invitation(
    request: Request,
    token: str,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
    password: Annotated[str, Form()],
    password_again: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    return _accept(request, sessions, settings, now, INVITATION, token, name, password, password_again)


@router.get("/password-reset/{token}", response_class=HTMLResponse)
def password_reset_page(request: Request, token: str, sessions: Sessions, now: Now) -> HTMLResponse:
    return _link_page(request, sessions, now, RESET, token)


@router.post("/password-reset/{token}", response_class=HTMLResponse)
def accept_password_reset(
    request: Request,
    token: str,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
    password: Annotated[str, Form()],
    password_again: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    return _accept(request, sessions, settings, now, RESET, token, "", password, password_again)
