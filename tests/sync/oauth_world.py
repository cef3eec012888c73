"""Gmail and Microsoft 365 sync scenarios: a workspace with a customer, users whose mailboxes live on
the fake Google and Microsoft servers, and touchline's OAuth connect and sync."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy.orm import Session, sessionmaker

from tests.fakes.clock import PacingClock
from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.fakes.oauth import FakeAuthorizationServer
from tests.sync.conftest import CUSTOMER, INTERNAL, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.fetch.service import SyncReport, sync_mailbox
from touchline.inbound.timeline import email_records
from touchline.kit.crypto import SecretBox
from touchline.mailboxes import oauth_connect
from touchline.mailboxes import service as mailboxes
from touchline.mailboxes.connect import open_provider
from touchline.mailboxes.oauth_connect import GOOGLE, OAuthAccountKind
from touchline.mailboxes.providers.rest import ssl_context
from touchline.models import Base
from touchline.workspace import service
from touchline.workspace.permissions import Actor

JANE = f"Jane Doe <jane.doe@{CUSTOMER}>"
SAM = f"Sam <sam@{INTERNAL}>"


def oauth_settings(settings: Settings, gmail_url: str, graph_url: str, **overrides: Any) -> Settings:
    """``settings`` with both OAuth apps registered and every provider endpoint on the fakes."""
    return settings.model_copy(
        update={
            "google_client_id": "touchline-test-client",
            "google_client_secret": "touchline-test-secret",
            "google_authorization_url": f"{gmail_url}/o/oauth2/v2/auth",
            "google_token_url": f"{gmail_url}/token",
            "google_revocation_url": f"{gmail_url}/revoke",
            "gmail_api_base_url": f"{gmail_url}/gmail/v1/users/me/",
            "microsoft_client_id": "touchline-test-client",
            "microsoft_client_secret": "touchline-test-secret",
            "microsoft_login_base_url": graph_url,
            "graph_api_base_url": f"{graph_url}/v1.0/",
            **overrides,
        }
    )


def consent(authorization_url: str) -> dict[str, str]:
    """Follow a consent URL as the user's browser would; the query the provider redirects back with."""
    response = httpx.get(authorization_url, follow_redirects=False, verify=ssl_context())
    assert response.status_code == 302, response.text
    return {key: values[0] for key, values in parse_qs(urlsplit(response.headers["location"]).query).items()}


@dataclass
class OAuthWorld:
    settings: Settings
    sessions: sessionmaker[Session]
    box: SecretBox
    workspace_id: uuid.UUID
    company_id: uuid.UUID
    gmail: FakeGmail
    graph: FakeGraph
    clock: PacingClock = field(default_factory=PacingClock)

    def __post_init__(self) -> None:
        self.gmail.state.clock = self.clock.monotonic

    @property
    def operator(self) -> Actor:
        return Actor.operator(self.workspace_id)

    def oauth(self, kind: OAuthAccountKind) -> FakeAuthorizationServer:
        return self.gmail.oauth if kind is GOOGLE else self.graph.oauth

    def add_user(self, local: str) -> uuid.UUID:
        with session_scope(self.sessions) as session:
            return service.add_user(session, self.operator, f"{local}@{INTERNAL}", role="Member").id

    def sign_in(
        self, kind: OAuthAccountKind, address: str, *, sending: bool = False
    ) -> oauth_connect.ConnectedAccount:
        """What the connect pages do, from the consent URL to the account read with the new grant;
        `sending`: as "Allow sending" does, asking for the send permission too."""
        self.oauth(kind).consenting_subject = address
        request = oauth_connect.start_authorization(self.settings, kind, login_hint=address, sending=sending)
        code = consent(request.url)["code"]
        return oauth_connect.finish_authorization(
            self.settings, kind, code, request.code_verifier, sending=sending
        )

    def connect(
        self, user_id: uuid.UUID, kind: OAuthAccountKind, address: str | None = None, *, sending: bool = False
    ) -> uuid.UUID:
        with session_scope(self.sessions) as session:
            address = address or service.get_user(session, self.operator, user_id).email
        account = self.sign_in(kind, address, sending=sending)
        with session_scope(self.sessions) as session:
            mailbox, _ = oauth_connect.connect_account(
                session, self.operator, self.box, user_id=user_id, account=account
            )
            return mailbox.id

    def deliver(
        self,
        kind: OAuthAccountKind,
        subject: str,
        *,
        sender: str = JANE,
        to: str = SAM,
        sent: bool = False,
        thread: str | None = None,
        received_at: dt.datetime | None = None,
    ) -> str:
        """Mail arriving in (or sent from) the mailbox; returns the provider's message id."""
        received_at = received_at or dt.datetime.now(dt.UTC)
        if kind is GOOGLE:
            return self.gmail.deliver(
                message(subject, sender=sender, to=to, sent_at=received_at),
                received_at=received_at,
                labels=("SENT",) if sent else ("INBOX",),
                thread_id=thread,
            )
        return self.graph.deliver(
            folder="sentitems" if sent else "inbox",
            sender=parseaddr(sender),
            to=list(getaddresses([to])),
            subject=subject,
            received_at=received_at,
            conversation_id=thread,
        )

    def sync(self, mailbox_id: uuid.UUID) -> SyncReport:
        """One sync, whose throttling waits run on ``clock``: no test sleeps through a Retry-After."""
        opener = partial(
            open_provider, settings=self.settings, sessions=self.sessions, pacing=self.clock.pacing()
        )
        return sync_mailbox(
            self.sessions, self.box, mailbox_id, settings=self.settings, provider_factory=opener
        )

    def emails(self) -> list[dict[str, object]]:
        with session_scope(self.sessions) as session:
            return email_records(session, self.workspace_id)

    def subjects(self) -> list[str]:
        return sorted(str(record["subject"]) for record in self.emails())

    def mailbox(self, mailbox_id: uuid.UUID) -> dict[str, Any]:
        with session_scope(self.sessions) as session:
            mailbox = mailboxes.get_mailbox(session, self.operator, mailbox_id)
            return {
                "provider": mailbox.provider,
                "address": mailbox.address,
                "status": mailbox.status,
                "last_error": mailbox.last_error,
                "ciphertext": mailbox.credentials_encrypted,
                "credentials": mailboxes.credentials_of(mailbox, self.box),
                "selected": sorted(
                    folder.special_use or folder.name for folder in mailbox.folders if folder.selected
                ),
            }

    def database_text(self) -> str:
        """Every stored row as text, to prove a secret is nowhere in the database in the clear."""
        with self.sessions() as session:
            return "\n".join(
                repr(tuple(row))
                for table in Base.metadata.sorted_tables
                for row in session.execute(table.select())
            )
