"""Signed tokens for links touchline puts in emails (unsubscribe today): whoever holds the link may
act, so the signature is the authority. A token names the purpose it was made for, so a token made for
one kind of link is refused by every other, and any changed character makes it invalid.

A token is its parts joined by dots, then a dot and the parts' HMAC-SHA384 (unpadded URL-safe
base64: SHA-384's 48 bytes are exactly 64 characters, with no spare bits, so every changed
character of the signature makes it invalid, not just most of them). The HMAC key is derived from
the app's secret keys for the purpose alone, so a token made for one purpose never verifies for
another; it is compared in constant time. Parts are limited to URL-safe characters without dots
(hex ids), so the parts a token names are exactly the bytes that were signed.

Tokens of the earlier form (itsdangerous's JSON serializer, in links already mailed) are still read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

from itsdangerous import BadSignature, URLSafeSerializer

from touchline.kit.crypto import SecretBox

_PART: Final = re.compile(r"[A-Za-z0-9_-]*")
_SIGNATURE: Final = re.compile(r"[A-Za-z0-9_-]{64}")


def _signature(mac: hmac.HMAC, payload: str) -> str:
    signing = mac.copy()
    signing.update(payload.encode("ascii"))
    return base64.urlsafe_b64encode(signing.digest()).decode("ascii")


class SignedTokens:
    """Issues and reads URL-safe tokens carrying a few strings, keyed from the app's secret keys."""

    def __init__(self, box: SecretBox, purpose: str) -> None:
        # Newest key first: tokens are issued with it, and read with any configured one, so links
        # mailed before a key rotation keep working while their key is kept.
        self._macs = [
            hmac.new(key, digestmod=hashlib.sha384)
            for key in reversed(box.derived_keys(f"signed-tokens:compact:{purpose}"))
        ]
        self._legacy = URLSafeSerializer(
            box.derived_keys(f"signed-tokens:{purpose}"),
            salt=purpose,
            signer_kwargs={"digest_method": hashlib.sha384},
        )

    def issue(self, *parts: str) -> str:
        """A token for `parts`, each made of letters, digits, `-` and `_` (ValueError otherwise)."""
        if not parts or not all(_PART.fullmatch(part) for part in parts):
            raise ValueError("a token names one or more parts of letters, digits, '-' and '_'")
        payload = ".".join(parts)
        return f"{payload}.{_signature(self._macs[0], payload)}"

    def read(self, token: str) -> tuple[str, ...] | None:
        """The parts the token was issued for, or None when it was not issued by us for this purpose."""
        payload, dot, signature = token.rpartition(".")
        if dot and _SIGNATURE.fullmatch(signature) and payload.isascii():
            for mac in self._macs:
                if hmac.compare_digest(_signature(mac, payload), signature):
                    return tuple(payload.split("."))
        return self._read_legacy(token)

    def _read_legacy(self, token: str) -> tuple[str, ...] | None:
        try:
            parts = self._legacy.loads(token)
        except BadSignature:
            return None
        if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
            return None
        return tuple(parts)
