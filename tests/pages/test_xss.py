"""No text a user, a customer or a mail server can choose runs as script on any page, by escaping alone.

Payloads go into every field that people or mail can fill and that pages show; then Chromium, with the
Content-Security-Policy switched off (so that the policy cannot hide a mistake), visits every page and
clicks every button and link that stays on the site, accepting confirmations. A payload that runs sets
`window.__xss` to the number of its field, which an init script reports at once.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from html import escape
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.pages.test_companies_pages import log_in
from tests.receive.conftest import LOCAL_RELAY
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.receive import service as receive_service
from touchline.inbound.store.directory import load_directory
from touchline.inbound.store.service import Holding, store_email
from touchline.models import (
    BulkSend,
    BulkSkip,
    Email,
    EngagementEvent,
    Mailbox,
    MailboxFolder,
    NotificationDelivery,
    OutboundEmail,
    OutboundRecipient,
    Template,
    TrackedLink,
    User,
    Workspace,
)
from touchline.models.inbound import InboundRefusal
from touchline.outbound.engagement import service as engagement
from touchline.outbound.sequences import service as sequences
from touchline.outbound.templates import service as templates
from touchline.workspace import account_links, importing
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

pytestmark = pytest.mark.browser

ADMIN_EMAIL = "admin@team-a.example"
ADMIN_PASSWORD = "admin-password-123"
CUSTOMER_DOMAIN = "acme.example"

# Each breaks out of one context: a JavaScript string in an inline handler (inside an expression, such as
# `return confirm('…')`, or as a statement), a double- or single-quoted attribute, a <script> element, a
# URL. `{n}` becomes the number of the field, so that a failure names the field.
PAYLOADS = (
    "'-(window.__xss={n})-'",
    '"-(window.__xss={n})-"',
    "');window.__xss={n};//",
    '"><img src=x onerror="window.__xss={n}">',
    "' autofocus onfocus='window.__xss={n}' x='",
    "</script><script>window.__xss={n}</script>",
    "javascript:window.__xss={n}",
)

# Markup a customer could send in an HTML mail; the sanitiser must leave none of it active.
HOSTILE_MAIL_HTML = """<p>Quote attached.</p>
<script>window.__xss={n}</script><img src=x onerror="window.__xss={n}"><svg onload="window.__xss={n}"></svg>
<a href="javascript:window.__xss={n}">details</a><a href="/companies">our page</a>
<iframe srcdoc="&lt;script&gt;parent.__xss={n}&lt;/script&gt;"></iframe>
<form action="javascript:window.__xss={n}"><button>Open</button></form>
<style>body {{ background: url(javascript:window.__xss={n}) }}</style>
<div style="background:url(javascript:window.__xss={n})" onclick="window.__xss={n}">click</div>"""


def payloads(n: int) -> list[str]:
    return [payload.format(n=n) for payload in PAYLOADS]


@dataclass
class World:
    """Team A, with the ids of what the payloads were planted in: the pages to visit are built from them."""

    sessions: sessionmaker[Session]
    team: Team
    company_ids: list[uuid.UUID] = field(default_factory=list)
    contact_ids: list[uuid.UUID] = field(default_factory=list)
    email_ids: list[uuid.UUID] = field(default_factory=list)
    unassigned_ids: list[uuid.UUID] = field(default_factory=list)
    outbound_ids: list[uuid.UUID] = field(default_factory=list)
    template_ids: list[uuid.UUID] = field(default_factory=list)
    sequence_ids: list[uuid.UUID] = field(default_factory=list)
    bulk_ids: list[uuid.UUID] = field(default_factory=list)
    sent_ids: list[uuid.UUID] = field(default_factory=list)
    conversation_ids: list[uuid.UUID] = field(default_factory=list)

    @property
    def operator(self) -> Actor:
        return Actor.operator(self.team.workspace_id)

    def member(self, session: Session) -> Actor:
        user = session.get(User, self.team.member_id)
        assert user is not None
        return workspace_service.actor_for(user)

    def log_address(self) -> str:
        with session_scope(self.sessions) as session:
            return workspace_service.get_settings(session, self.operator).log_address

    def log(self, raw: bytes, sender: str = ADMIN_EMAIL) -> receive_service.LogResult:
        """Mail sent to the log address, as the SMTP server hands it over."""
        return receive_service.log_message(
            self.sessions,
            self.team.workspace_id,
            raw,
            receive_service.Envelope("smtp", sender, remote="127.0.0.1"),
            max_bytes=10_000_000,
            checks=LOCAL_RELAY,
        )

    def logged(self, raw: bytes) -> uuid.UUID:
        result = self.log(raw)
        assert result.email_id is not None, result
        return result.email_id

    def pages(self) -> list[str]:
        """Every page that shows something planted; the company's own page last, since deleting the
        company is among the buttons clicked."""
        search = quote(PAYLOADS[1].format(n=0))
        return [
            "/",
            "/companies",
            f"/companies?q={search}",
            "/contacts",
            f"/contacts?q={search}",
            *(f"/contacts/{contact_id}" for contact_id in self.contact_ids[:1]),
            *(f"/contacts/{contact_id}/compose" for contact_id in self.contact_ids[:1]),
            *(f"/emails/{email_id}" for email_id in self.email_ids),
            *(f"/emails/{email_id}/reply" for email_id in self.email_ids[:1]),
            *(f"/conversations/{conversation_id}" for conversation_id in self.conversation_ids),
            *(f"/outbox/{outbound_id}/edit" for outbound_id in self.outbound_ids[:1]),
            *(f"/outbox/{outbound_id}" for outbound_id in self.outbound_ids[:1] + self.sent_ids),
            "/outbox",
            "/outbox?who=everyone",
            *(f"/companies/{company_id}/compose" for company_id in self.company_ids[:1]),
            "/unassigned",
            *(f"/unassigned/{email_id}" for email_id in self.unassigned_ids),
            "/unassigned/refused",
            "/custom-fields",
            "/users",
            "/settings",
            "/profile/email",
            "/profile/notifications",
            "/templates",
            "/templates/new",
            # The first template, with payloads in its fields, and the last, whose preview shows hostile HTML.
            *(f"/templates/{template_id}" for template_id in self.template_ids[:1] + self.template_ids[-1:]),
            "/sequences",
            *(f"/sequences/{sequence_id}" for sequence_id in self.sequence_ids),
            "/bulk",
            *(f"/bulk/{bulk_id}" for bulk_id in self.bulk_ids),
            "/analytics",
            "/analytics/cohort",
            f"/login?next={search}",
            *(f"/companies/{company_id}" for company_id in self.company_ids[:1]),
        ]


def _mail(
    subject: str, sender: Address, to: str, *, html: str | None = None, attachment_name: str | None = None
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
    message["Message-ID"] = f"<{uuid.uuid4().hex}@team-a.example>"
    message.set_content(f"{subject}\n")
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attachment_name is not None:
        message.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename=attachment_name)
    return message.as_bytes(policy=SMTP)


def import_companies(world: World, names: list[str]) -> None:
    """Companies imported from a CSV by a Member, as an attacker inside the team would; the first gets
    the customer's domain, so that mail and contacts attach to it."""
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["name", "domains"])
    for index, name in enumerate(names):
        writer.writerow([name, CUSTOMER_DOMAIN if index == 0 else ""])
    with session_scope(world.sessions) as session:
        member = world.member(session)
        report = importing.import_companies(session, member, rows.getvalue().encode())
        assert report.errors == [], report.errors
        world.company_ids.extend(
            company.id
            for name in names
            if (company := workspace_service.find_company(session, member, name)) is not None
        )
    assert len(world.company_ids) == len(names)


