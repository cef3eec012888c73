"""The outbox: compose an email under the From rules, keep it until it leaves, and record its fate.

An email is stored `queued` (or `scheduled`) with its own Message-ID and an idempotency key before
anything is sent; the delivery job claims it (`queued` -> `sending`) with one conditional UPDATE, so
two workers never take the same email, and records the outcome only while its claim still stands.
An email found in `sending` after its claim expired may have left already (the process died between
handing it over and recording it): it is looked up in the mailbox's Sent folder before any retry,
and `recovery.verdict` decides from what was found and whether it had been handed over.

A claim names its holder (host, pid, start mark). A worker on the holder's host that finds the holder
gone marks the claim abandoned (`take_over_abandoned`), so a restarted worker does not wait out the
lease; a claim held from another host can only be judged by its lease.

Takes a session; may flush, never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, Update, or_, select, update
from sqlalchemy.orm import Session

from touchline.config import Settings, relay_configured
from touchline.inbound.parse.headers import message_ids
from touchline.inbound.store.bulk import chunks
from touchline.inbound.store.directory import directories
from touchline.inbound.store.service import Holding, RawIncoming, store_raw_messages
from touchline.kit.addresses import InvalidAddressError, normalise_address
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.processes import ProcessIdentity, StartOf, holder_gone, this_process
from touchline.mailboxes.service import backoff_seconds
from touchline.models import (
    Company,
    Contact,
    Email,
    Mailbox,
    OutboundEmail,
    OutboundRecipient,
    Template,
    User,
    WorkspaceSettings,
)
from touchline.outbound import repository
from touchline.outbound.compose import mime
from touchline.outbound.compose.merge import EnduserFields, MergeContext
from touchline.outbound.compose.plaintext import text_from_html
from touchline.outbound.compose.senders import ACCOUNT_OWNER, FromChoice, FromDecision
from touchline.outbound.compose.templates import RenderedEmail, RenderFailure, TemplateInvalidError, render
from touchline.outbound.compose.unsubscribes import (
    SendKind,
    carries_unsubscribe_link,
    unsubscribe_skip_reason,
)
from touchline.outbound.engagement import repository as engagement_records
from touchline.outbound.from_field import service as from_field
from touchline.outbound.from_field.repository import team_user_of
from touchline.outbound.from_field.service import ComposeContext
from touchline.outbound.send.contract import Delivered, DeliveryError, Outgoing
from touchline.outbound.send.delivery import SENDING_PROVIDERS, VIA_MAILBOX, VIA_RELAY
from touchline.outbound.templates import service as templates
from touchline.outbound.track.links import TrackingUrls
from touchline.outbound.track.service import tracked_html
from touchline.outbound.track.utm import rendered_utm
from touchline.worker import enqueue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

DELIVER_JOB: Final = "outbound.deliver"
DELIVERY_BATCH: Final = 100
"""Emails one delivery job takes, each in turn: a bulk send writes one job per batch instead of one
per email. Claims decide who sends, so an email in two jobs is sent once; the batch of a worker that
died is sent again when a worker starts or takes its claims over (`due_emails(..., at_once=True)`)."""

SCHEDULED, QUEUED, SENDING, SENT, FAILED, UNKNOWN, CANCELLED = (
    "scheduled",
    "queued",
    "sending",
    "sent",
    "failed",
    "unknown",
    "cancelled",
)
SENDING_LEASE: Final = timedelta(minutes=10)
"""How long a claim holds. Longer than any one delivery (SMTP timeouts are a minute), so an email
still `sending` after it was left by a process that died, not by one that is slow. A claim whose
holder is known to be gone (`take_over_abandoned`) is taken over before."""
LOST_JOB_AFTER: Final = timedelta(minutes=5)
"""When a queued email's job has not claimed it by then (the queue lost it), the scheduler sends
another; a duplicate job finds the email claimed and does nothing."""
MAX_ATTEMPTS: Final = 8
MAX_RECIPIENTS: Final = 100


class SendRefused(InvalidInputError):
    """Nothing was sent, and this says why (From rules, addresses, header injection, no way out)."""


class Skipped(SendRefused):
    """A bulk or sequence email not made for this enduser (unsubscribed); the reason is shown."""


class Undeliverable(Skipped):
    """An email not made because a recipient's address bounced hard; says how to clear it."""


@dataclass(frozen=True)
class Recipient:
    address: str
    name: str = ""


@dataclass(frozen=True)
class Draft:
    """What a user asks to send. `sender` is an address or `account-owner`. With a stored template
    (by name or id) the subject and bodies are rendered from it for the first To recipient."""

    sender: str
    to: Sequence[Recipient]
    subject: str = ""
    html: str = ""
    cc: Sequence[Recipient] = ()
    text: str | None = None
    send_at: datetime | None = None
    reply_to_email_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    template: str | None = None
    template_id: uuid.UUID | None = None
    kind: SendKind = "personal"
    """`bulk` and `sequence` emails carry `unsubscribe_url` in List-Unsubscribe and are refused
    (`Skipped`) for an enduser who unsubscribed; `personal` becomes `reply` when it answers an email."""
    unsubscribe_url: str | None = None
    bulk_id: uuid.UUID | None = None
    sequence_id: uuid.UUID | None = None
    sequence_step: int | None = None
    track_opens: bool | None = None
    """Track opens (a pixel); None: the template's switch, else the workspace's setting."""
    track_clicks: bool | None = None
    """Track clicks (links through a redirect); None: the template's switch, else the workspace's."""
    utm: Mapping[str, str] | None = None
    """UTM parameters for its tracked links (merge fields allowed); each one given replaces the
    template's."""


