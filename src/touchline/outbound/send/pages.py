"""The composer (from a company, a contact or an email being answered) and the outbox. Thin: every
From rule is decided by the From field's service and every send, edit and cancel by the outbox's."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import getaddresses
from typing import Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound import repository as inbound_repository
from touchline.kit.errors import ConflictError, InvalidInputError
from touchline.kit.html import sanitise_html
from touchline.kit.pagination import PageRequest
from touchline.kit.zones import from_wall_clock, on_wall_clock
from touchline.models import Company, Contact, Email, OutboundEmail
from touchline.outbound.compose.senders import FromChoice
from touchline.outbound.engagement import service as engagement
from touchline.outbound.from_field import service as from_field
from touchline.outbound.from_field.service import ComposeContext
from touchline.outbound.send import service
from touchline.outbound.templates import service as templates
from touchline.ui import CheckedForm, flash, redirect, render, request_zone
from touchline.workspace import repository as workspace_repository
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import AppSettings, Now, PageActor, Sessions
from touchline.workspace.permissions import Actor, Permission

router = APIRouter(include_in_schema=False)

# Mistakes the person can fix in the form are shown beside it, with what they typed.
FORM_ERRORS = (InvalidInputError, ConflictError)
TIME_FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
UNKNOWN_EXPLAINED = "touchline could not tell whether it left; check your Sent folder before sending again"
STATUSES = (
    service.SCHEDULED,
    service.QUEUED,
    service.SENDING,
    service.SENT,
    service.FAILED,
    service.UNKNOWN,
    service.CANCELLED,
)

WhereKind = Literal["company", "contact", "reply"]


@dataclass(frozen=True)
class Where:
    """What the email is written from: a company, a contact, or a stored email being answered."""

    kind: WhereKind
    id: uuid.UUID

    @property
    def path(self) -> str:
        if self.kind == "company":
            return f"/companies/{self.id}/compose"
        if self.kind == "contact":
            return f"/contacts/{self.id}/compose"
        return f"/emails/{self.id}/reply"


@dataclass(frozen=True)
class Typed:
    """The composer's fields as the person left them, kept when the page answers with an error."""

    sender: str = ""
    to: tuple[str, ...] = ()
    """The company page's ticked contacts; one comma-separated line elsewhere."""
    cc: str = ""
    subject: str = ""
    html: str = ""
    template_id: str = ""
    send_at: str = ""
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def of(cls, form: FormData) -> Typed:
        return cls(
            sender=_text(form, "sender"),
            to=tuple(value for value in form.getlist("to") if isinstance(value, str) and value.strip()),
            cc=_text(form, "cc"),
            subject=_text(form, "subject"),
            html=_text(form, "html"),
            template_id=_text(form, "template_id"),
            send_at=_text(form, "send_at"),
            idempotency_key=_text(form, "idempotency_key") or uuid.uuid4().hex,
        )


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _recipients(field_name: str, values: tuple[str, ...] | str) -> list[service.Recipient]:
    lines = [values] if isinstance(values, str) else list(values)
    if not any(line.strip() for line in lines):
        return []
    parsed = [(name, address) for name, address in getaddresses(lines) if name or address]  # stray commas
    if any(not address for _, address in parsed):
        raise InvalidInputError(
            f"{field_name} could not be read; separate addresses with commas, "
            "e.g. jane@acme.com, Bob <bob@acme.com>"
        )
    return [service.Recipient(address, name) for name, address in parsed]


def _send_time(value: str, now: datetime, zone: ZoneInfo) -> datetime | None:
    """The moment a typed send time means: a wall-clock time of the workspace's zone."""
    if not value.strip():
        return None
    for time_format in TIME_FORMATS:
        try:
            wall = datetime.strptime(value.strip(), time_format)
        except ValueError:
            continue
        moment = from_wall_clock(wall, zone)
        if moment <= now:
            raise InvalidInputError(
                f"{wall:%Y-%m-%d %H:%M} {zone.key} has passed; "
                "choose a later time, or leave it empty to send now"
            )
        return moment
    raise InvalidInputError(f"{value!r} is not a date and time; pick one, e.g. 2026-12-24 09:00")


def _typed_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment as the send-time field shows it: the wall clock of the workspace's zone."""
    return f"{on_wall_clock(moment, zone):%Y-%m-%dT%H:%M}" if moment is not None else ""


