"""What the parser hands to the rest of inbound: plain frozen values, no `email.message` objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox of an address header: the normalised address and, kept apart, its display name."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of one attachment; the content stays in the raw message."""

    filename: str | None
    content_type: str
    size: int
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    """Everything inbound needs to know about one message, read without ever raising.

    `defects` lists, as readable strings, whatever could not be read; the other fields hold what could.
    `dedup_key` is the Message-ID when there is one, else a hash of date, From, Subject and To, so the
    same message seen twice gets the same key either way.
    """

    dedup_key: str
    message_id: str | None = None
    from_: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    date: datetime | None = None
    subject: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    bulk: str | None = None
    auto_reply: str | None = None
    headers_only: bool = True
    text_body: str | None = None
    html_body: str | None = None
    attachments: tuple[Attachment, ...] = ()
    defects: tuple[str, ...] = ()

    @property
    def sender(self) -> str | None:
        """The first From address: the one the blocklist and the log address check."""
        return self.from_[0].address if self.from_ else None

    @property
    def is_bulk(self) -> bool:
        return self.bulk is not None

    @property
    def is_auto_reply(self) -> bool:
        return self.auto_reply is not None
