"""The demo workspace behind the README's first command: customers, a team, real conversations, a
stored template, and a local sink that catches what the demo sends."""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.demo_imap import demo_email
from touchline.inbound.importing import ImportReport, import_messages
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError
from touchline.models import Sequence, Template, User, Workspace
from touchline.outbound.compose.plaintext import text_from_html
from touchline.outbound.sequences import service as sequences
from touchline.outbound.templates import service as templates
from touchline.workspace import importing, service
from touchline.workspace.permissions import Actor

DEMO_WORKSPACE = "Demo"
DEMO_DOMAIN = "touchline-demo.example"
DEMO_ADMIN = f"admin@{DEMO_DOMAIN}"
DEMO_MEMBER = f"casey@{DEMO_DOMAIN}"
DEMO_USERS = ((DEMO_ADMIN, "Demo Admin"), (DEMO_MEMBER, "Casey Member"))
"""Each demo user's address and name; `touchline demo` gives each a mailbox on its IMAP server."""
DEMO_TRUSTED_NETWORKS = "127.0.0.0/8,::1/128"
"""The demo's log address takes mail from this machine as from the operator's own relay, so that
mail sent with a local client is logged without DKIM or SPF."""

# (customer address, customer name, subject, customer's opening line, our answer)
_THREADS = [
    (
        "nancy.davolio@northwind-traders.example",
        "Nancy Davolio",
        "Renewal terms for next year",
        "Could you send the renewal terms before our budget meeting on Thursday?",
        "Of course: the terms are attached, and I kept last year's discount.",
    ),
    (
        "andrew.fuller@northwind-traders.example",
        "Andrew Fuller",
        "Rollout to the Lyon warehouse",
        "We would like to add forty seats for the Lyon team next month.",
        "Great news. I will set up a kick-off call with your Lyon lead.",
    ),
    (
        "hank.scorpio@globex.example",
        "Hank Scorpio",
        "Quarterly business review",
        "Can we move the QBR to the first week of next month?",
        "Moved to the 3rd at 10:00; the invitation is on its way.",
    ),
    (
        "bill.lumbergh@initech.example",
        "Bill Lumbergh",
        "TPS report export",
        "Yeah, if you could get the export to include cover sheets, that would be great.",
        "The export now includes cover sheets; see the release notes.",
    ),
    (
        "peter.gibbons@initech.example",
        "Peter Gibbons",
        "Login trouble",
        "Since this morning the login page keeps sending me back to the start.",
        "Sorry about that: a cookie setting changed; it is fixed now, please try again.",
    ),
    (
        "alice.abernathy@umbrella.example",
        "Alice Abernathy",
        "Security questionnaire",
        "Our security team sent a questionnaire for the annual review.",
        "Answered and returned; our SOC 2 report is included.",
    ),
    (
        "joanna.lee@umbrella-logistics.example",
        "Joanna Lee",
        "Introduction",
        "I am taking over from Alice as your main contact for logistics.",
        "Welcome, Joanna! Let us schedule a short introduction call.",
    ),
]


def demo_messages(now: datetime) -> Iterator[tuple[str, bytes]]:
    """Customer threads of the last few weeks, each answered by the demo team; one internal email."""
    rng = random.Random(2026)  # noqa: S311 -- demo dates, not secrets
    for index, (address, name, subject, question, answer) in enumerate(_THREADS):
        asked = now - timedelta(days=rng.randint(1, 40), hours=rng.randint(0, 12))
        owner = DEMO_MEMBER if index % 2 else DEMO_ADMIN
        question_id = f"<demo-{index}-q@{address.split('@')[1]}>"
        yield "INBOX", demo_email(f"{name} <{address}>", owner, subject, question, asked, question_id, None)
        yield (
            "Sent",
            demo_email(
                owner,
                f"{name} <{address}>",
                f"Re: {subject}",
                answer,
                asked + timedelta(hours=rng.randint(1, 20)),
                f"<demo-{index}-a@{DEMO_DOMAIN}>",
                question_id,
            ),
        )
    yield (
        "INBOX",
        demo_email(
            DEMO_MEMBER,
            DEMO_ADMIN,
            "Lunch?",
            "Pizza at noon?",
            now - timedelta(days=1),
            f"<demo-lunch@{DEMO_DOMAIN}>",
            None,
        ),
    )


