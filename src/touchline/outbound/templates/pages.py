"""Pages of stored templates: the list, the editor and its live preview. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.html import sanitise_html
from touchline.kit.pagination import PageRequest
from touchline.models import Contact, Template
from touchline.outbound.compose.templates import (
    EmailTemplate,
    Preview,
    TemplateProblem,
    compile_template,
)
from touchline.outbound.templates import service
from touchline.outbound.track.links import UTM_KEYS
from touchline.ui import check_csrf, flash, redirect, render, templates
from touchline.workspace import repository as workspace_repository
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import PageActor, Sessions
from touchline.workspace.permissions import Actor, Permission

router = APIRouter(include_in_schema=False)

MAX_PICKER_CONTACTS = 200
"""Contacts offered for the preview, by address: enough to find one lacking a field."""
Csrf = Annotated[str, Form(alias="csrf_token")]
_NOT_SAVED = "Not saved: fix the problems listed below; what you typed is kept."


def _not_saved(error: Exception) -> str:
    return f"Not saved: {error}. What you typed is kept."


@dataclass(frozen=True)
class EditorForm:
    """What the editor's fields hold: a saved template's, or what was typed."""

    name: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    track_opens: bool = True
    track_clicks: bool = True
    utm: Mapping[str, str] = field(default_factory=dict)
    """utm_source, utm_medium, utm_campaign and utm_content as typed; empty ones are not added."""

    @classmethod
    def of(cls, row: Template) -> EditorForm:
        return cls(
            row.name,
            row.subject,
            row.html,
            row.text or "",
            row.track_opens,
            row.track_clicks,
            {key: str(value) for key, value in (row.utm or {}).items()},
        )

    def content(self) -> service.TemplateText:
        return service.TemplateText(
            self.subject, self.html, self.text, self.track_opens, self.track_clicks, self.utm
        )


def _utm_typed(source: str, medium: str, campaign: str, content: str) -> dict[str, str]:
    return dict(zip(UTM_KEYS, (source, medium, campaign, content), strict=True))


@dataclass(frozen=True)
class PreviewView:
    """The preview fragment's context (templates/template_preview.html)."""

    hint: str | None = None
    subject: str | None = None
    html: Markup | None = None
    html_too_costly: bool = False
    text: str | None = None
    problems: tuple[TemplateProblem, ...] = ()
    missing_fields: tuple[str, ...] = ()
    contact: str | None = None


def _picker(session: Session, actor: Actor) -> list[Contact]:
    if not actor.can(Permission.VIEW_CUSTOMERS):
        return []
    found = workspace_repository.list_contacts(
        session, actor, workspace_repository.ContactFilter(), PageRequest(MAX_PICKER_CONTACTS, 0)
    )
    return found.items


def _contact_label(contact: Contact) -> str:
    return f"{contact.name} <{contact.email}>" if contact.name else contact.email


def _shown(outcome: Preview, contact: Contact) -> PreviewView:
    rendered = outcome.rendered
    if rendered is None:
        return PreviewView(
            problems=outcome.problems,
            missing_fields=outcome.missing_fields,
            contact=_contact_label(contact),
        )
    # Written by the team, but shown inside touchline's own page: only what the mail sanitiser keeps.
    safe = sanitise_html(rendered.html) if rendered.html is not None else None
    return PreviewView(
        subject=rendered.subject,
        html=Markup(safe) if safe is not None else None,  # noqa: S704 -- sanitised just above
        html_too_costly=rendered.html is not None and safe is None,
        text=rendered.text,
        contact=_contact_label(contact),
    )


def _checked_only(form: EditorForm) -> PreviewView:
    """No contact to fill it: the template's own problems, or what to do to see it filled."""
    try:
        compile_template(EmailTemplate(form.subject, form.html, form.text or None))
    except service.TemplateInvalidError as error:
        return PreviewView(problems=error.problems)
    return PreviewView(hint="Choose a contact to see the email as they would get it.")


def _preview(session: Session, actor: Actor, form: EditorForm, contact_id: uuid.UUID | None) -> PreviewView:
    if not form.html.strip():
        return PreviewView(hint="Write the HTML body to see the preview.")
    if not actor.can(Permission.VIEW_CUSTOMERS):
        return PreviewView(hint="Previews fill in a contact's fields: your role cannot see contacts.")
    if contact_id is None:
        return _checked_only(form)
    try:
        contact = workspace_service.get_contact(session, actor, contact_id)
        outcome = service.preview_as(session, actor, form.content(), contact.id)
    except NotFoundError:
        return PreviewView(hint="That contact no longer exists; choose another.")
    return _shown(outcome, contact)


def _contact_id(raw: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw) if raw else None
    except ValueError:
        return None


