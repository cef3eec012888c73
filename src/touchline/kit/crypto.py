"""Secrets at rest (Fernet with key rotation), password hashing and token digests."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

_PASSWORDS = PasswordHasher()


class SecretBox:
    """Encrypts with the newest key and decrypts with any configured one, so keys can rotate."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one secret key is required")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])
        self._keys = [key.encode() for key in keys]
        self._signing_key = hashlib.sha256(b"touchline-signing:" + self._keys[0]).digest()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("the secret cannot be decrypted with the configured keys") from None

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()

    def sign(self, message: str) -> str:
        return hmac.new(self._signing_key, message.encode(), hashlib.sha256).hexdigest()

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    def derived_keys(self, purpose: str) -> list[bytes]:
        """One key per configured secret key for `purpose`, oldest first and newest last (the order
        itsdangerous takes): links signed before a rotation stay valid while their key is configured."""
        return [
            hmac.new(key, b"touchline-derived:" + purpose.encode(), hashlib.sha256).digest()
            for key in reversed(self._keys)
        ]


def hash_password(password: str) -> str:
    return _PASSWORDS.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _PASSWORDS.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """API tokens are stored only as this digest; a database leak reveals no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()
