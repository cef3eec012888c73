"""The job that emails an account link through the workspace's relay. No session is held while the
relay is being talked to; a link no longer pending (revoked, replaced, used, expired) is not sent."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import AccountLink, User, Workspace
from touchline.outbound.account_links.message import LinkEmail, link_email
from touchline.outbound.compose.mime import Mailbox, build_message
from touchline.outbound.send.contract import Outgoing
from touchline.outbound.send.delivery import relay_account
from touchline.outbound.send.smtp import SmtpSender
from touchline.worker import JobContext, job
from touchline.workspace.account_links import EMAIL_JOB, link_url

log = logging.getLogger(__name__)


@job(EMAIL_JOB, retries=5, retry_delay=60)
def email_account_link(context: JobContext, link_id: str, sealed_token: str) -> None:
    """Sending twice (at-least-once delivery) sends the same link twice, which does no harm."""
    now = datetime.now(UTC)
    with session_scope(context.sessions) as session:
        link = session.get(AccountLink, uuid.UUID(link_id))
        if link is None or link.used_at or link.revoked_at or link.expires_at <= now:
            log.info("account link %s is no longer pending; not emailed", link_id)
            return
        user = session.get(User, link.user_id)
        workspace = session.get(Workspace, link.workspace_id)
        admin = session.get(User, link.created_by) if link.created_by else None
        if user is None or workspace is None:
            return
        token = SecretBox(context.settings.secret_keys).decrypt(sealed_token)
        content = LinkEmail(
            purpose=link.purpose,
            workspace_name=workspace.name,
            recipient=Mailbox(user.email, user.name),
            sender=Mailbox(admin.email, admin.name) if admin else None,
            url=link_url(context.settings, link.purpose, token),
            expires_at=link.expires_at,
        )
    outgoing = link_email(content, now)
    built = build_message(outgoing, outgoing.sender.address.rpartition("@")[2])
    sender = SmtpSender(relay_account(context.settings))
    try:
        # A DeliveryError is raised on: the queue tries a temporary one again.
        sender.deliver(Outgoing(built.raw, outgoing.sender.address, built.recipients, built.message_id))
    finally:
        sender.close()