@dataclass(frozen=True)
class Changes:
    """An edit of a scheduled email; None leaves a field as it is."""

    sender: str | None = None
    to: Sequence[Recipient] | None = None
    cc: Sequence[Recipient] | None = None
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    send_at: datetime | None = None


# --- who may send from where -----------------------------------------------------------------------


def composer_of(actor: Actor) -> uuid.UUID:
    """The user an email is sent by; refused without send_email or without a user."""
    actor.require(Permission.SEND_EMAIL)
    if actor.user_id is None:
        raise SendRefused("emails are sent by a user; act as one (--as USER)")
    return actor.user_id


@dataclass(frozen=True)
class Route:
    """How an email leaves: whose address, through which mailbox or the relay."""

    choice: FromChoice
    user: User
    address: str
    """The address the user sends as, as the From rules know them (their mailbox's, else their own)."""
    mailbox: Mailbox | None
    via: str


def decide_from(
    session: Session, actor: Actor, sender: str, company: Company | None, answered: Email | None = None
) -> FromChoice:
    """The From choice `sender` names, if the From rules let the actor use it for this email."""
    context = ComposeContext(
        company_id=company.id if company is not None else None,
        reply_to=answered.id if answered is not None else None,
    )
    return _decided(from_field.check_from(session, actor, sender, context))


def _decided(decision: FromDecision) -> FromChoice:
    if not decision.allowed or decision.choice is None:
        raise SendRefused(decision.reason)
    return decision.choice


def route_for(
    session: Session, actor: Actor, choice: FromChoice, company: Company | None, settings: Settings
) -> Route:
    """The route of a decided From choice; Account Owner is the company's (each company's own)."""
    if choice.key == ACCOUNT_OWNER:
        if company is None or company.account_owner is None:
            name = company.name if company is not None else "this email's company"
            raise SendRefused(f"{name} has no account owner to send as; choose another From")
        user = company.account_owner
    else:
        assert choice.user_id is not None
        user = workspace_service.get_user(session, actor, choice.user_id)
    sender, mailbox = team_user_of(session, user)
    address = sender.address
    if mailbox is not None and mailbox.provider in SENDING_PROVIDERS:
        return Route(choice, user, address, mailbox, VIA_MAILBOX)
    if relay_configured(settings):
        return Route(choice, user, address, None, VIA_RELAY)
    raise SendRefused(
        f"{user.email} has no mailbox touchline can send through, and no relay is configured; "
        "connect a mailbox or ask the operator to set TOUCHLINE_RELAY_SMTP_HOST"
    )


def _checked_recipients(field_name: str, recipients: Sequence[Recipient]) -> list[Recipient]:
    checked = []
    for recipient in recipients:
        mime.refuse_header_injection(f"{field_name} address", recipient.address)
        try:
            address = normalise_address(recipient.address)
        except InvalidAddressError as error:
            raise SendRefused(f"{field_name} address {recipient.address!r} is not usable: {error}") from None
        checked.append(Recipient(address, recipient.name.strip()))
    return checked


def _contacts_of(
    session: Session, workspace_id: uuid.UUID, recipients: Sequence[Recipient]
) -> dict[str, Contact]:
    """The workspace's contacts among an email's recipients, by address: read once per email and
    used by every decision that needs them."""
    addresses = [r.address for r in recipients]
    return {
        contact.email: contact
        for contact in session.scalars(
            select(Contact).where(Contact.workspace_id == workspace_id, Contact.email.in_(addresses))
        )
    }


def _company_of(to: Sequence[Recipient], contacts: Mapping[str, Contact]) -> Company | None:
    """The company an email is sent on behalf of: that of its first To address that is a contact."""
    for recipient in to:
        contact = contacts.get(recipient.address)
        if contact is not None and contact.company is not None:
            return contact.company
    return None


def _answered(session: Session, workspace_id: uuid.UUID, email_id: uuid.UUID | None) -> Email | None:
    if email_id is None:
        return None
    email = session.scalar(select(Email).where(Email.id == email_id, Email.workspace_id == workspace_id))
    if email is None:
        raise NotFoundError("the email being answered was not found")
    return email


def _outgoing(
    row: OutboundEmail, now: datetime, recipients: Sequence[OutboundRecipient], html: str | None = None
) -> tuple[mime.OutgoingEmail, str]:
    """The email as it would leave now (with `html` as its HTML part, when given), and the domain of
    its Message-ID (the sender's)."""
    columns = {column: getattr(row, column) for column in _MESSAGE_COLUMNS}
    if html is not None:
        columns["html_body"] = html
    return _outgoing_of(columns, now, [(r.kind, r.address, r.name) for r in recipients])


_MESSAGE_COLUMNS: Final = (
    "from_address",
    "from_name",
    "subject",
    "text_body",
    "html_body",
    "in_reply_to",
    "references",
    "unsubscribe_url",
)


