"""A raw 8-bit byte in Message-ID (real mail has them): stored, threaded and printed losslessly, in
import on both databases and in triage's JSON lines, never quarantined for it."""

from __future__ import annotations

import io
import json
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.inbound.test_store_batches import _workspace
from tests.sync.conftest import CUSTOMER, message
from touchline.db import session_scope
from touchline.inbound.importing import import_messages
from touchline.inbound.triage import run_triage
from touchline.kit.crypto import SecretBox
from touchline.models import Email, QuarantinedMessage

LATIN_1_ID = f"<caf\xe9-1@{CUSTOMER}>".encode("latin-1")  # one byte that is not UTF-8
STORED_ID = f"caf\\xe9-1@{CUSTOMER}"


def _with_raw_ids(raw: bytes, message_id: bytes, in_reply_to: bytes | None = None) -> bytes:
    header, _, body = raw.partition(b"\n\n")
    lines = [
        line
        for line in header.split(b"\n")
        if not line.lower().startswith((b"message-id:", b"in-reply-to:", b"references:"))
    ]
    lines.append(b"Message-ID: " + message_id)
    if in_reply_to is not None:
        lines += [b"In-Reply-To: " + in_reply_to, b"References: " + in_reply_to]
    return b"\n".join(lines) + b"\n\n" + body


def test_an_8bit_message_id_is_imported_threaded_and_not_doubled(
    sessions: sessionmaker[Session], box: SecretBox
) -> None:
    workspace_id, user_id = _workspace(sessions, box, "Eight bit")
    parent = _with_raw_ids(message("Renewal"), LATIN_1_ID)
    reply = _with_raw_ids(message("Re: Renewal"), f"<reply-1@{CUSTOMER}>".encode(), LATIN_1_ID)

    report = import_messages(sessions, workspace_id, user_id, [("parent", parent), ("reply", reply)])
    again = import_messages(sessions, workspace_id, user_id, [("parent", parent)])

    assert (report.kept, report.quarantined, again.stored_new, again.quarantined) == (2, 0, 0, 0)
    with session_scope(sessions) as session:
        emails = {
            e.message_id: e for e in session.scalars(select(Email).where(Email.workspace_id == workspace_id))
        }
        assert set(emails) == {STORED_ID, f"reply-1@{CUSTOMER}"}
        assert emails[STORED_ID].dedup_key == STORED_ID
        assert emails[STORED_ID].conversation_id == emails[f"reply-1@{CUSTOMER}"].conversation_id
        assert session.scalars(select(QuarantinedMessage)).first() is None


def test_triage_prints_an_8bit_message_id_as_valid_utf8_json(tmp_path: Path) -> None:
    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps({"companies": [{"id": "c-1", "domains": [CUSTOMER]}]}))
    mail = tmp_path / "m.eml"
    mail.write_bytes(_with_raw_ids(message("Renewal"), LATIN_1_ID))
    out = io.StringIO()
    assert run_triage(directory, [mail], out) == 0
    text = out.getvalue()
    text.encode("utf-8")  # a surrogate here is JSON no reader takes
    [line] = [json.loads(row) for row in text.splitlines()]
    assert (line["message_id"], line["decision"]) == (STORED_ID, "keep")