DEMO_TEMPLATE = "Renewal check-in"
_DEMO_TEMPLATE_TEXT = templates.TemplateText(
    subject="{{ company.name }}: your renewal",
    html=(
        "<p>Hi {{ enduser.first_name | default('there') }},</p>"
        "<p>{{ company.name }}'s plan renews next month. Shall we go through it together?</p>"
        "<p>Best,<br>{{ sender.name }}</p>"
    ),
)


def ensure_demo_template(session: Session, admin: User) -> Template:
    """The demo's stored template, made once, so that the outbox and a template can be tried at once."""
    return _demo_template(session, admin, DEMO_TEMPLATE, _DEMO_TEMPLATE_TEXT)


DEMO_FOLLOW_UP = "Renewal follow-up"
_DEMO_FOLLOW_UP_TEXT = templates.TemplateText(
    subject="Re: {{ company.name }}: your renewal",
    html=(
        "<p>Hi {{ enduser.first_name | default('there') }},</p>"
        "<p>Just checking you saw my note about {{ company.name }}'s renewal. "
        "A short call this week?</p><p>{{ sender.name }}</p>"
    ),
)
DEMO_SEQUENCE = "Renewal playbook"


def _demo_template(session: Session, admin: User, name: str, text: templates.TemplateText) -> Template:
    found = session.scalar(
        select(Template).where(Template.workspace_id == admin.workspace_id, Template.name == name)
    )
    return found or templates.create_template(session, service.actor_for(admin), name, text)


def ensure_demo_sequence(session: Session, admin: User) -> None:
    """The demo's playbook, made once: the check-in at once, then a follow-up two days later unless
    the enduser replied (a reply ends it) or opened the first. Its window is the whole day, every day,
    so that enrolling someone in the demo sends the first step within a minute."""
    actor = service.actor_for(admin)
    if session.scalar(
        select(Sequence.id).where(Sequence.workspace_id == admin.workspace_id, Sequence.name == DEMO_SEQUENCE)
    ):
        return
    first = _demo_template(session, admin, DEMO_TEMPLATE, _DEMO_TEMPLATE_TEXT)
    follow_up = _demo_template(session, admin, DEMO_FOLLOW_UP, _DEMO_FOLLOW_UP_TEXT)
    sequences.create_sequence(
        session,
        actor,
        sequences.SequenceSpec(
            name=DEMO_SEQUENCE,
            sender=admin.email,
            steps=[
                sequences.StepSpec(first.id),
                sequences.StepSpec(follow_up.id, delay_days=2, condition="step 1 not opened"),
            ],
            window_start=time_of_day(0, 0),
            window_end=time_of_day(23, 59),
            business_days_only=False,
        ),
    )


