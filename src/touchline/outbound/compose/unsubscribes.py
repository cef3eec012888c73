"""Which sends an enduser's unsubscribe applies to, as pure decisions (RFC 8058 links in bulk mail).

Bulk and sequence emails carry the unsubscribe link and skip an enduser who used it; an email a user
writes to one person (a new email or a reply) neither carries it nor skips anyone: unsubscribing ends
mass mail, not a conversation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

SendKind = Literal["personal", "reply", "bulk", "sequence"]

MASS_MAIL: Final[frozenset[SendKind]] = frozenset({"bulk", "sequence"})


def carries_unsubscribe_link(kind: SendKind) -> bool:
    """Does an email of this kind carry List-Unsubscribe and List-Unsubscribe-Post?"""
    return kind in MASS_MAIL


def unsubscribe_skip_reason(kind: SendKind, unsubscribed_at: datetime | None) -> str | None:
    """Why an email of this kind skips this enduser, or None when it goes to them."""
    if unsubscribed_at is None or kind not in MASS_MAIL:
        return None
    return (
        f"unsubscribed on {unsubscribed_at:%Y-%m-%d %H:%M} UTC through the link in an earlier email; "
        f"{kind} emails no longer go to this enduser"
    )