def _outgoing_of(
    columns: Mapping[str, Any], now: datetime, recipients: Sequence[tuple[str, str, str]]
) -> tuple[mime.OutgoingEmail, str]:
    """`_outgoing` from an email's column values and its recipients' (kind, address, name)."""
    email = mime.OutgoingEmail(
        sender=mime.Mailbox(columns["from_address"], columns["from_name"]),
        to=tuple(mime.Mailbox(address, name) for kind, address, name in recipients if kind == "to"),
        cc=tuple(mime.Mailbox(address, name) for kind, address, name in recipients if kind == "cc"),
        subject=columns["subject"],
        text=columns["text_body"],
        html=columns["html_body"],
        date=now,
        in_reply_to=columns["in_reply_to"],
        references=tuple(columns["references"]),
        unsubscribe=mime.Unsubscribe(columns["unsubscribe_url"]) if columns["unsubscribe_url"] else None,
    )
    return email, columns["from_address"].rpartition("@")[2]


def checked_message_id(
    columns: Mapping[str, Any], recipients: Sequence[Mapping[str, Any]], now: datetime
) -> str:
    """The Message-ID of an email given as column values (as `outbound_values` and
    `recipient_values` make them) after the checks building its message makes; SendRefused names
    the field that breaks one."""
    try:
        return mime.validate_outgoing(
            *_outgoing_of(columns, now, [(r["kind"], r["address"], r["name"]) for r in recipients])
        )
    except mime.InvalidMessageError as error:
        raise SendRefused(str(error)) from None


def _built_message(
    session: Session, row: OutboundEmail, now: datetime, tracking: TrackingUrls | None
) -> mime.BuiltMessage:
    """The message as it leaves now, with the Message-ID it was given when queued, and its tracking
    tokens (added to the session, so stored with the bytes) when it is tracked. `tracking`: where
    the tracking endpoints answer; None builds it untracked."""
    html = tracked_html(session, row, tracking) if tracking is not None else None
    email, domain = _outgoing(row, now, row.recipients, html)
    return mime.build_message(email, domain, message_id=row.message_id or None)


def recipient_rows(
    workspace_id: uuid.UUID,
    to: Sequence[Recipient],
    cc: Sequence[Recipient],
    contacts: Mapping[str, Contact],
) -> list[OutboundRecipient]:
    """The recipient rows of an email, each with the contact (by address) and company it reaches."""
    return [OutboundRecipient(**values) for values in recipient_values(workspace_id, to, cc, contacts)]


class RecipientContact(Protocol):
    """What a recipient row reads of the contact it reaches (an ORM contact, or its columns)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def company_id(self) -> uuid.UUID | None: ...


class Deliverability(Protocol):
    """What says whether a contact's address takes email (an ORM contact, or its columns)."""

    @property
    def undeliverable_at(self) -> datetime | None: ...
    @property
    def undeliverable_reason(self) -> str | None: ...


def recipient_values(
    workspace_id: uuid.UUID,
    to: Sequence[Recipient],
    cc: Sequence[Recipient],
    contacts: Mapping[str, RecipientContact],
) -> list[dict[str, Any]]:
    """The columns of `recipient_rows`."""
    rows = []
    first_marked = False
    for position, (kind, recipient) in enumerate([("to", r) for r in to] + [("cc", r) for r in cc]):
        contact = contacts.get(recipient.address)
        first = kind == "to" and contact is not None and not first_marked
        first_marked = first_marked or first
        rows.append(
            {
                "workspace_id": workspace_id,
                "position": position,
                "kind": kind,
                "address": recipient.address,
                "name": recipient.name,
                "first_enduser": first,
                "contact_id": contact.id if contact is not None else None,
                "company_id": contact.company_id if contact is not None else None,
            }
        )
    return rows


def _bracketed(stored_id: str | None) -> str | None:
    """A stored Message-ID (kept without brackets) as a header names it, when it is a usable one."""
    if not stored_id:
        return None
    try:
        return mime.check_message_id("References", f"<{stored_id}>")
    except mime.InvalidMessageError:
        return None


def _threading(answered: Email | None) -> list[str]:
    """References of a reply: the answered email's own, then its id (RFC 5322 3.6.4)."""
    if answered is None:
        return []
    ids = (_bracketed(value) for value in (*answered.references, answered.message_id))
    return [value for value in ids if value]


def _route_values(route: Route) -> dict[str, Any]:
    return {
        "sender_choice": route.choice.key,
        "sender_user_id": route.user.id,
        "from_address": route.address,
        "from_name": route.user.name,
        "mailbox_id": route.mailbox.id if route.mailbox is not None else None,
        "via": route.via,
    }


def _apply_route(row: OutboundEmail, route: Route) -> None:
    for column, value in _route_values(route).items():
        setattr(row, column, value)


def _skip_unsubscribed(kind: SendKind, to: Sequence[Recipient], contacts: Mapping[str, Contact]) -> None:
    if not carries_unsubscribe_link(kind):
        return
    for recipient in to:
        contact = contacts.get(recipient.address)
        reason = unsubscribe_skip_reason(kind, contact.unsubscribed_at) if contact is not None else None
        if reason is not None:
            raise Skipped(f"{recipient.address}: {reason}")


