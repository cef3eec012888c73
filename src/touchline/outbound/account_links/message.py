"""The email that carries an invitation or password reset link: plain text, built by the project's
MIME builder (which refuses header injection in names and subjects)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from touchline.outbound.compose.mime import Mailbox, OutgoingEmail

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """A name typed with line breaks or control characters, as one line: the builder would refuse it
    in a header (rightly), and the link must still reach the user."""
    return " ".join(_CONTROL.sub(" ", text).split())


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
    who = one_line(content.sender.name) or content.sender.address if content.sender else "A workspace admin"
    workspace = one_line(content.workspace_name)
    if content.purpose == "invitation":
        subject = f"You are invited to {workspace} on touchline"
        opening = f"{who} invited you to the workspace {workspace} on touchline."
        action = "Choose your password and sign in here:"
    else:
        subject = f"Set a new touchline password for {workspace}"
        opening = f"{who} reset your password for the workspace {workspace} on touchline."
        action = "Choose a new password here:"
    text = (
        f"{opening}\n\n{action}\n{content.url}\n\n"
        f"The link works once, until {expires}. If it has expired, ask a workspace admin for a new one.\n"
    )
    # The relay takes the team's own addresses as From, so the admin's is used; replies reach them.
    admin = Mailbox(content.sender.address, one_line(content.sender.name)) if content.sender else None
    recipient = Mailbox(content.recipient.address, one_line(content.recipient.name))
    return OutgoingEmail(
        sender=admin or Mailbox(recipient.address, "touchline"),
        to=(recipient,),
        subject=subject,
        text=text,
        date=now.astimezone(UTC),
        reply_to=admin,
    )