def plant_company_names(world: World, n: int) -> None:
    import_companies(world, payloads(n))


def plant_contact_names(world: World, n: int) -> None:
    values = payloads(n)
    with session_scope(world.sessions) as session:
        member = world.member(session)
        for index, value in enumerate(values):
            contact = workspace_service.create_contact(
                session,
                member,
                f"contact{index}@{CUSTOMER_DOMAIN}",
                name=value,
                company_id=world.company_ids[0] if world.company_ids else None,
            )
            world.contact_ids.append(contact.id)


def plant_user_names(world: World, n: int) -> None:
    values = payloads(n)
    with session_scope(world.sessions) as session:
        for index, value in enumerate(values):
            workspace_service.add_user(session, world.operator, f"user{index}@team-a.example", name=value)


def plant_role_names(world: World, n: int) -> None:
    values = payloads(n)
    with session_scope(world.sessions) as session:
        for value in values:
            workspace_service.create_role(session, world.operator, value, ["view_customers"])


def plant_workspace_name(world: World, n: int) -> None:
    values = payloads(n)
    with session_scope(world.sessions) as session:
        workspace = session.get(Workspace, world.team.workspace_id)
        assert workspace is not None
        workspace.name = " ".join(values)[:200]


def plant_customer_mail(world: World, n: int) -> None:
    """Mail a user logged with the customer: subject, sender's display name, body and attachment name."""
    values = payloads(n)
    for value in values:
        raw = _mail(
            value,
            Address(display_name=value, addr_spec=ADMIN_EMAIL),
            f"Jane <jane@{CUSTOMER_DOMAIN}>",
            html=f"<p>{value}</p>",
            attachment_name=value,
        )
        world.email_ids.append(world.logged(raw))


