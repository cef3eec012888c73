"""Opening a Gmail or Microsoft Graph sender for a stored mailbox.

A sender wraps the mailbox's provider, so sending and syncing a mailbox use the same HTTP client and
the same OAuth tokens, refreshed lazily and stored as ``touchline.mailboxes.connect`` describes.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.connect import GMAIL, GRAPH, open_provider
from touchline.mailboxes.providers.gmail import GmailProvider
from touchline.mailboxes.providers.graph import GraphProvider
from touchline.models import Mailbox
from touchline.outbound.send.gmail import GmailSender
from touchline.outbound.send.graph import GraphSender


def open_api_sender(
    mailbox: Mailbox,
    box: SecretBox,
    *,
    settings: Settings,
    sessions: sessionmaker[Session] | None = None,
) -> GmailSender | GraphSender:
    """A sender for a Gmail or Microsoft 365 mailbox; the caller closes it. No network I/O yet."""
    if mailbox.provider not in (GMAIL, GRAPH):
        raise ValueError(f"{mailbox.provider!r} mailboxes do not send through a REST API")
    provider = open_provider(mailbox, box, settings=settings, sessions=sessions)
    if isinstance(provider, GmailProvider):
        return GmailSender(provider)
    if isinstance(provider, GraphProvider):
        return GraphSender(provider)
    provider.close()
    raise ValueError(f"{mailbox.provider!r} mailboxes do not send through a REST API")