def _template_id(value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInputError(
            "that template is not one of this workspace's; pick one from the list"
        ) from None


def _draft(where: Where, typed: Typed, now: datetime, zone: ZoneInfo) -> service.Draft:
    return service.Draft(
        sender=typed.sender,
        to=_recipients("To", typed.to),
        cc=_recipients("Cc", typed.cc),
        subject=typed.subject,
        html=typed.html,
        send_at=_send_time(typed.send_at, now, zone),
        reply_to_email_id=where.id if where.kind == "reply" else None,
        idempotency_key=typed.idempotency_key,
        template_id=_template_id(typed.template_id),
    )


# --- the composer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefusedChoice:
    """A From that a new email could use but this one may not, and why."""

    label: str
    reason: str


@dataclass(frozen=True)
class PreviewShown:
    recipient: str
    subject: str = ""
    html: str | None = None
    text: str = ""
    problems: tuple[str, ...] = ()
    missing_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class Composing:
    """What an email is written from, as the From rules and the page around the form see it."""

    context: ComposeContext
    company: Company | None = None
    contacts: Sequence[Contact] = ()
    """The company's contacts, to choose among (company page)."""
    contact: Contact | None = None
    email: Email | None = None
    """The email being answered."""


def _composing(session: Session, actor: Actor, where: Where) -> Composing:
    if where.kind == "company":
        company = workspace_service.get_company(session, actor, where.id)
        contacts = workspace_repository.list_contacts(
            session, actor, workspace_repository.ContactFilter(company_id=company.id), PageRequest(200, 0)
        )
        return Composing(ComposeContext(company_id=company.id), company=company, contacts=contacts.items)
    if where.kind == "contact":
        contact = workspace_service.get_contact(session, actor, where.id)
        return Composing(ComposeContext(company_id=contact.company_id), contact=contact)
    email = inbound_repository.get_email(session, actor, where.id)
    return Composing(ComposeContext(reply_to=email.id), email=email)


def _refused_choices(
    session: Session, actor: Actor, context: ComposeContext, offered: tuple[FromChoice, ...]
) -> list[RefusedChoice]:
    """For a reply: the From choices of a new email that this conversation rules out, with the reason
    (a public address that is not a participant: forward the email to it first)."""
    if context.reply_to is None:
        return []
    keys = {choice.key for choice in offered}
    return [
        RefusedChoice(choice.label, from_field.check_from(session, actor, choice.key, context).reason)
        for choice in from_field.from_choices(session, actor, ComposeContext(company_id=context.company_id))
        if choice.key not in keys
    ]


def _first_typed(composing: Composing, choices: tuple[FromChoice, ...]) -> Typed:
    """The form as it opens: the own address as From, the contact or the person being answered as To."""
    own = next((choice.key for choice in choices if choice.kind == "own"), choices[0].key)
    if composing.contact is not None:
        return Typed(sender=own, to=(composing.contact.email,))
    if composing.email is not None:
        email = composing.email
        subject = email.subject or ""
        # Answering one's own email goes on to the people it was sent to, not back to oneself.
        mine = (email.from_address or "").strip().lower() == own
        return Typed(
            sender=own,
            to=tuple(email.to_addresses) if mine else (email.from_address or "",),
            subject=subject if subject.lower().startswith("re:") else f"Re: {subject}".strip(),
        )
    return Typed(sender=own)


def _preview(
    session: Session,
    actor: Actor,
    where: Where,
    typed: Typed,
    settings: Settings,
    now: datetime,
    zone: ZoneInfo,
) -> PreviewShown:
    """The chosen template for the recipient a send renders it for (the first To that is a contact),
    from the user the send would leave as."""
    draft = _draft(where, typed, now, zone)
    if draft.template_id is None:
        raise InvalidInputError("choose a template to preview")
    sender = service.sender_of(session, actor, draft, settings=settings)
    contact = next(
        (
            found
            for recipient in draft.to
            if (found := workspace_service.find_contact_by_email(session, actor, recipient.address))
        ),
        None,
    )
    if contact is None:
        raise InvalidInputError(
            "a template is filled in for the first To recipient who is a contact, and none is; "
            "add the recipient as a contact first"
        )
    row = templates.get_template(session, actor, draft.template_id)
    shown = templates.preview_for(
        session,
        actor,
        templates.TemplateText(row.subject, row.html, row.text, row.track_opens, row.track_clicks),
        contact.id,
        sender,
    )
    if shown.rendered is None:
        return PreviewShown(
            contact.email,
            problems=tuple(str(problem) for problem in shown.problems),
            missing_fields=shown.missing_fields,
        )
    return PreviewShown(
        contact.email,
        subject=shown.rendered.subject,
        html=sanitise_html(shown.rendered.html) if shown.rendered.html else None,
        text=shown.rendered.text,
    )


def _render_composer(
    request: Request,
    actor: Actor,
    session: Session,
    where: Where,
    typed: Typed | None,
    *,
    error: str | None = None,
    preview: PreviewShown | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    composing = _composing(session, actor, where)
    choices = from_field.from_choices(session, actor, composing.context)
    return render(
        request,
        "composer.html",
        actor,
        {
            "company": composing.company,
            "contacts": composing.contacts,
            "contact": composing.contact,
            "email": composing.email,
            "where": where,
            "choices": choices,
            "refused_choices": _refused_choices(session, actor, composing.context, choices),
            "templates": templates.list_templates(session, actor),
            "typed": typed or _first_typed(composing, choices),
            "preview": preview,
            "error": error,
        },
        status_code,
    )


def _show_composer(request: Request, actor: Actor, sessions: Sessions, where: Where) -> HTMLResponse:
    actor.require(Permission.SEND_EMAIL)
    with session_scope(sessions) as session:
        return _render_composer(request, actor, session, where, None)


def _submit(
    request: Request,
    form: FormData,
    actor: Actor,
    sessions: Sessions,
    settings: AppSettings,
    now: datetime,
    where: Where,
) -> Response:
    actor.require(Permission.SEND_EMAIL)
    typed = Typed.of(form)
    if form.get("action") == "preview":
        with session_scope(sessions) as session:
            try:
                shown = _preview(session, actor, where, typed, settings, now, request_zone(request))
            except FORM_ERRORS as error:
                return _render_composer(
                    request, actor, session, where, typed, error=str(error), status_code=400
                )
            return _render_composer(request, actor, session, where, typed, preview=shown)
    try:
        with session_scope(sessions) as session:
            zone = request_zone(request)
            draft = _draft(where, typed, now, zone)
            row = service.send_email(session, actor, draft, settings=settings, now=now)
            status, scheduled_for = row.status, row.scheduled_for
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            return _render_composer(
                request,
                actor,
                session,
                where,
                typed,
                error=str(error),
                status_code=409 if isinstance(error, ConflictError) else 400,
            )
    if status == service.SCHEDULED and scheduled_for is not None:
        leaves = on_wall_clock(scheduled_for, zone)
        flash(request, f"Scheduled: the email leaves at {leaves:%Y-%m-%d %H:%M} {zone.key}.")
    else:
        flash(request, f"Queued: the email leaves in a moment ({status}).")
    return redirect("/outbox")


@router.get("/companies/{company_id}/compose", response_class=HTMLResponse)
def compose_for_company(
    request: Request, company_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    return _show_composer(request, actor, sessions, Where("company", company_id))


@router.post("/companies/{company_id}/compose", response_class=HTMLResponse)
def send_for_company(
    request: Request,
    company_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    form: CheckedForm,
) -> Response:
    return _submit(request, form, actor, sessions, settings, now, Where("company", company_id))


@router.get("/contacts/{contact_id}/compose", response_class=HTMLResponse)
def compose_for_contact(
    request: Request, contact_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    return _show_composer(request, actor, sessions, Where("contact", contact_id))


@router.post("/contacts/{contact_id}/compose", response_class=HTMLResponse)
def send_for_contact(
    request: Request,
    contact_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    form: CheckedForm,
) -> Response:
    return _submit(request, form, actor, sessions, settings, now, Where("contact", contact_id))


@router.get("/emails/{email_id}/reply", response_class=HTMLResponse)
def compose_reply(
    request: Request, email_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    return _show_composer(request, actor, sessions, Where("reply", email_id))


@router.post("/emails/{email_id}/reply", response_class=HTMLResponse)
def send_reply(
    request: Request,
    email_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    form: CheckedForm,
) -> Response:
    return _submit(request, form, actor, sessions, settings, now, Where("reply", email_id))


# --- the outbox -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    email: OutboundEmail
    composer: str
    """Who wrote it: the "sender" column admins see."""
    to: str
    explanation: str | None
    """What its status means for the person, when the status alone does not say."""


def _outbox_rows(session: Session, actor: Actor, emails: list[OutboundEmail]) -> list[OutboxRow]:
    users = {user.id: user for user in workspace_service.list_users(session, actor)}
    rows = []
    for email in emails:
        composer = users.get(email.created_by) if email.created_by is not None else None
        rows.append(
            OutboxRow(
                email,
                (composer.name or composer.email) if composer is not None else "a removed user",
                ", ".join(r.address for r in email.recipients if r.kind == "to"),
                UNKNOWN_EXPLAINED if email.status == service.UNKNOWN else None,
            )
        )
    return rows


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(
    request: Request, actor: PageActor, sessions: Sessions, who: str = "mine", status: str = ""
) -> HTMLResponse:
    everyone = who == "everyone" and actor.can(Permission.ADMIN_ACCESS)
    with session_scope(sessions) as session:
        emails = service.list_outbox(
            session,
            actor,
            status=status if status in STATUSES else None,
            created_by=None if everyone else actor.user_id,
        )
        return render(
            request,
            "outbox.html",
            actor,
            {
                "rows": _outbox_rows(session, actor, emails),
                "engagement": engagement.shown_engagements(session, actor, (email.id for email in emails)),
                "everyone": everyone,
                "status": status if status in STATUSES else "",
                "statuses": STATUSES,
            },
        )


@router.get("/outbox/{outbound_id}", response_class=HTMLResponse)
def outbound_page(
    request: Request, outbound_id: uuid.UUID, actor: PageActor, sessions: Sessions
) -> HTMLResponse:
    """One email of the outbox: what was sent, and its engagement badges and events."""
    with session_scope(sessions) as session:
        email = service.get_outbound(session, actor, outbound_id)
        return render(
            request,
            "outbound_email.html",
            actor,
            {
                "row": _outbox_rows(session, actor, [email])[0],
                "shown": engagement.shown_engagements(session, actor, [email.id]).get(email.id),
            },
        )


@dataclass(frozen=True)
class EditTyped:
    sender: str
    subject: str
    html: str
    send_at: str


def _render_edit(
    request: Request,
    actor: Actor,
    session: Session,
    outbound_id: uuid.UUID,
    typed: EditTyped | None,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    email = service.get_outbound(session, actor, outbound_id)
    choices = from_field.from_choices(session, actor, ComposeContext(company_id=email.company_id))
    kept = from_field.sender_after_edit(session, actor, email.sender_choice)
    zone = request_zone(request)
    return render(
        request,
        "outbox_edit.html",
        actor,
        {
            "email": email,
            "choices": choices,
            "current_is_choice": any(choice.key == email.sender_choice for choice in choices),
            "fallback_notice": kept.notice,
            "typed": typed
            or EditTyped(
                email.sender_choice,
                email.subject,
                email.html_body or "",
                _typed_time(email.scheduled_for, zone),
            ),
            "error": error,
        },
        status_code,
    )


@router.get("/outbox/{outbound_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, outbound_id: uuid.UUID, actor: PageActor, sessions: Sessions) -> Response:
    actor.require(Permission.SEND_EMAIL)
    with session_scope(sessions) as session:
        email = service.get_outbound(session, actor, outbound_id)
        if email.status != service.SCHEDULED:
            flash(request, f"This email is {email.status}; only scheduled emails can be edited.", "error")
            return redirect("/outbox")
        return _render_edit(request, actor, session, outbound_id, None)


@router.post("/outbox/{outbound_id}/edit", response_class=HTMLResponse)
def save_edit(
    request: Request,
    outbound_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    form: CheckedForm,
) -> Response:
    actor.require(Permission.SEND_EMAIL)
    typed = EditTyped(
        _text(form, "sender"), _text(form, "subject"), _text(form, "html"), _text(form, "send_at")
    )
    try:
        with session_scope(sessions) as session:
            email = service.get_outbound(session, actor, outbound_id)
            current = email.sender_choice
            zone = request_zone(request)
            unchanged_time = email.scheduled_for is not None and typed.send_at == _typed_time(
                email.scheduled_for, zone
            )
            send_at = None if unchanged_time else _send_time(typed.send_at, now, zone)
            # An unchanged From is left to the outbox, which keeps it while it is a choice and otherwise
            # falls back to the first choice, saying so.
            sender = None if typed.sender in {"", current} else typed.sender
            changes = service.Changes(sender=sender, subject=typed.subject, html=typed.html, send_at=send_at)
            email = service.edit_scheduled(session, actor, outbound_id, changes, settings=settings, now=now)
            notice = email.notice
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            return _render_edit(
                request,
                actor,
                session,
                outbound_id,
                typed,
                error=str(error),
                status_code=409 if isinstance(error, ConflictError) else 400,
            )
    flash(request, "Saved: the scheduled email was changed.")
    if notice:
        flash(request, notice, "notice")
    return redirect("/outbox")


@router.post("/outbox/{outbound_id}/cancel")
def cancel_email(
    request: Request, outbound_id: uuid.UUID, actor: PageActor, sessions: Sessions, form: CheckedForm
) -> Response:
    try:
        with session_scope(sessions) as session:
            email = service.cancel(session, actor, outbound_id)
            subject = email.subject
    except ConflictError as error:
        flash(request, f"{error}.", "error")
        return redirect("/outbox")
    flash(request, f"Cancelled: {subject or '(no subject)'} will not be sent.")
    return redirect("/outbox")
