"""The email that carries an invitation or password reset link: plain text, built by the project's
MIME builder (which refuses header injection in names and subjects)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from touchline.outbound.compose.mime import Mailbox, OutgoingEmail


@dataclass(frozen=True, slots=True)
class LinkEmail:
    purpose: str
    workspace_name: str
    recipient: Mailbox
    sender: Mailbox | None
    """The admin who issued the link; None when it came from the command line."""
    url: str
    expires_at: datetime


def link_email(content: LinkEmail, now: datetime) -> OutgoingEmail:
    expires = content.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    who = content.sender.name or content.sender.address if content.sender else "A workspace admin"
    if content.purpose == "invitation":
        subject = f"You are invited to {content.workspace_name} on touchline"
        opening = f"{who} invited you to the workspace {content.workspace_name} on touchline."
        action = "Choose your password and sign in here:"
    else:
        subject = f"Set a new touchline password for {content.workspace_name}"
        opening = f"{who} reset your password for the workspace {content.workspace_name} on touchline."
        action = "Choose a new password here:"
    text = (
        f"{opening}\n\n{action}\n{content.url}\n\n"
        f"The link works once, until {expires}. If it has expired, ask a workspace admin for a new one.\n"
    )
    # The relay takes the team's own addresses as From, so the admin's is used; replies reach them.
    sender = content.sender or Mailbox(content.recipient.address, "touchline")
    return OutgoingEmail(
        sender=sender,
        to=(content.recipient,),
        subject=subject,
        text=text,
        date=now.astimezone(UTC),
        reply_to=content.sender,
    )