def plant_conversation(world: World, n: int) -> None:
    """Mail a user's mailbox holds (so it is threaded): the conversation's subject and sender's name."""
    value = payloads(n)[0]
    raw = _mail(value, Address(display_name=value, addr_spec=ADMIN_EMAIL), f"Jane <jane@{CUSTOMER_DOMAIN}>")
    with session_scope(world.sessions) as session:
        parsed = parse_message(raw)
        decision = match(parsed, load_directory(session, world.team.workspace_id))
        stored = store_email(
            session,
            world.team.workspace_id,
            parsed,
            decision,
            Holding(user_id=world.team.admin_id, via="import"),
        )
        assert stored.email_id is not None
        email = session.get_one(Email, stored.email_id)
        assert email.conversation_id is not None
        world.conversation_ids.append(email.conversation_id)


def plant_hostile_mail_html(world: World, n: int) -> None:
    """One to the customer (the email page), one to nobody known (the unassigned email page)."""
    sender = Address(display_name="Jane", addr_spec=ADMIN_EMAIL)
    html = HOSTILE_MAIL_HTML.format(n=n)
    world.email_ids.append(world.logged(_mail("Quote", sender, f"jane@{CUSTOMER_DOMAIN}", html=html)))
    world.unassigned_ids.append(world.logged(_mail("Quote", sender, "someone@unknown.example", html=html)))


def plant_unassigned_mail(world: World, n: int) -> None:
    values = payloads(n)
    for value in values[:2]:
        raw = _mail(value, Address(display_name=value, addr_spec=ADMIN_EMAIL), "someone@unknown.example")
        world.unassigned_ids.append(world.logged(raw))


def plant_refusals(world: World, n: int) -> None:
    """Mail from someone who is not a user is refused and listed with its From and subject."""
    values = payloads(n)
    stranger = "stranger@elsewhere.example"
    for value in values:
        raw = _mail(value, Address(display_name=value, addr_spec=stranger), world.log_address())
        assert world.log(raw, stranger).email_id is None
    with session_scope(world.sessions) as session:
        assert session.scalars(select(InboundRefusal)).first() is not None


def plant_mailbox(world: World, n: int) -> None:
    """The admin's mailbox: folder names and the last error come from the mail server."""
    values = payloads(n)
    with session_scope(world.sessions) as session:
        mailbox = Mailbox(
            workspace_id=world.team.workspace_id,
            user_id=world.team.admin_id,
            provider="imap",
            address=ADMIN_EMAIL,
            connection={"host": "imap.team-a.example", "port": 993, "security": "tls", "username": "admin"},
            credentials_encrypted="not used: nothing syncs in this test",
            status="error",
            last_error=" ".join(values),
        )
        session.add(mailbox)
        session.flush()
        for index, value in enumerate(values):
            session.add(
                MailboxFolder(
                    workspace_id=world.team.workspace_id,
                    mailbox_id=mailbox.id,
                    provider_folder_id=f"folder-{index}",
                    name=value,
                    selected=index % 2 == 0,
                )
            )


def plant_custom_field_labels(world: World, n: int) -> None:
    """Field labels a Member chooses (an import takes them from a CSV's first line), on both kinds."""
    with session_scope(world.sessions) as session:
        member = world.member(session)
        for index, value in enumerate(payloads(n)):
            for kind in ("company", "contact"):
                workspace_service.create_custom_field(
                    session, member, kind, value, "text", key=f"label_{n}_{index}"
                )