def undeliverable_reason(contact: Deliverability) -> str | None:
    """Why a contact's address takes no more email (a hard bounce), or None."""
    if contact.undeliverable_at is None:
        return None
    return contact.undeliverable_reason or "marked undeliverable"


def _refuse_undeliverable(recipients: Sequence[Recipient], contacts: Mapping[str, Contact]) -> None:
    for recipient in recipients:
        contact = contacts.get(recipient.address)
        reason = undeliverable_reason(contact) if contact is not None else None
        if contact is not None and reason is not None:
            raise Undeliverable(
                f"{recipient.address} is undeliverable ({reason}); once the address works again an admin "
                f"clears it with `touchline contact deliverable --workspace W {recipient.address}` or "
                f"DELETE /api/v1/contacts/{contact.id}/undeliverable"
            )


def _stored_template(session: Session, actor: Actor, draft: Draft) -> Template | None:
    if draft.template_id is not None:
        return templates.get_template(session, actor, draft.template_id)
    if draft.template is not None:
        try:
            return templates.template_named(session, actor, draft.template)
        except NotFoundError as error:
            raise SendRefused(str(error)) from None
    return None


def _merge_context(
    session: Session, actor: Actor, to: Sequence[Recipient], contacts: Mapping[str, Contact], sender: User
) -> MergeContext:
    """What a template reads for this email: its first To recipient that is a contact, else the
    first To address alone (no name, no company)."""
    first = next((contacts[r.address].id for r in to if r.address in contacts), None)
    if first is not None:
        return repository.merge_contexts(session, actor, [first], sender)[first]
    return MergeContext(enduser=EnduserFields(email=to[0].address), sender=repository.sender_fields(sender))


def _rendered(template: Template, context: MergeContext) -> RenderedEmail:
    try:
        outcome = render(templates.compiled(template), context)
    except TemplateInvalidError as error:
        raise SendRefused(f"template {template.name!r} cannot be used: {error}") from None
    if isinstance(outcome, RenderFailure):
        raise SendRefused(f"template {template.name!r} cannot be sent to {context.enduser.email}: {outcome}")
    return outcome


@dataclass(frozen=True)
class Content:
    """What an email says, and the template (if any) it was rendered from."""

    subject: str
    html: str
    text: str
    track_opens: bool = False
    track_clicks: bool = False
    template: Template | None = None
    utm: Mapping[str, str] | None = None
    """UTM parameters added to its tracked links, merge fields filled in for its recipient."""


def filled_utm(given: Mapping[str, str | None], context: MergeContext) -> dict[str, str] | None:
    """The UTM parameters of a send (the template's, overridden by the send's own), merge fields
    filled in for this recipient; None when there are none."""
    kept = {key: value for key, value in given.items() if value}
    if not kept:
        return None
    try:
        return rendered_utm(kept, context) or None
    except InvalidInputError as error:
        raise SendRefused(f"UTM parameters cannot be filled in: {error}") from None


def rendered_content(
    template: Template,
    rendered: RenderedEmail,
    context: MergeContext,
    utm: Mapping[str, str] | None = None,
) -> Content:
    """What a template says for one recipient, with its UTM parameters (`utm` overriding the
    template's): every send from a template, single, bulk or sequence, comes through here."""
    html, text = _body(rendered.html or "", rendered.text)
    return Content(
        rendered.subject,
        html,
        text,
        rendered.track_opens,
        rendered.track_clicks,
        template,
        filled_utm({**(template.utm or {}), **(utm or {})}, context),
    )


def workspace_tracking(session: Session, workspace_id: uuid.UUID) -> tuple[bool, bool]:
    """Whether emails not made from a template track opens and clicks: the workspace's settings."""
    row = session.get(WorkspaceSettings, workspace_id)
    return (row.track_opens, row.track_clicks) if row is not None else (True, True)


def _body(html: str, text: str | None) -> tuple[str, str]:
    if not html.strip():
        raise SendRefused("the email has no body")
    return html, text if text is not None else text_from_html(html)


def _decided_route(
    session: Session,
    actor: Actor,
    draft: Draft,
    to: Sequence[Recipient],
    contacts: Mapping[str, Contact],
    settings: Settings,
) -> tuple[Route, Company | None, Email | None]:
    """The way `draft` leaves, its From decided for its company and the email it answers."""
    if not to:
        raise SendRefused("an email needs at least one To recipient")
    company = _company_of(to, contacts)
    answered = _answered(session, actor.workspace_id, draft.reply_to_email_id)
    choice = decide_from(session, actor, draft.sender, company, answered)
    return route_for(session, actor, choice, company, settings), company, answered


# --- composing -------------------------------------------------------------------------------------


def sender_of(session: Session, actor: Actor, draft: Draft, *, settings: Settings) -> User:
    """The user `draft` would be sent as, decided as `send_email` decides it (refusals included): whose
    fields a template preview fills in."""
    composer_of(actor)
    to = _checked_recipients("To", draft.to)
    contacts = _contacts_of(session, actor.workspace_id, to)
    route, _, _ = _decided_route(session, actor, draft, to, contacts, settings)
    return route.user


