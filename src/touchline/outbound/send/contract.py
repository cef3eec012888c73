"""What every way of delivering mail offers: Gmail, Microsoft Graph, SMTP submission, the relay.

touchline builds each message itself (`outbound.compose.mime.build_message`), so a sender only
hands bytes to its provider. Two questions decide whether an email may be handed over again after
a crash: did the provider accept it (`deliver`), and can the provider's Sent folder tell whether an
earlier attempt got through (`find_sent`)? An email whose fate cannot be learned is never re-sent
silently; the outbox marks it `unknown` for its sender to decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from touchline.kit.errors import TouchlineError


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message as it leaves: the bytes, the envelope, and its own Message-ID (with brackets)."""

    raw: bytes
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    in_reply_to: str = ""
    """When answering: the Message-ID (with brackets) of the email answered. Gmail files the reply in
    the thread that holds that email in the sending mailbox; the headers carry it for every other
    sender and for the recipients' mail programs."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """The provider took the message. `provider_message_id` is its own id when it gives one
    (Gmail's message id, an SMTP server's queue id), else empty (Graph's sendMail answers 202 only)."""

    provider_message_id: str = ""
    refused_recipients: tuple[tuple[str, str], ...] = ()
    """Recipients the provider refused while taking the rest, each with the provider's reason."""


class DeliveryError(TouchlineError):
    """The provider did not take the message.

    `temporary` failures (rate limits, 4xx SMTP replies, 5xx HTTP answers, lost connections
    before the provider answered) may be retried after `retry_after_seconds` when given; permanent
    ones (5xx SMTP replies, refused content or recipients, revoked access) mark the email failed
    with `reason`, the provider's own words made one safe line. `outcome_unknown` says that the
    connection broke after the message was handed over and before the answer came: the provider
    may or may not have sent it."""

    def __init__(
        self,
        reason: str,
        *,
        temporary: bool,
        retry_after_seconds: float | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.retry_after_seconds = retry_after_seconds
        self.outcome_unknown = outcome_unknown


class HandoverStopped(TouchlineError):
    """Raised by a `HandingOver` callback: the message must not be handed over (another attempt
    took the email). The sender abandons the message so that the provider does not take it."""


HandingOver = Callable[[], None]
"""Called by a sender at the last moment before the provider may take the message (before the
final dot of SMTP DATA, before an API's send request), so the outbox can commit that it did;
raises HandoverStopped, or any error recording it met, to stop the handover."""


def nothing_to_record() -> None:
    return None


class MessageSender(Protocol):
    """One open way to deliver for one mailbox (or the relay); closed by its user."""

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        """Hand the message over; raises DeliveryError. `handing_over` is called once, just before
        the provider may take it; when it raises, nothing is handed over and its error propagates."""
        ...

    def find_sent(self, message_id: str) -> bool | None:
        """Whether the mailbox's Sent folder holds a message with this Message-ID: True or False,
        or None when this sender cannot look (a relay has no Sent folder; the lookup failed)."""
        ...

    def close(self) -> None: ...