def plant_custom_field_values(world: World, n: int) -> None:
    """Text values of custom fields on the first company and the first contact."""
    values = payloads(n)
    with session_scope(world.sessions) as session:
        member = world.member(session)
        for kind in ("company", "contact"):
            for index in range(len(values)):
                workspace_service.create_custom_field(session, member, kind, f"Note {index}", "text")
        custom = {f"note_{index}": value for index, value in enumerate(values)}
        workspace_service.update_company(session, member, world.company_ids[0], custom_fields=custom)
        workspace_service.update_contact(session, member, world.contact_ids[0], custom_fields=custom)


def plant_outbound_emails(world: World, n: int) -> None:
    """The admin's outbound emails (the admin has the mailbox they leave through): subject, recipient
    name, template name, error and notice. The first is scheduled, so it can be edited and cancelled."""
    values = payloads(n)
    with session_scope(world.sessions) as session:
        for index, value in enumerate(values):
            email = OutboundEmail(
                workspace_id=world.team.workspace_id,
                created_by=world.team.admin_id,
                sender_choice=ADMIN_EMAIL,
                sender_user_id=world.team.admin_id,
                from_address=ADMIN_EMAIL,
                from_name=value,
                via="mailbox",
                subject=value,
                html_body=f"<p>{value}</p>",
                text_body=value,
                idempotency_key=f"planted-{index}",
                message_id=f"<planted-{index}@team-a.example>",
                status="scheduled" if index == 0 else ("unknown" if index % 2 else "failed"),
                scheduled_for=dt.datetime(2031, 1, 1, 9, 0, tzinfo=dt.UTC),
                template_name=value,
                template_version=1,
                error=value,
                notice=value,
                recipients=[
                    OutboundRecipient(
                        workspace_id=world.team.workspace_id,
                        position=0,
                        kind="to",
                        address=f"contact{index}@{CUSTOMER_DOMAIN}",
                        name=value,
                    )
                ],
            )
            session.add(email)
            session.flush()
            world.outbound_ids.append(email.id)


def plant_engagement_events(world: World, n: int) -> None:
    """A sent email of the admin's whose engagement events carry payloads where recipients' browsers,
    template authors and mail servers choose the text: user agents, the URLs of clicked links (also
    inside a real address), bounce statuses, diagnostics and addresses, reply subjects, machine
    reasons. Its sent copy is the first stored email, so its page and timelines show them too."""
    values = payloads(n)
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    with session_scope(world.sessions) as session:
        row = OutboundEmail(
            workspace_id=world.team.workspace_id,
            created_by=world.team.admin_id,
            sender_choice=ADMIN_EMAIL,
            sender_user_id=world.team.admin_id,
            from_address=ADMIN_EMAIL,
            via="relay",
            subject="Tracked",
            html_body="<p>Tracked</p>",
            text_body="Tracked",
            idempotency_key=f"tracked-{n}",
            message_id=f"<tracked-{n}@team-a.example>",
            status="sent",
            sent_at=sent_at,
            email_id=world.email_ids[0],
            recipients=[
                OutboundRecipient(
                    workspace_id=world.team.workspace_id,
                    position=0,
                    kind="to",
                    address=f"jo@{CUSTOMER_DOMAIN}",
                )
            ],
        )
        session.add(row)
        session.flush()
        for index, value in enumerate([*values, f"https://{CUSTOMER_DOMAIN}/?q={values[3]}"]):
            at = sent_at + dt.timedelta(minutes=index + 1)
            link = TrackedLink(
                workspace_id=world.team.workspace_id,
                outbound_email_id=row.id,
                token=uuid.uuid4().hex,
                kind="click",
                url=value,
                position=index,
            )
            session.add(link)
            session.flush()
            common = {"workspace_id": world.team.workspace_id, "outbound_email_id": row.id, "occurred_at": at}
            session.add_all(
                [
                    EngagementEvent(
                        **common,
                        kind="click",
                        link_id=link.id,
                        method="GET",
                        user_agent=value,
                        machine_reason=value,
                    ),
                    EngagementEvent(
                        **common,
                        kind="bounce",
                        detail={"kind": "hard", "status": value, "diagnostic": value, "address": value},
                    ),
                    EngagementEvent(**common, kind="reply", detail={"subject": value}),
                ]
            )
        engagement.refresh(session, [row.id])
        world.sent_ids.append(row.id)