def outbound_values(
    actor: Actor,
    draft: Draft,
    content: Content,
    route: Route,
    company: Company | None,
    *,
    now: datetime,
    answered: Email | None = None,
) -> dict[str, Any]:
    """The columns of the outbound email of a decided send (its From route and content), before its
    Message-ID is given: `queued`, or `scheduled` for a later send_at."""
    scheduled = draft.send_at is not None and draft.send_at > now
    template = content.template
    return {
        "workspace_id": actor.workspace_id,
        "created_by": actor.user_id,
        "company_id": company.id if company is not None else None,
        "subject": content.subject,
        "html_body": content.html,
        "text_body": content.text,
        "in_reply_to": _bracketed(answered.message_id) if answered is not None else None,
        "references": _threading(answered),
        "idempotency_key": draft.idempotency_key or uuid.uuid4().hex,
        "message_id": "",
        "status": SCHEDULED if scheduled else QUEUED,
        "scheduled_for": draft.send_at if scheduled else None,
        "next_attempt_at": None if scheduled else now + LOST_JOB_AFTER,
        "attempts": 0,
        "variant": "",
        "track_opens": content.track_opens if draft.track_opens is None else draft.track_opens,
        "track_clicks": content.track_clicks if draft.track_clicks is None else draft.track_clicks,
        "template_id": template.id if template is not None else None,
        "template_name": template.name if template is not None else None,
        "template_version": template.version if template is not None else None,
        "kind": "reply" if draft.kind == "personal" and answered is not None else draft.kind,
        "unsubscribe_url": draft.unsubscribe_url if carries_unsubscribe_link(draft.kind) else None,
        "bulk_id": draft.bulk_id,
        "sequence_id": draft.sequence_id,
        "sequence_step": draft.sequence_step,
        "utm": dict(content.utm) if content.utm else None,
        **_route_values(route),
    }


def new_outbound(
    actor: Actor,
    draft: Draft,
    content: Content,
    route: Route,
    company: Company | None,
    recipients: list[OutboundRecipient],
    *,
    now: datetime,
    answered: Email | None = None,
) -> OutboundEmail:
    """The outbound email of a decided send (its From route, content and recipients), not stored yet:
    `queued`, or `scheduled` for a later send_at. Building its message is what refuses header
    injection through any field (SendRefused)."""
    row = OutboundEmail(**outbound_values(actor, draft, content, route, company, now=now, answered=answered))
    try:
        # Checked now, written when claimed: the checks build_message makes, without the bytes.
        row.message_id = mime.validate_outgoing(*_outgoing(row, now, recipients))
    except mime.InvalidMessageError as error:
        raise SendRefused(str(error)) from None
    row.recipients = recipients
    return row


def send_email(
    session: Session, actor: Actor, draft: Draft, *, settings: Settings, now: datetime
) -> OutboundEmail:
    """Store an email to send (now: `queued`, its job enqueued after the commit; later: `scheduled`).

    A repeated idempotency key returns the email it made the first time, sending nothing more."""
    composer_id = composer_of(actor)
    if draft.idempotency_key:
        mime.refuse_header_injection("the idempotency key", draft.idempotency_key)
        existing = session.scalar(
            select(OutboundEmail).where(
                OutboundEmail.workspace_id == actor.workspace_id,
                OutboundEmail.idempotency_key == draft.idempotency_key,
            )
        )
        if existing is not None:
            if existing.created_by != composer_id:
                raise ConflictError("this idempotency key was used by another user's email")
            return existing
    template = _stored_template(session, actor, draft)
    if carries_unsubscribe_link(draft.kind) and not draft.unsubscribe_url:
        raise SendRefused(f"a {draft.kind} email needs its enduser's unsubscribe link")
    to = _checked_recipients("To", draft.to)
    cc = _checked_recipients("Cc", draft.cc)
    if not to:
        raise SendRefused("an email needs at least one To recipient")
    if len(to) + len(cc) > MAX_RECIPIENTS:
        raise SendRefused(f"an email goes to at most {MAX_RECIPIENTS} recipients; use a bulk send")
    contacts = _contacts_of(session, actor.workspace_id, [*to, *cc])
    _skip_unsubscribed(draft.kind, to, contacts)
    _refuse_undeliverable([*to, *cc], contacts)
    route, company, answered = _decided_route(session, actor, draft, to, contacts, settings)
    wants_utm = any((draft.utm or {}).values())
    context = _merge_context(session, actor, to, contacts, route.user) if template or wants_utm else None
    if template is not None and context is not None:
        content = rendered_content(template, _rendered(template, context), context, draft.utm)
    else:
        html, text = _body(draft.html, draft.text)
        opens, clicks = workspace_tracking(session, actor.workspace_id)
        utm = filled_utm(draft.utm, context) if draft.utm and context is not None else None
        content = Content(draft.subject, html, text, opens, clicks, utm=utm)
    scheduled = draft.send_at is not None and draft.send_at > now
    row = new_outbound(
        actor,
        draft,
        content,
        route,
        company,
        recipient_rows(actor.workspace_id, to, cc, contacts),
        now=now,
        answered=answered,
    )
    session.add(row)
    session.flush()
    if not scheduled:
        enqueue_deliveries(session, [row.id])
    return row