def ensure_demo_workspace(
    session: Session, box: SecretBox, settings: Settings, password: str
) -> tuple[str, bool]:
    """Create the demo workspace once; on every run give its admin `password`.

    Returns the admin's email and whether the workspace was just created (and needs its mail).
    """
    workspace = session.scalar(select(Workspace).where(Workspace.name == DEMO_WORKSPACE))
    if workspace is None:
        workspace = service.create_workspace(
            session,
            box,
            DEMO_WORKSPACE,
            internal_domains=[DEMO_DOMAIN],
            inbound_domain=settings.inbound_domain,
        )
        operator = Actor.operator(workspace.id)
        (admin_address, admin_name), (member_address, member_name) = DEMO_USERS
        service.add_user(session, operator, admin_address, name=admin_name, role="Admin", password=password)
        service.add_user(session, operator, member_address, name=member_name, role="Member")
        data = files("touchline.demo_data")
        importing.import_companies(session, operator, data.joinpath("companies.csv").read_bytes())
        importing.import_contacts(session, operator, data.joinpath("contacts.csv").read_bytes())
        created_admin = session.scalars(select(User).where(User.email == DEMO_ADMIN)).one()
        ensure_demo_template(session, created_admin)
        ensure_demo_sequence(session, created_admin)
        return DEMO_ADMIN, True
    admin = session.scalar(select(User).where(User.email == DEMO_ADMIN))
    if admin is None:
        raise NotFoundError(f"the demo workspace exists but {DEMO_ADMIN} is gone; remove the data folder")
    service.update_user(session, Actor.operator(workspace.id), admin.id, password=password, active=True)
    ensure_demo_template(session, admin)  # demo data folders made before the template existed
    ensure_demo_sequence(session, admin)
    return DEMO_ADMIN, False


def import_demo_mail(sessions: sessionmaker[Session]) -> ImportReport:
    """The demo's conversations go through the same keep-or-ignore pipeline as synced mail."""
    with sessions() as session:
        admin = session.scalars(select(User).where(User.email == DEMO_ADMIN)).one()
        workspace_id, admin_id = admin.workspace_id, admin.id
    return import_messages(sessions, workspace_id, admin_id, demo_messages(datetime.now(UTC)))


# --- the sink that catches what the demo sends ------------------------------------------------------

SINK_HOST = "127.0.0.1"
SENT_FOLDER = "demo-sent"
"""Under the data directory: one .eml file per message the demo's sink received."""


@dataclass
class _KeepAsFiles:
    folder: Path

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        name = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.eml"
        # Written under a hidden name, then renamed: whoever lists the folder sees whole messages only.
        partial = self.folder / f".{name}.part"
        partial.write_bytes(data)
        os.replace(partial, self.folder / name)
        return "250 2.0.0 kept by the touchline demo sink"


@dataclass
class DemoSink:
    """An SMTP server on loopback that keeps every message it receives as a file and sends nothing on."""

    folder: Path
    port: int
    _controller: Controller

    def received(self) -> list[Path]:
        """The messages received so far, oldest first."""
        return sorted(self.folder.glob("*.eml"))

    def stop(self) -> None:
        self._controller.stop()


