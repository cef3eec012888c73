"""Which way an outbound email leaves: its sender's mailbox, or the workspace's relay."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings, relay_configured
from touchline.kit.crypto import SecretBox
from touchline.kit.net import AddressPolicy
from touchline.mailboxes.connect import GMAIL, GRAPH, imap_account, mail_host_policy, smtp_account
from touchline.mailboxes.providers.base import ProviderError
from touchline.mailboxes.providers.imap import ConnectionSecurity, ImapProvider
from touchline.mailboxes.providers.smtp import SmtpAccount
from touchline.mailboxes.service import credentials_of
from touchline.models import Mailbox
from touchline.outbound.send.contract import DeliveryError, MessageSender
from touchline.outbound.send.rest import open_api_sender
from touchline.outbound.send.smtp import SmtpSender

VIA_MAILBOX = "mailbox"
VIA_RELAY = "relay"

API_PROVIDERS = frozenset({GMAIL, GRAPH})
"""Mailbox kinds that send through their provider's own API (Gmail, Microsoft Graph)."""
SENDING_PROVIDERS = frozenset({"imap"}) | API_PROVIDERS
"""Mailbox kinds an email leaves through; a user without one sends through the relay when one is set."""


def relay_account(settings: Settings) -> SmtpAccount:
    return SmtpAccount(
        host=settings.relay_smtp_host,
        port=settings.relay_smtp_port,
        security=ConnectionSecurity(settings.relay_smtp_security),
        username=settings.relay_smtp_username,
        password=settings.relay_smtp_password or None,
        # The operator named the relay, not a user: it may live on the operator's own network.
        addresses=AddressPolicy(allow_private=True),
    )


def open_sender(
    mailbox: Mailbox | None,
    box: SecretBox,
    settings: Settings,
    *,
    sessions: sessionmaker[Session] | None = None,
) -> MessageSender:
    """A sender for `mailbox`, or the relay when None; the caller closes it. Opening connects to
    nothing: the first delivery or look-up does. With `sessions`, OAuth tokens a Gmail or Graph
    sender refreshes are stored for the mailbox, as sync stores them."""
    try:
        if mailbox is None:
            if not relay_configured(settings):
                raise DeliveryError(
                    "no SMTP relay is configured (TOUCHLINE_RELAY_SMTP_HOST)", temporary=False
                )
            return SmtpSender(relay_account(settings))
        if mailbox.provider not in SENDING_PROVIDERS:
            raise DeliveryError(f"{mailbox.provider} mailboxes cannot send in this version", temporary=False)
        if mailbox.provider in API_PROVIDERS:
            return open_api_sender(mailbox, box, settings=settings, sessions=sessions)
        password = str(credentials_of(mailbox, box)["password"])
        policy = mail_host_policy(settings)
        return SmtpSender(
            smtp_account(mailbox.connection, password, policy),
            sent_folder=ImapProvider(imap_account(mailbox.connection, password, policy)),
        )
    except ProviderError as error:  # settings that can no longer be used (plain text to a remote host)
        raise DeliveryError(str(error), temporary=False) from error