def delivery_batches(outbound_ids: Sequence[uuid.UUID]) -> list[list[str]]:
    """The `outbound_ids` of each delivery job that sends these emails."""
    ids = [str(outbound_id) for outbound_id in outbound_ids]
    return [ids[start : start + DELIVERY_BATCH] for start in range(0, len(ids), DELIVERY_BATCH)]


def enqueue_deliveries(session: Session, outbound_ids: Sequence[uuid.UUID]) -> None:
    """Send the delivery jobs of these emails once `session` commits."""
    for batch in delivery_batches(outbound_ids):
        enqueue(session, DELIVER_JOB, outbound_ids=batch)


def _visible(actor: Actor) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [OutboundEmail.workspace_id == actor.workspace_id]
    if not actor.can(Permission.ADMIN_ACCESS):
        conditions.append(OutboundEmail.created_by == actor.user_id)
    return conditions


def list_outbox(
    session: Session,
    actor: Actor,
    *,
    limit: int = 500,
    status: str | None = None,
    created_by: uuid.UUID | None = None,
) -> list[OutboundEmail]:
    """The actor's own outbound emails, newest first; every one of the workspace for admins. `status`
    and `created_by` narrow what the actor may see; they never widen it."""
    conditions = _visible(actor)
    if status is not None:
        conditions.append(OutboundEmail.status == status)
    if created_by is not None:
        conditions.append(OutboundEmail.created_by == created_by)
    return list(
        session.scalars(
            select(OutboundEmail).where(*conditions).order_by(OutboundEmail.created_at.desc()).limit(limit)
        )
    )


def get_outbound(session: Session, actor: Actor, outbound_id: uuid.UUID) -> OutboundEmail:
    row = session.scalar(select(OutboundEmail).where(OutboundEmail.id == outbound_id, *_visible(actor)))
    if row is None:
        raise NotFoundError("outbound email not found")
    return row


def edit_scheduled(
    session: Session,
    actor: Actor,
    outbound_id: uuid.UUID,
    changes: Changes,
    *,
    settings: Settings,
    now: datetime,
) -> OutboundEmail:
    """Edit an email that has not left yet. Its From is decided again for the editor (SPEC §5): one
    that is no longer a choice falls back to the first choice, and `notice` says so."""
    composer_of(actor)
    row = get_outbound(session, actor, outbound_id)
    session.refresh(row, with_for_update=True)  # the scheduler's promotion waits for this edit
    if row.status != SCHEDULED:
        raise ConflictError(f"this email is {row.status}; only scheduled emails can be edited")
    to = _checked_recipients("To", changes.to) if changes.to is not None else None
    cc = _checked_recipients("Cc", changes.cc) if changes.cc is not None else None
    if to is not None and not to:
        raise SendRefused("an email needs at least one To recipient")
    current_to = (
        to if to is not None else [Recipient(r.address, r.name) for r in row.recipients if r.kind == "to"]
    )
    current_cc = (
        cc if cc is not None else [Recipient(r.address, r.name) for r in row.recipients if r.kind == "cc"]
    )
    contacts = _contacts_of(session, actor.workspace_id, [*current_to, *current_cc])
    company = _company_of(current_to, contacts)
    notice = None
    if changes.sender is not None:
        context = ComposeContext(company_id=company.id if company is not None else None)
        choice = _decided(from_field.check_from(session, actor, changes.sender, context))
    else:
        kept = from_field.sender_after_edit(session, actor, row.sender_choice)
        choice, notice = kept.sender, kept.notice
    route = route_for(session, actor, choice, company, settings)
    _apply_route(row, route)
    row.notice = notice
    row.company_id = company.id if company is not None else None
    if changes.subject is not None:
        row.subject = changes.subject
    if changes.html is not None or changes.text is not None:
        row.html_body, row.text_body = _body(
            changes.html if changes.html is not None else row.html_body or "", changes.text
        )
    if changes.send_at is not None:
        row.scheduled_for = changes.send_at
    if to is not None or cc is not None:
        row.recipients.clear()
        session.flush()
        row.recipients.extend(recipient_rows(actor.workspace_id, current_to, current_cc, contacts))
    try:
        mime.validate_outgoing(*_outgoing(row, now, row.recipients), message_id=row.message_id or None)
    except mime.InvalidMessageError as error:
        raise SendRefused(str(error)) from None
    session.flush()
    return row


def cancel(session: Session, actor: Actor, outbound_id: uuid.UUID) -> OutboundEmail:
    """Cancel an email that has not been claimed for delivery yet."""
    composer_of(actor)
    row = get_outbound(session, actor, outbound_id)
    changed = _changed(
        session,
        update(OutboundEmail)
        .where(OutboundEmail.id == row.id, OutboundEmail.status.in_((SCHEDULED, QUEUED)))
        .values(status=CANCELLED, next_attempt_at=None),
    )
    session.refresh(row)
    if not changed:
        raise ConflictError(f"this email is {row.status} and can no longer be cancelled")
    return row


# --- delivery ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One delivery attempt's hold on an email. `recovering`: the email was found `sending` from an
    earlier attempt whose outcome was never recorded."""

    outbound_id: uuid.UUID
    claimed_at: datetime
    recovering: bool
    outgoing: Outgoing
    mailbox_id: uuid.UUID | None
    via: str
    handed_over: bool = False
    """Recovering: the earlier attempt had committed that it was handing the message over."""


def _changed(session: Session, statement: Update) -> int:
    """How many rows a conditional UPDATE changed: one decides who holds an email."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return cast("CursorResult[Any]", result).rowcount