def plant_notifications(world: World, n: int) -> None:
    """The admin's notification log: subjects and recipients come from sent mail, details from what
    recipients clicked, errors from the webhook servers users name."""
    with session_scope(world.sessions) as session:
        for value in payloads(n):
            session.add(
                NotificationDelivery(
                    workspace_id=world.team.workspace_id,
                    user_id=world.team.admin_id,
                    channel="webhook",
                    kind="click",
                    outbound_email_id=world.outbound_ids[0],
                    subject=value,
                    recipient=value,
                    detail=value,
                    status="failed",
                    attempts=1,
                    last_error=value,
                )
            )


def plant_templates(world: World, n: int) -> None:
    """Templates a Member writes: payloads in the name, the subject and the body."""
    with session_scope(world.sessions) as session:
        member = world.member(session)
        for value in payloads(n):
            content = templates.TemplateText(subject=value, html=f"<p>{value}</p>")
            world.template_ids.append(templates.create_template(session, member, value, content).id)


def plant_hostile_template_html(world: World, n: int) -> None:
    """A template body of hostile markup: the editor's preview shows it rendered for a contact."""
    with session_scope(world.sessions) as session:
        content = templates.TemplateText(subject="Quote", html=HOSTILE_MAIL_HTML.format(n=n))
        row = templates.create_template(session, world.member(session), f"Hostile {n}", content)
        world.template_ids.append(row.id)


def plant_sequences(world: World, n: int) -> None:
    """A template and a sequence named by a Member, with the first contact (named by payloads) and a
    payload step condition; the sequence's builder shows its enrolments."""
    with session_scope(world.sessions) as session:
        member = world.member(session)
        for value in payloads(n):
            template = templates.create_template(
                session, member, value, templates.TemplateText(subject=value, html=f"<p>{escape(value)}</p>")
            )
            spec = sequences.SequenceSpec(
                name=value,
                sender="member@team-a.example",
                steps=[
                    sequences.StepSpec(template.id, 0),
                    sequences.StepSpec(template.id, 1, f"enduser.email~{value}"),
                ],
            )
            sequence = sequences.create_sequence(session, member, spec)
            sequences.enrol(session, member, sequence.id, world.contact_ids[:1], now=dt.datetime.now(dt.UTC))
            world.sequence_ids.append(sequence.id)


def plant_bulk_send(world: World, n: int) -> None:
    """A template's name (the bulk page's picker), and a bulk send's From, filters, error and skipped
    endusers with their reasons (its own page)."""
    values = payloads(n)
    with session_scope(world.sessions) as session:
        for index, value in enumerate(values):
            session.add(
                Template(
                    workspace_id=world.team.workspace_id,
                    name=value[:200],
                    subject=f"Subject {index}",
                    html="<p>Hello</p>",
                    version=1,
                )
            )
        bulk = BulkSend(
            workspace_id=world.team.workspace_id,
            created_by=world.team.admin_id,
            sender_choice=values[0][:320],
            template_name=values[1][:200],
            template_version=1,
            mode="each",
            filters=values,
            status="refused",
            error=values[2],
        )
        session.add(bulk)
        session.flush()
        session.add_all(
            BulkSkip(workspace_id=world.team.workspace_id, bulk_id=bulk.id, address=value[:320], reason=value)
            for value in values
        )
        world.bulk_ids.append(bulk.id)


@dataclass(frozen=True)
class Planted:
    """One field people or mail can fill: how to fill it, and a page that shows it (None: no page shows
    it today; planted anyway, so that a page showing it later is covered). A new field is one more row."""

    field: str
    plant: Callable[[World, int], None]  # plants the payloads of field number n
    shown_at: Callable[[World], str] | None
    shows: Callable[[list[str]], list[str]] = list  # texts of which one proves it is shown


