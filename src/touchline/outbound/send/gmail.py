"""Sending through Gmail's ``users.messages.send``, as the mailbox's own account.

The message leaves exactly as touchline built it (``raw``), so our Message-ID is the one Gmail
keeps; ``find_sent`` searches Sent for it (``rfc822msgid:``). Gmail files the message in Sent
before it answers, so the search is reliable at once.
"""

from __future__ import annotations

from touchline.mailboxes.providers.base import ProviderError
from touchline.mailboxes.providers.gmail import GmailProvider
from touchline.outbound.send.contract import (
    Delivered,
    DeliveryError,
    HandingOver,
    Outgoing,
    nothing_to_record,
)
from touchline.outbound.send.provider_errors import delivery_error

# Gmail's documented maximum size for a message sent through the API.
MAX_MESSAGE_BYTES = 35 * 1024 * 1024


class GmailSender:
    """A ``MessageSender`` for one Gmail mailbox, over the mailbox provider's client and tokens."""

    def __init__(self, provider: GmailProvider) -> None:
        self._provider = provider

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        if len(outgoing.raw) > MAX_MESSAGE_BYTES:
            raise DeliveryError(
                f"the message is larger than Gmail's {MAX_MESSAGE_BYTES // (1024 * 1024)} MB limit",
                temporary=False,
            )
        handing_over()
        try:
            sent = self._provider.send_raw(outgoing.raw, thread_id=outgoing.provider_thread_id or None)
        except ProviderError as error:
            raise delivery_error(error) from error
        return Delivered(provider_message_id=sent.id)

    def find_sent(self, message_id: str) -> bool | None:
        try:
            return self._provider.is_in_sent(message_id)
        except ProviderError:
            return None

    def close(self) -> None:
        self._provider.close()
