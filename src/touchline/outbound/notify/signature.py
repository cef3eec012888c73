"""The signature of touchline's generic webhook posts, and how a receiver checks it.

Every post carries `X-Touchline-Timestamp` (Unix seconds) and `X-Touchline-Signature:
sha256=<hex>`, the HMAC-SHA256 under the user's webhook secret of `<timestamp>.<body>`, the body
being the exact bytes posted. A receiver recomputes it over the bytes it read, compares in constant
time, and refuses a timestamp far from its own clock, so a captured post cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

TIMESTAMP_HEADER: Final = "X-Touchline-Timestamp"
SIGNATURE_HEADER: Final = "X-Touchline-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300
"""How far a receiver lets a post's timestamp stray from its own clock (either way)."""
_PREFIX: Final = "sha256="


def new_secret() -> str:
    """A webhook signing secret: 256 random bits, shown to its user once."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Touchline-Signature` value for `body` posted at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    return _PREFIX + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver does: the timestamp is recent and the signature is the body's under `secret`."""
    if not timestamp_header or not signature_header or not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)
