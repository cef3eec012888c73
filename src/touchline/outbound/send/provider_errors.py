"""A mailbox provider's failure, read as a delivery outcome (see ``DeliveryError``)."""

from __future__ import annotations

from touchline.mailboxes.providers.base import OutcomeUnknown, ProviderError, RateLimited, TransientError
from touchline.outbound.send.contract import DeliveryError


def delivery_error(error: ProviderError) -> DeliveryError:
    """Temporary: throttling, server trouble, a failed connection. Unknown: the request went out and
    the answer never came. Permanent: everything else (refused recipients or content, a grant that
    was revoked or lacks the send permission); trying again will not help."""
    reason = str(error)
    if isinstance(error, OutcomeUnknown):
        return DeliveryError(reason, temporary=True, outcome_unknown=True)
    if isinstance(error, RateLimited):
        return DeliveryError(reason, temporary=True, retry_after_seconds=error.retry_after_seconds)
    if isinstance(error, TransientError):
        return DeliveryError(reason, temporary=True)
    return DeliveryError(reason, temporary=False)