def _holder_values(holder: ProcessIdentity) -> dict[str, object]:
    return {
        "claim_host": holder.host,
        "claim_pid": holder.pid,
        "claim_started": holder.started,
        "claim_abandoned_at": None,
    }


def _claim_left(claimed_at: datetime, abandoned_at: datetime | None, now: datetime) -> bool:
    """Whether a `sending` email's claim may be taken over: its lease ran out, or its holder is gone."""
    return abandoned_at is not None or claimed_at <= now - SENDING_LEASE


def claim(
    session: Session,
    outbound_id: uuid.UUID,
    now: datetime,
    holder: ProcessIdentity | None = None,
    *,
    tracking: TrackingUrls | None = None,
) -> Claim | None:
    """Take an email for delivery, or None when it is not this attempt's to send (sent, cancelled,
    scheduled for later, or held by a live claim of another worker). `holder` is this process;
    `tracking` where the tracking endpoints of a tracked email's links and pixel answer."""
    holder_values = _holder_values(holder or this_process())
    taken = _changed(
        session,
        update(OutboundEmail)
        .where(OutboundEmail.id == outbound_id, OutboundEmail.status == QUEUED)
        .values(
            status=SENDING,
            claimed_at=now,
            attempts=OutboundEmail.attempts + 1,
            updated_at=now,
            handed_over_at=None,  # this attempt's own handover is what counts
            **holder_values,
        ),
    )
    recovering = False
    if not taken:
        row = session.get(OutboundEmail, outbound_id)
        if row is None or row.status != SENDING or row.claimed_at is None:
            return None
        if not _claim_left(row.claimed_at, row.claim_abandoned_at, now):
            return None
        recovering = True
        taken = _changed(
            session,
            update(OutboundEmail)
            .where(
                OutboundEmail.id == outbound_id,
                OutboundEmail.status == SENDING,
                OutboundEmail.claimed_at == row.claimed_at,
            )
            # handed_over_at stays: it is what the earlier attempt did
            .values(claimed_at=now, updated_at=now, **holder_values),
        )
        if not taken:
            return None
    row = session.get(OutboundEmail, outbound_id, populate_existing=True)
    assert row is not None
    if row.raw_message is None:
        # Built once, when first claimed (Date: the moment it leaves); every later attempt sends
        # these same bytes, so a copy found in Sent is this very message (and the same tokens).
        row.raw_message = _built_message(session, row, now, tracking).raw
    session.flush()
    return Claim(
        outbound_id=row.id,
        claimed_at=now,
        recovering=recovering,
        outgoing=Outgoing(
            raw=row.raw_message,
            envelope_from=row.from_address,
            recipients=tuple(dict.fromkeys(r.address for r in row.recipients)),
            message_id=row.message_id,
            in_reply_to=row.in_reply_to or "",
        ),
        mailbox_id=row.mailbox_id,
        via=row.via,
        handed_over=recovering and row.handed_over_at is not None,
    )


def record_handover(session: Session, held: Claim, now: datetime) -> bool:
    """Note, while the claim stands, that the message is about to be handed over; committed before
    the provider may take it. False when another attempt took the claim: then it must not be."""
    return bool(
        _changed(
            session,
            update(OutboundEmail)
            .where(
                OutboundEmail.id == held.outbound_id,
                OutboundEmail.status == SENDING,
                OutboundEmail.claimed_at == held.claimed_at,
            )
            .values(handed_over_at=now),
        )
    )


def take_over_abandoned(
    session: Session, here: ProcessIdentity, start_of: StartOf, now: datetime
) -> list[uuid.UUID]:
    """Mark abandoned the live-leased claims held by processes of this host that are gone, so that
    their emails are recovered now rather than when the lease runs out; returns those emails.
    Claims held from other hosts are left to their lease: no process there can be seen from here."""
    held_here = session.execute(
        select(
            OutboundEmail.id,
            OutboundEmail.claimed_at,
            OutboundEmail.claim_pid,
            OutboundEmail.claim_started,
        ).where(
            OutboundEmail.status == SENDING,
            OutboundEmail.claim_host == here.host,
            OutboundEmail.claim_abandoned_at.is_(None),
            OutboundEmail.claimed_at > now - SENDING_LEASE,
        )
    ).all()
    abandoned = []
    for outbound_id, claimed_at, pid, started in held_here:
        holder = ProcessIdentity.recorded(here.host, pid, started)
        if not holder_gone(holder, here, start_of):
            continue
        if _changed(
            session,
            update(OutboundEmail)
            .where(
                OutboundEmail.id == outbound_id,
                OutboundEmail.status == SENDING,
                OutboundEmail.claimed_at == claimed_at,
                OutboundEmail.claim_abandoned_at.is_(None),
            )
            .values(claim_abandoned_at=now, updated_at=now),
        ):
            abandoned.append(outbound_id)
    return abandoned


