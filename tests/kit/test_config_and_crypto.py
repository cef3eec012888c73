"""Settings defaults, the generated secret key, secrets at rest and passwords."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from touchline.config import Settings
from touchline.kit.crypto import SecretBox, hash_password, token_digest, verify_password


def test_defaults_live_in_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOUCHLINE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'touchline.db'}"
    assert not settings.uses_redis_queue
    assert settings.queue_file == tmp_path / "queue.db"
    monkeypatch.setenv("TOUCHLINE_QUEUE_URL", "redis://127.0.0.1:6379/0")
    assert Settings().uses_redis_queue


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = Settings(data_dir=tmp_path).secret_keys
    second = Settings(data_dir=tmp_path).secret_keys
    assert first == second
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    Fernet(first[0].encode())  # a usable key


def test_secrets_round_trip_and_survive_key_rotation() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = SecretBox([old]).encrypt("oauth-refresh-token")
    assert "oauth-refresh-token" not in stored
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(stored) == "oauth-refresh-token"
    rewritten = rotated_box.rotate(stored)
    assert SecretBox([new]).decrypt(rewritten) == "oauth-refresh-token"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        SecretBox([Fernet.generate_key().decode()]).decrypt(stored)


def test_passwords_and_tokens_are_never_stored_plain() -> None:
    hashed = hash_password("correct horse battery")
    assert "correct horse" not in hashed
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "wrong")
    assert not verify_password("not-a-hash", "anything")
    assert token_digest("tl_abc") != "tl_abc"
    assert len(token_digest("tl_abc")) == 64
