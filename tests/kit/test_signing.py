"""Signed link tokens: read back only by the purpose and the keys they were issued with."""

from __future__ import annotations

import hashlib
import string

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer

from touchline.kit.crypto import SecretBox
from touchline.kit.signing import SignedTokens

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
PARTS = ("0f" * 16, "a1" * 16)
TOKEN = SignedTokens(SecretBox([OLD_KEY]), "unsubscribe").issue(*PARTS)
TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_."


def test_a_token_reads_back_its_parts_across_a_key_rotation() -> None:
    assert SignedTokens(SecretBox([OLD_KEY]), "unsubscribe").read(TOKEN) == PARTS
    # The newest key comes first; links mailed before the rotation keep working while the old key is kept.
    assert SignedTokens(SecretBox([NEW_KEY, OLD_KEY]), "unsubscribe").read(TOKEN) == PARTS
    assert SignedTokens(SecretBox([NEW_KEY]), "unsubscribe").read(TOKEN) is None


def test_a_token_is_for_one_purpose() -> None:
    assert SignedTokens(SecretBox([OLD_KEY]), "tracking").read(TOKEN) is None


@given(st.integers(min_value=0, max_value=len(TOKEN) - 1), st.sampled_from(TOKEN_ALPHABET))
def test_any_changed_character_invalidates_the_token(position: int, replacement: str) -> None:
    altered = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    if altered != TOKEN:
        assert SignedTokens(SecretBox([OLD_KEY]), "unsubscribe").read(altered) is None


@given(st.text(alphabet=TOKEN_ALPHABET, max_size=200))
def test_made_up_tokens_are_refused(token: str) -> None:
    assert SignedTokens(SecretBox([OLD_KEY]), "unsubscribe").read(token) is None


def test_tokens_of_the_earlier_form_in_mailed_links_are_still_read() -> None:
    # How tokens were issued before they became compact: itsdangerous's JSON serializer.
    box = SecretBox([OLD_KEY])
    earlier = URLSafeSerializer(
        box.derived_keys("signed-tokens:unsubscribe"),
        salt="unsubscribe",
        signer_kwargs={"digest_method": hashlib.sha384},
    ).dumps(list(PARTS))
    assert earlier != TOKEN
    assert SignedTokens(box, "unsubscribe").read(earlier) == PARTS
    assert SignedTokens(box, "tracking").read(earlier) is None
    assert SignedTokens(SecretBox([NEW_KEY]), "unsubscribe").read(earlier) is None


def test_a_token_is_its_parts_and_a_signature() -> None:
    assert TOKEN.startswith(".".join(PARTS) + ".")
    assert len(TOKEN) == len(".".join(PARTS)) + 1 + 64


@pytest.mark.parametrize("parts", [(), ("a.b",), ("0f", "ü"), ("a b",)])
def test_parts_that_would_make_a_token_ambiguous_are_refused(parts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="one or more parts"):
        SignedTokens(SecretBox([OLD_KEY]), "unsubscribe").issue(*parts)