def _held(session: Session, held: Claim) -> OutboundEmail | None:
    """The email, locked, while `held` still stands; None when another attempt took it over."""
    row = session.scalar(
        select(OutboundEmail)
        .where(
            OutboundEmail.id == held.outbound_id,
            OutboundEmail.status == SENDING,
            OutboundEmail.claimed_at == held.claimed_at,
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return row


def record_sent(session: Session, held: Claim, delivered: Delivered, now: datetime) -> bool:
    """`sent`, with the provider's id and any refused recipients, and the sent copy stored on the
    timelines; False when the claim was lost meanwhile."""
    row = _held(session, held)
    if row is None:
        return False
    row.status, row.sent_at, row.updated_at = SENT, now, now
    row.provider_message_id = delivered.provider_message_id or None
    row.error, row.next_attempt_at = None, None
    refused = dict(delivered.refused_recipients)
    for recipient in row.recipients:
        if recipient.address in refused:
            recipient.refused = refused[recipient.address][:2000]
    if refused:
        row.error = "; ".join(f"{address}: {reason}" for address, reason in refused.items())[:4000]
    _store_sent_copy(session, row)
    engagement_records.ensure_record(session, row, now)
    return True


def _store_sent_copy(session: Session, row: OutboundEmail) -> None:
    """The sent email on its company's and endusers' timelines, held by its sender, threaded with
    what it answers; keyed by its Message-ID, as the copy that sync later finds in Sent is."""
    if row.sender_user_id is None or row.raw_message is None:
        return
    store_raw_messages(
        session,
        row.workspace_id,
        directories.get(session, row.workspace_id),
        [
            RawIncoming(
                row.raw_message,
                Holding(user_id=row.sender_user_id, via="send", folder_name="Sent"),
                label=f"sent email {row.message_id}",
            )
        ],
        source="send",
        mailbox_id=row.mailbox_id,
    )
    [stored_id] = message_ids(row.message_id)  # stored as parsing reads it: without brackets
    row.email_id = session.scalar(
        select(Email.id).where(Email.workspace_id == row.workspace_id, Email.message_id == stored_id)
    )


def record_failure(session: Session, held: Claim, error: DeliveryError, now: datetime) -> str | None:
    """A temporary failure puts the email back in the queue after a backoff (the provider's
    Retry-After when longer); a permanent one, or too many attempts, marks it `failed`. Returns the
    new status, or None when the claim was lost."""
    row = _held(session, held)
    if row is None:
        return None
    row.error, row.updated_at = error.reason[:4000], now
    if error.temporary and row.attempts < MAX_ATTEMPTS:
        delay = max(backoff_seconds(row.attempts), error.retry_after_seconds or 0.0)
        row.status, row.next_attempt_at = QUEUED, now + timedelta(seconds=delay)
    else:
        row.status, row.next_attempt_at = FAILED, None
    return row.status


def postpone(session: Session, held: Claim, until: datetime, reason: str, now: datetime) -> str | None:
    """Back to the queue until `until`, saying why (a sending limit is reached); not a failed
    attempt, so it counts toward none of the email's retries. None when the claim was lost."""
    row = _held(session, held)
    if row is None:
        return None
    row.status, row.next_attempt_at = QUEUED, until
    row.error, row.updated_at = reason[:4000], now
    row.attempts = max(row.attempts - 1, 0)
    return row.status


def record_unknown(session: Session, held: Claim, reason: str, now: datetime) -> bool:
    row = _held(session, held)
    if row is None:
        return False
    row.status, row.error, row.updated_at, row.next_attempt_at = UNKNOWN, reason[:4000], now, None
    return True


def due_emails(session: Session, now: datetime, *, at_once: bool = False) -> list[uuid.UUID]:
    """Emails whose delivery should run now: scheduled ones that came due (made `queued`), queued
    ones whose backoff ended or whose job was lost, and `sending` ones whose claim expired or whose
    holder is gone.

    `at_once` (a worker starting, or one that took over a dead process's claims) also takes every
    queued email that waits only for the lost-job delay, not for a backoff or a sending limit (those
    say why in `error`): a job that died with its worker may have held it in its batch, and a
    duplicate job finds it claimed and does nothing."""
    session.execute(
        update(OutboundEmail)
        .where(OutboundEmail.status == SCHEDULED, OutboundEmail.scheduled_for <= now)
        .values(status=QUEUED, next_attempt_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    queued_due = OutboundEmail.next_attempt_at <= now
    if at_once:
        queued_due = queued_due | OutboundEmail.error.is_(None)
    due = list(
        session.scalars(
            select(OutboundEmail.id)
            .where(
                or_(
                    (OutboundEmail.status == QUEUED) & queued_due,
                    (OutboundEmail.status == SENDING)
                    & (
                        (OutboundEmail.claimed_at <= now - SENDING_LEASE)
                        | OutboundEmail.claim_abandoned_at.is_not(None)
                    ),
                )
            )
            .order_by(OutboundEmail.created_at)
        )
    )
    for batch in chunks(due):  # bound the IN list, as at_once may find a whole bulk send
        session.execute(
            update(OutboundEmail)
            .where(OutboundEmail.id.in_(batch), OutboundEmail.status == QUEUED)
            .values(next_attempt_at=now + LOST_JOB_AFTER)
            .execution_options(synchronize_session=False)
        )
    return due
