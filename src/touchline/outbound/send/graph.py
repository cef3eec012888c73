"""Sending through Microsoft Graph's ``sendMail`` with the MIME message touchline built.

Graph answers 202 Accepted with no id: Exchange sends asynchronously and files the message in Sent
Items, keeping our Message-ID as its ``internetMessageId``. The copy can take a few seconds to
appear, so ``find_sent`` looks again a few times before it answers False; False would let the
outbox send again, True or None would not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from touchline.mailboxes.providers.base import ProviderError
from touchline.mailboxes.providers.graph import GraphProvider
from touchline.outbound.send.contract import (
    Delivered,
    DeliveryError,
    HandingOver,
    Outgoing,
    nothing_to_record,
)
from touchline.outbound.send.provider_errors import delivery_error

# Graph's documented limit for a sendMail request; the base64 MIME body is a third larger than
# the message.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
DEFAULT_SENT_LOOKUPS = 4
DEFAULT_SENT_LOOKUP_INTERVAL_SECONDS = 5.0


class GraphSender:
    """A ``MessageSender`` for one Microsoft 365 mailbox, over the mailbox provider's client and tokens.

    ``sleep`` waits between lookups of Sent Items; tests pass one that does not wait.
    """

    def __init__(
        self,
        provider: GraphProvider,
        *,
        sent_lookups: int = DEFAULT_SENT_LOOKUPS,
        sent_lookup_interval_seconds: float = DEFAULT_SENT_LOOKUP_INTERVAL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if sent_lookups < 1:
            raise ValueError("sent_lookups must be at least 1")
        self._provider = provider
        self._sent_lookups = sent_lookups
        self._interval = sent_lookup_interval_seconds
        self._sleep = sleep

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        if (len(outgoing.raw) + 2) // 3 * 4 > MAX_REQUEST_BYTES:
            raise DeliveryError(
                "the message is larger than Microsoft Graph accepts in one sendMail request (4 MB)",
                temporary=False,
            )
        handing_over()
        try:
            self._provider.send_mime(outgoing.raw)
        except ProviderError as error:
            raise delivery_error(error) from error
        return Delivered()

    def find_sent(self, message_id: str) -> bool | None:
        try:
            for lookup in range(self._sent_lookups):
                if lookup:
                    self._sleep(self._interval)
                if self._provider.is_in_sent_items(message_id):
                    return True
        except ProviderError:
            return None
        return False

    def close(self) -> None:
        self._provider.close()
