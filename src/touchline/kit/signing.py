"""Signed tokens for links touchline puts in emails (unsubscribe today): whoever holds the link may
act, so the signature is the authority. A token names the purpose it was made for, so a token made for
one kind of link is refused by every other, and any changed character makes it invalid."""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, URLSafeSerializer

from touchline.kit.crypto import SecretBox


class SignedTokens:
    """Issues and reads URL-safe tokens carrying a few strings, keyed from the app's secret keys."""

    def __init__(self, box: SecretBox, purpose: str) -> None:
        self._serializer = URLSafeSerializer(
            box.derived_keys(f"signed-tokens:{purpose}"),
            salt=purpose,
            # SHA-384's 48 bytes are exactly 64 base64 characters, with no spare bits: every changed
            # character of the signature makes it invalid, not just most of them.
            signer_kwargs={"digest_method": hashlib.sha384},
        )

    def issue(self, *parts: str) -> str:
        return self._serializer.dumps(list(parts))

    def read(self, token: str) -> tuple[str, ...] | None:
        """The parts the token was issued for, or None when it was not issued by us for this purpose."""
        try:
            parts = self._serializer.loads(token)
        except BadSignature:
            return None
        if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
            return None
        return tuple(parts)