@dataclass(frozen=True)
class _DemoLogins:
    """The demo mailboxes' logins, for SMTP AUTH: a connected demo mailbox sends through the sink too."""

    passwords: Mapping[str, str]

    def __call__(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            username, password = auth_data.login.decode(), auth_data.password.decode()
            expected = self.passwords.get(username)
            if expected is not None and secrets.compare_digest(expected, password):
                return AuthResult(success=True, auth_data=username)
        return AuthResult(success=False, handled=False)


_SENT_NAME = re.compile(r"\d+-[0-9a-f]{8}\.eml")


@dataclass(frozen=True)
class SentMessage:
    """One message the sink received, as the demo's Sent page shows it."""

    name: str
    received_at: datetime
    sender: str
    to: str
    subject: str
    text: str


def sent_messages(folder: Path) -> list[SentMessage]:
    """What the sink received, newest first."""
    if not folder.is_dir():
        return []
    names = sorted(
        (path.name for path in folder.glob("*.eml") if _SENT_NAME.fullmatch(path.name)), reverse=True
    )
    return [message for name in names if (message := sent_message(folder, name)) is not None]


def sent_message(folder: Path, name: str) -> SentMessage | None:
    """One received message by its file name; None for a name the sink never gives (or a file gone)."""
    if not _SENT_NAME.fullmatch(name):
        return None
    try:
        raw = (folder / name).read_bytes()
    except FileNotFoundError:
        return None
    parsed = message_from_bytes(raw, policy=email_policy.default)
    body = parsed.get_body(("plain", "html")) if isinstance(parsed, EmailMessage) else None
    text = str(body.get_content()) if body is not None else ""
    if body is not None and body.get_content_subtype() == "html":
        text = text_from_html(text)
    received_ns = int(name.split("-", 1)[0])
    return SentMessage(
        name=name,
        received_at=datetime.fromtimestamp(received_ns / 1e9, UTC),
        sender=str(parsed.get("From", "")),
        to=", ".join(str(value) for value in (parsed.get_all("To") or [])),
        subject=str(parsed.get("Subject", "")),
        text=text,
    )


def start_demo_sink(data_dir: Path, logins: Mapping[str, str] | None = None) -> DemoSink:
    """Start the sink on a free loopback port; its messages go to `data_dir`/demo-sent. With `logins`
    (address: password), it also takes mail from those logins over SMTP AUTH, in plain text on loopback."""
    folder = data_dir / SENT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    with socket.socket() as probe:
        probe.bind((SINK_HOST, 0))
        port = int(probe.getsockname()[1])
    controller = Controller(
        _KeepAsFiles(folder),
        hostname=SINK_HOST,
        port=port,
        authenticator=_DemoLogins(logins) if logins else None,
        auth_require_tls=False,
    )
    controller.start()
    return DemoSink(folder, port, controller)


def demo_relay_environment(sink: DemoSink) -> dict[str, str]:
    """Settings that make the sink the demo's relay: the demo users have no mailbox, so everything
    their outbox sends leaves through it (in plain text, which is allowed on loopback only)."""
    return {
        "TOUCHLINE_RELAY_SMTP_HOST": SINK_HOST,
        "TOUCHLINE_RELAY_SMTP_PORT": str(sink.port),
        "TOUCHLINE_RELAY_SMTP_SECURITY": "plain",
        "TOUCHLINE_RELAY_SMTP_USERNAME": "",
        "TOUCHLINE_RELAY_SMTP_PASSWORD": "",
    }


# --- starting over ----------------------------------------------------------------------------------

DEMO_MARKER = "touchline-demo"
"""Written into the data directory by `touchline demo` when it creates that directory's database
itself: only a directory so marked is ever emptied by `touchline demo --reset`."""
_DEMO_DATABASE_FILES = ("touchline.db", "queue.db")


class NotDemoDataError(Exception):
    """The data directory holds data the demo did not create; resetting would lose it."""


def uses_embedded_database(settings: Settings) -> bool:
    return (
        not settings.database_url
        or settings.database_url == f"sqlite:///{settings.data_dir / 'touchline.db'}"
    )


def mark_if_new(settings: Settings) -> None:
    """Mark the data directory as the demo's when the demo is about to create its database."""
    if uses_embedded_database(settings) and not (settings.data_dir / "touchline.db").exists():
        (settings.data_dir / DEMO_MARKER).write_text(
            "Created by `touchline demo`: `touchline demo --reset` may delete this directory's data.\n"
        )


def demo_data_paths(settings: Settings) -> list[Path]:
    """What `touchline demo --reset` deletes: the database and queue files, the sink's sent mail and
    the IMAP server's mail. Refuses a data directory the demo did not create, or a database elsewhere."""
    data_dir = settings.data_dir
    if not uses_embedded_database(settings):
        raise NotDemoDataError(
            "TOUCHLINE_DATABASE_URL points at a database of its own; the demo resets only the SQLite "
            f"database it creates in {data_dir}"
        )
    if not (data_dir / DEMO_MARKER).is_file():
        raise NotDemoDataError(
            f"{data_dir} was not created by `touchline demo` (it has no {DEMO_MARKER} file); "
            "nothing was deleted"
        )
    from touchline.demo_imap import IMAP_FOLDER

    names = [name + suffix for name in _DEMO_DATABASE_FILES for suffix in ("", "-wal", "-shm", "-journal")]
    return [data_dir / name for name in (*names, SENT_FOLDER, IMAP_FOLDER) if (data_dir / name).exists()]


def delete_demo_data(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