FIELDS = (
    Planted("company name", plant_company_names, lambda world: f"/companies/{world.company_ids[0]}"),
    Planted("contact name", plant_contact_names, lambda world: "/contacts"),
    Planted("user name", plant_user_names, lambda world: "/users"),
    Planted("role name", plant_role_names, lambda world: "/users"),
    Planted("workspace name", plant_workspace_name, None),
    Planted("mail subject, sender, body", plant_customer_mail, lambda world: f"/emails/{world.email_ids[0]}"),
    Planted("conversation", plant_conversation, lambda world: f"/conversations/{world.conversation_ids[0]}"),
    Planted(
        "mail HTML",
        plant_hostile_mail_html,
        lambda world: f"/emails/{world.email_ids[-1]}",
        lambda values: ["Quote attached."],
    ),
    Planted(
        "unassigned mail", plant_unassigned_mail, lambda world: f"/unassigned/{world.unassigned_ids[-1]}"
    ),
    Planted("refused mail", plant_refusals, lambda world: "/unassigned/refused"),
    Planted("IMAP folder name, mailbox error", plant_mailbox, lambda world: "/profile/email"),
    Planted("custom field label", plant_custom_field_labels, lambda world: "/custom-fields"),
    Planted(
        "custom field value", plant_custom_field_values, lambda world: f"/contacts/{world.contact_ids[0]}"
    ),
    Planted("outbound email", plant_outbound_emails, lambda world: "/outbox"),
    Planted(
        "template name, subject, body", plant_templates, lambda world: f"/templates/{world.template_ids[0]}"
    ),
    Planted(
        "template HTML",
        plant_hostile_template_html,
        lambda world: f"/templates/{world.template_ids[-1]}",
        lambda values: ["Quote attached."],
    ),
    Planted("sequence, template and step condition", plant_sequences, lambda world: "/sequences"),
    Planted("bulk send", plant_bulk_send, lambda world: f"/bulk/{world.bulk_ids[0]}"),
    Planted("notification log", plant_notifications, lambda world: "/profile/notifications"),
    Planted("engagement events", plant_engagement_events, lambda world: f"/outbox/{world.sent_ids[0]}"),
)


@dataclass(frozen=True)
class Typed:
    """A form field whose refusal shows what was typed: the page that answers must keep it text."""

    field: str
    page: Callable[[World], str]
    form: str
    label: str
    also: tuple[tuple[str, str], ...] = ()  # other fields the form requires, by label
    separator: str = " "


TYPED = (
    Typed(
        "company domain", lambda world: f"/companies/{world.company_ids[0]}", "#add-domain", "Add a domain"
    ),
    Typed(
        "new company's domains", lambda world: "/companies", "#new-company", "Domains", (("Name", "Typed"),)
    ),
    Typed("internal domains", lambda world: "/settings", "#settings", "Internal domains", separator="\n"),
    Typed("blocklist", lambda world: "/settings", "#settings", "Blocklist", separator="\n"),
    Typed(
        "sequence time zone", lambda world: "/sequences", "#new-sequence", "Time zone", (("Name", "Typed"),)
    ),
    Typed(
        "sequence filter",
        lambda world: f"/sequences/{world.sequence_ids[0]}",
        "#enrol-by-filter",
        "Every enduser where",
        separator="\n",
    ),
    Typed(
        "assigned companies", lambda world: f"/unassigned/{world.unassigned_ids[0]}", "#assign", "Companies"
    ),
    Typed(
        "composer subject", lambda world: f"/contacts/{world.contact_ids[0]}/compose", "#composer", "Subject"
    ),
    Typed(
        "template subject",
        lambda world: "/templates/new",
        "#template-form",
        "Subject",
        (("Name", "Typed"), ("HTML", "<p>{{ enduser.first_name </p>")),
    ),
)


def build_world(sessions: sessionmaker[Session], team: Team) -> World:
    world = World(sessions, team)
    for n, planted in enumerate(FIELDS):
        planted.plant(world, n)
    return world


@pytest.fixture
def world(sessions: sessionmaker[Session], team: Team) -> World:
    return build_world(sessions, team)


@dataclass
class Watch:
    """What ran in the browser: payloads (by field number and page) and dialogs."""

    ran: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)
    expected_confirm: str | None = None

    def on_dialog(self, dialog: Dialog) -> None:
        if dialog.type == "confirm" and dialog.message == self.expected_confirm:
            self.confirmed.append(dialog.message)
        else:
            self.dialogs.append(f"{dialog.type}: {dialog.message!r}")
        dialog.accept()

    def on_xss(self, value: str, url: str) -> None:
        names = [planted.field for planted in FIELDS] + [typed.field for typed in TYPED]
        name = names[int(value)] if value.isdigit() and int(value) < len(names) else value
        self.ran.append(f"{name} on {url}")