def _editor(
    request: Request,
    actor: Actor,
    session: Session,
    row: Template | None,
    form: EditorForm,
    contact_id: uuid.UUID | None,
    problems: tuple[TemplateProblem, ...] = (),
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    contacts = _picker(session, actor)
    if contact_id is None and contacts:
        contact_id = contacts[0].id
    return render(
        request,
        "template_editor.html",
        actor,
        {
            "template": row,
            "form": form,
            "contacts": contacts,
            "contact_id": contact_id,
            "contact_label": _contact_label,
            "preview": _preview(session, actor, form, contact_id),
            "problems": problems,
            "error": error,
        },
        status_code,
    )


def _lines(typed: str) -> str:
    # Browsers send a textarea's line breaks as CRLF; the template keeps the ones it was written with.
    return typed.replace("\r\n", "\n")


def _typed(
    name: str,
    subject: str,
    html: str,
    text: str,
    track_opens: str | None,
    track_clicks: str | None,
    utm: Mapping[str, str] | None = None,
) -> EditorForm:
    return EditorForm(
        name,
        subject,
        _lines(html),
        _lines(text),
        track_opens is not None,
        track_clicks is not None,
        dict(utm or {}),
    )


def _after_save(row_id: uuid.UUID, contact_id: uuid.UUID | None) -> Response:
    query = f"?{urlencode({'contact_id': str(contact_id)})}" if contact_id else ""
    return redirect(f"/templates/{row_id}{query}")


@router.get("/templates", response_class=HTMLResponse)
def templates_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        rows = service.list_templates(session, actor)
        return render(request, "templates.html", actor, {"templates": rows})


@router.get("/templates/new", response_class=HTMLResponse)
def new_template_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    actor.require(Permission.SEND_EMAIL)
    with session_scope(sessions) as session:
        return _editor(request, actor, session, None, EditorForm(), None)


@router.post("/templates/preview", response_class=HTMLResponse)
def preview_fragment(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    subject: Annotated[str, Form()] = "",
    html: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    contact_id: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """The editor's live preview: a fragment the page's script puts in place as the team types."""
    check_csrf(request, csrf)
    actor.require(Permission.SEND_EMAIL)
    form = _typed("", subject, html, text, None, None)
    with session_scope(sessions) as session:
        view = _preview(session, actor, form, _contact_id(contact_id))
    return templates.TemplateResponse(request, "template_preview.html", {"preview": view})


@router.post("/templates", response_class=HTMLResponse)
def create_template(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    name: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    html: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    track_opens: Annotated[str | None, Form()] = None,
    track_clicks: Annotated[str | None, Form()] = None,
    utm_source: Annotated[str, Form()] = "",
    utm_medium: Annotated[str, Form()] = "",
    utm_campaign: Annotated[str, Form()] = "",
    utm_content: Annotated[str, Form()] = "",
    contact_id: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    utm = _utm_typed(utm_source, utm_medium, utm_campaign, utm_content)
    form = _typed(name, subject, html, text, track_opens, track_clicks, utm)
    chosen = _contact_id(contact_id)
    try:
        with session_scope(sessions) as session:
            row = service.create_template(session, actor, form.name, form.content())
            row_id = row.id
    except service.TemplateInvalidError as error:
        with session_scope(sessions) as session:
            return _editor(request, actor, session, None, form, chosen, error.problems, _NOT_SAVED, 400)
    except (InvalidInputError, ConflictError) as error:
        with session_scope(sessions) as session:
            return _editor(request, actor, session, None, form, chosen, (), _not_saved(error), 400)
    flash(request, f"Template {form.name.strip()} saved (version 1).")
    return _after_save(row_id, chosen)


@router.get("/templates/{template_id}", response_class=HTMLResponse)
def template_page(
    request: Request,
    template_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    contact_id: str | None = None,
) -> HTMLResponse:
    with session_scope(sessions) as session:
        row = service.get_template(session, actor, template_id)
        return _editor(request, actor, session, row, EditorForm.of(row), _contact_id(contact_id))


@router.post("/templates/{template_id}", response_class=HTMLResponse)
def update_template(
    request: Request,
    template_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    name: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    html: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    track_opens: Annotated[str | None, Form()] = None,
    track_clicks: Annotated[str | None, Form()] = None,
    utm_source: Annotated[str, Form()] = "",
    utm_medium: Annotated[str, Form()] = "",
    utm_campaign: Annotated[str, Form()] = "",
    utm_content: Annotated[str, Form()] = "",
    contact_id: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    utm = _utm_typed(utm_source, utm_medium, utm_campaign, utm_content)
    form = _typed(name, subject, html, text, track_opens, track_clicks, utm)
    chosen = _contact_id(contact_id)
    try:
        with session_scope(sessions) as session:
            row = service.update_template(session, actor, template_id, form.content(), form.name)
            saved = (row.name, row.version)
    except service.TemplateInvalidError as error:
        with session_scope(sessions) as session:
            row = service.get_template(session, actor, template_id)
            return _editor(request, actor, session, row, form, chosen, error.problems, _NOT_SAVED, 400)
    except (InvalidInputError, ConflictError) as error:
        with session_scope(sessions) as session:
            row = service.get_template(session, actor, template_id)
            return _editor(request, actor, session, row, form, chosen, (), _not_saved(error), 400)
    flash(request, f"Template {saved[0]} saved (version {saved[1]}).")
    return _after_save(template_id, chosen)


@router.post("/templates/{template_id}/delete")
def delete_template(
    request: Request, template_id: uuid.UUID, actor: PageActor, sessions: Sessions, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            name = service.get_template(session, actor, template_id).name
            service.delete_template(session, actor, template_id)
    except ConflictError as error:
        flash(request, str(error), "error")
        return redirect(f"/templates/{template_id}")
    flash(request, f"Template {name} deleted.")
    return redirect("/templates")
