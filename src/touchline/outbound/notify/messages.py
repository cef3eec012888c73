"""What a notification says on each channel: the browser's title and body, the Slack text, the email,
and the generic webhook's JSON body. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from touchline.outbound.notify import TEST_KIND

_VERBS = {
    "open": "opened",
    "click": "clicked a link in",
    "reply": "replied to",
    "bounce": "bounced",
    TEST_KIND: "test",
}


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification as its channels tell it; `count` is how many events it stands for."""

    id: int
    kind: str
    outbound_id: str | None
    subject: str
    recipient: str
    detail: str
    at: datetime
    count: int = 1


def title(notification: Notification) -> str:
    if notification.kind == TEST_KIND:
        return "touchline: test notification"
    subject = notification.subject or "(no subject)"
    if notification.kind == "bounce":
        return f"“{subject}” to {notification.recipient} bounced"
    return f"{notification.recipient} {_VERBS.get(notification.kind, notification.kind)} “{subject}”"


def body(notification: Notification) -> str:
    """The line under the title: what the event adds (the URL clicked, the bounce's class), and repeats."""
    if notification.kind == TEST_KIND:
        return "Notifications reach you on this channel."
    parts = [notification.detail] if notification.detail else []
    if notification.count > 1:
        parts.append(f"{notification.count} times")
    return " · ".join(parts)


def text(notification: Notification) -> str:
    """A plain text line: the Slack message, and the email's body."""
    line = body(notification)
    return f"{title(notification)}\n{line}" if line else title(notification)


def slack_payload(notification: Notification) -> bytes:
    return json.dumps({"text": text(notification)}, ensure_ascii=False).encode()


def as_json(notification: Notification) -> dict[str, object]:
    """The fields every machine reader gets: the generic webhook's body and the browser stream's data."""
    return {
        "id": notification.id,
        "kind": notification.kind,
        "outbound_id": notification.outbound_id,
        "subject": notification.subject,
        "recipient": notification.recipient,
        "detail": notification.detail,
        "at": notification.at.isoformat(),
        "count": notification.count,
        "title": title(notification),
        "body": body(notification),
    }


def webhook_payload(notification: Notification) -> bytes:
    return json.dumps(as_json(notification), ensure_ascii=False, separators=(",", ":")).encode()