# Reports a payload the moment it assigns window.__xss, wherever and whenever that happens.
REPORT_XSS = """Object.defineProperty(window, "__xss", {
  set(value) { window.reportXss(String(value)); }, get() { return undefined; }, configurable: false
});"""


@pytest.fixture
def unguarded(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    """A page with the Content-Security-Policy switched off, so that escaping alone must hold."""
    context: BrowserContext = browser.new_context(bypass_csp=True)
    watch = Watch()
    context.expose_binding("reportXss", lambda source, value: watch.on_xss(value, source["frame"].url))
    context.add_init_script(REPORT_XSS)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("dialog", watch.on_dialog)
    yield page, watch
    context.close()


def _shows(page: Page, values: list[str]) -> bool:
    """Whether any of the values is on the page as text: in the page's text, a form value or an attribute."""
    return bool(
        page.evaluate(
            """(values) => {
              const seen = [document.title, document.body.innerText];
              for (const element of document.querySelectorAll("*")) {
                if ("value" in element && typeof element.value === "string") seen.push(element.value);
                for (const attribute of element.attributes) seen.push(attribute.value);
              }
              return values.some((value) => seen.some((text) => text.includes(value)));
            }""",
            values,
        )
    )


CLICKABLE = "a[href], button, input[type=submit]"
# The key of each clickable element: what it is and where it leads, to find it again after a reload.
# A link is known by where it leads: one click per target is enough.
CLICKABLE_KEYS = """(selector) => Array.from(document.querySelectorAll(selector), (element) => {
  if (element.tagName === "A") return ["A", "", element.href].join(" | ");
  const form = element.form || element.closest("form");
  const target = form ? form.method + " " + form.action : "";
  return [element.tagName, (element.textContent || element.value || "").trim(), target].join(" | ");
})"""
DESTRUCTIVE = ("/delete", "/dismiss", "/disconnect", "/remove-synced")


def _leaves_site(key: str, base: str) -> bool:
    target = key.rsplit(" | ", 1)[1]
    url = target.split(" ", 1)[1] if target.startswith(("get ", "post ")) else target
    if not url or url.startswith("javascript:"):
        return False  # a javascript: link is clicked: that is the attack
    return urlsplit(url).netloc != urlsplit(base).netloc or urlsplit(url).scheme not in ("http", "https")


def _click(page: Page, watch: Watch, path: str, key: str) -> bool:
    """Click the element with this key on the page (opened again unless the browser is on it); False if
    the page no longer has it."""
    if page.url != path:
        page.goto(path)
    keys: list[str] = page.evaluate(CLICKABLE_KEYS, CLICKABLE)
    if key not in keys:
        page.goto(path)
        keys = page.evaluate(CLICKABLE_KEYS, CLICKABLE)
        if key not in keys:
            return False
    element = page.locator(CLICKABLE).nth(keys.index(key))
    if not element.is_visible():
        return False
    form_confirm = element.evaluate("(e) => (e.form || e.closest('form'))?.dataset.confirm ?? null")
    watch.expected_confirm = form_confirm
    element.click()
    page.wait_for_load_state()
    watch.expected_confirm = None
    return True


def crawl(page: Page, watch: Watch, base: str, paths: list[str]) -> int:
    """Click every button and on-site link of every page once; the destructive ones (delete, dismiss,
    disconnect) after all others, page by page. Returns the number of clicks."""
    clicked: set[str] = set()
    destructive: list[tuple[str, str]] = []
    clicks = 0
    for path in paths:
        page.goto(f"{base}{path}")
        keys: list[str] = page.evaluate(CLICKABLE_KEYS, CLICKABLE)
        for key in keys:
            if key in clicked or _leaves_site(key, base) or key.endswith("/logout"):
                continue
            clicked.add(key)
            if any(key.endswith(suffix) for suffix in DESTRUCTIVE):
                destructive.append((f"{base}{path}", key))
                continue
            clicks += _click(page, watch, f"{base}{path}", key)
    for path, key in destructive:
        clicks += _click(page, watch, path, key)
    return clicks


# Escaping does not depend on the database, and the crawl is the slowest page test: SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_planted_text_runs_on_any_page_or_click(
    unguarded: tuple[Page, Watch], live_server: str, world: World
) -> None:
    page, watch = unguarded
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    for n, planted in enumerate(FIELDS):
        if planted.shown_at is not None:
            page.goto(f"{live_server}{planted.shown_at(world)}")
            assert _shows(page, planted.shows(payloads(n))), (
                f"the {planted.field} is not on {planted.shown_at(world)}"
            )
    offset = len(FIELDS)
    for n, typed in enumerate(TYPED, start=offset):
        page.goto(f"{live_server}{typed.page(world)}")
        form = page.locator(typed.form)
        for label, value in typed.also:
            form.get_by_label(label, exact=True).fill(value)
        form.get_by_label(typed.label).fill(typed.separator.join(payloads(n)))
        form.locator("button[type=submit], button:not([type])").first.click()
        page.wait_for_load_state()
        assert page.locator("[role=alert]").count() > 0, f"the {typed.field} was not refused"
    clicks = crawl(page, watch, live_server, world.pages())
    assert clicks > 30
    assert watch.ran == []
    assert watch.dialogs == []
    # Cancelling the scheduled email, deleting a contact and the company, removing synced mail, disconnecting,
    # deleting a template and deleting each custom field (two kinds, labels and values) asked first,
    # in their own words.
    field_deletions = [question for question in watch.confirmed if question.startswith("Delete the field ")]
    assert len(field_deletions) == 4 * len(PAYLOADS)
    # Each sequence's builder asks before pausing it, pausing and unenrolling its enduser, and deleting it.
    sequence_questions = [
        question
        for question in watch.confirmed
        if question.startswith(("Pause ", "Unenrol "))
        or question.endswith("Emails already queued still leave.")
    ]
    assert len(sequence_questions) == 4 * len(PAYLOADS)
    others = [
        question
        for question in watch.confirmed
        if question not in field_deletions and question not in sequence_questions
    ]
    assert [question.split(" ", 1)[0] for question in others] == [
        "Cancel",
        "Delete",
        "Remove",
        "Disconnect",
    ] + ["Delete"] * 3
    assert others[1].startswith("Delete the contact "), others
    assert all(question.startswith("Delete the template ") for question in others[4:6]), others


