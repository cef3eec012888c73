"""Sending through Gmail's ``users.messages.send``, as the mailbox's own account.

The message leaves exactly as touchline built it (``raw``), so our Message-ID is the one Gmail
keeps; ``find_sent`` searches Sent for it (``rfc822msgid:``). Gmail files the message in Sent
before it answers, so the search is reliable at once.

A reply joins the sender's Gmail thread of the email it answers only when ``messages.send`` names
that thread (``threadId``): Gmail threads a sent message by its headers for the recipients, not in
the sender's own mailbox. Thread ids belong to one mailbox, so the thread is looked up in the
sending mailbox by the answered email's Message-ID, just before sending.
"""

from __future__ import annotations

import logging

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

log = logging.getLogger(__name__)

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
        thread_id = self._thread_answered(outgoing.in_reply_to) if outgoing.in_reply_to else None
        handing_over()
        try:
            sent = self._provider.send_raw(outgoing.raw, thread_id=thread_id)
        except ProviderError as error:
            raise delivery_error(error) from error
        return Delivered(provider_message_id=sent.id)

    def _thread_answered(self, message_id: str) -> str | None:
        """The sending mailbox's thread of the answered email; None when it does not hold that email
        (or cannot say now): the reply then starts a thread of its own there, and still reaches the
        recipients in theirs."""
        try:
            return self._provider.thread_of(message_id)
        except ProviderError as error:
            log.info("sending without the Gmail thread of %s: %s", message_id, error)
            return None

    def find_sent(self, message_id: str) -> bool | None:
        try:
            return self._provider.is_in_sent(message_id)
        except ProviderError:
            return None

    def close(self) -> None:
        self._provider.close()