def test_a_company_name_cannot_script_the_delete_confirmation(
    unguarded: tuple[Page, Watch], live_server: str, team: Team, sessions: sessionmaker[Session]
) -> None:
    """A Member names a company so that the admin's confirmation runs it; the admin clicks Delete."""
    world = World(sessions, team)
    name = "Acme'-(window.__xss=0)-'"
    import_companies(world, [name])
    page, watch = unguarded
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.goto(f"{live_server}/companies/{world.company_ids[0]}")
    watch.expected_confirm = f"Delete {name}? Its contacts stay, without a company."
    page.get_by_role("button", name="Delete company").click()
    expect(page).to_have_url(f"{live_server}/companies")
    assert watch.ran == []
    assert watch.dialogs == []
    assert watch.confirmed == [watch.expected_confirm]


def test_a_users_name_cannot_script_their_page_their_invitation_or_the_admins_questions(
    unguarded: tuple[Page, Watch],
    live_server: str,
    team: Team,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    """Names typed by an admin (or by the invitee) are shown on the user's page, in its confirmations
    and on the invitation page the invitee opens."""
    world = World(sessions, team)
    values = payloads(0)
    pages: list[str] = []
    with session_scope(sessions) as session:
        for index, value in enumerate(values):
            user = workspace_service.add_user(
                session, world.operator, f"invited{index}@team-a.example", name=value
            )
            issued = account_links.issue(
                session, world.operator, settings, user.id, account_links.INVITATION, dt.datetime.now(dt.UTC)
            )
            pages += [f"/users/{user.id}", issued.url.removeprefix(settings.base_url)]
    page, watch = unguarded
    log_in(page, live_server, ADMIN_EMAIL, ADMIN_PASSWORD)
    for path in pages:
        page.goto(f"{live_server}{path}")
        assert _shows(page, values), f"no planted name on {path}"
    page.goto(f"{live_server}{pages[0]}")
    watch.expected_confirm = "Revoke the invitation of invited0@team-a.example? Its link stops working."
    page.get_by_role("button", name="Revoke the invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invitation revoked.")
    assert watch.ran == []
    assert watch.dialogs == []
    assert watch.confirmed == [watch.expected_confirm]
