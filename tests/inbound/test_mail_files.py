"""One reader of messages on disk for `import mail` and `triage`: both see the same messages and report
the same unreadable items with their reasons; link loops and broken directory files never crash triage."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.inbound.test_store_batches import _workspace
from tests.sync.conftest import CUSTOMER, message
from touchline.inbound.importing import count_messages, import_mail
from touchline.inbound.mailfiles import mail_items
from touchline.inbound.triage import run_triage
from touchline.kit.crypto import SecretBox

# Reading this file fails with an I/O error, whoever reads it (root included).
UNREADABLE_FILE = Path("/proc/self/mem")


def _mbox(count: int, *, leading: bytes = b"") -> bytes:
    parts = [
        b"From jane Mon Mar  3 09:15:00 2025\n" + message(f"Question {n}").replace(b"\r\n", b"\n")
        for n in range(count)
    ]
    return leading + b"\n".join(parts)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "export"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "1.eml").write_bytes(message("Hello"))
    (root / "archive").write_bytes(_mbox(3, leading=b"\n\n"))  # an mbox that starts with blank lines
    (root / "empty.eml").write_bytes(b"")
    (root / "garbage.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 binary")
    (root / "broken.eml").symlink_to(UNREADABLE_FILE)
    (root / "self").symlink_to(root / "self")  # a link to itself: ELOOP on every look
    (root / "inbox" / "up").symlink_to(root)  # a link back to a folder being read
    return root


UNREADABLE = {"empty.eml", "garbage.bin", "broken.eml", "self", "up"}


def _names(labels: list[str]) -> set[str]:
    return {Path(label.split("#")[0]).name for label in labels}


def test_import_and_triage_read_the_same_messages_and_report_the_same_items(
    tree: Path, sessions: sessionmaker[Session], box: SecretBox, tmp_path: Path
) -> None:
    workspace_id, user_id = _workspace(sessions, box, "Import")
    report = import_mail(sessions, workspace_id, user_id, tree)

    directory = tmp_path / "directory.json"
    directory.write_text(json.dumps({"companies": [{"id": "c", "domains": [CUSTOMER]}]}))
    out = io.StringIO()
    assert run_triage(directory, [tree], out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]

    assert report.read == len(lines) == count_messages(tree) == 4 + len(UNREADABLE)
    assert (report.kept, report.quarantined) == (4, 0)
    assert _names([label for label, _ in report.unreadable]) == UNREADABLE
    quarantined = {line["path"]: line["error"] for line in lines if line["decision"] == "quarantine"}
    assert dict(report.unreadable) == quarantined
    assert (
        sum(1 for line in lines if str(line["path"]).endswith(("archive#1", "archive#2", "archive#3"))) == 3
    )
    reasons = {Path(label).name: reason for label, reason in report.unreadable}
    assert reasons["empty.eml"] == "empty message"
    assert reasons["garbage.bin"].startswith("no readable header fields")
    assert "Input/output error" in reasons["broken.eml"]
    assert "symbolic links" in reasons["self"]
    assert "already read" in reasons["up"]


def test_an_mbox_with_leading_blank_lines_is_split_into_its_messages(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.write_bytes(_mbox(57, leading=b"\n"))
    for headers_only in (False, True):
        items = list(mail_items(archive, headers_only=headers_only))
        assert [item.label for item in items] == [f"{archive}#{n}" for n in range(1, 58)]
        subjects = [f"Subject: Question {n}".encode() in (item.raw or b"") for n, item in enumerate(items)]
        assert subjects == [True] * 57
    whole = [item.raw for item in mail_items(archive)]
    assert all(raw is not None and raw.endswith(b"Hello from a customer.\n") for raw in whole)


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ('{"companies": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply"),
        ('{"companies": [{"id": "c", "domains": ["acme.com"], "n": ' + "1" * 100_000 + "}]}", "digits"),
    ],
)
def test_an_unusable_directory_file_is_exit_2_not_a_crash(
    tmp_path: Path, document: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "directory.json"
    directory.write_text(document)
    out = io.StringIO()
    assert run_triage(directory, [tmp_path], out) == 2
    assert out.getvalue() == ""
    assert said in capsys.readouterr().err


def test_triage_goes_on_past_link_loops(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "directory.json"
    directory.write_text("{}")
    out = io.StringIO()
    assert run_triage(directory, [tree, tree / "self"], out) == 1  # a path given that cannot be read
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1]["path"] == str(tree / "self")
    assert lines[-1]["decision"] == "quarantine"
    assert os.path.islink(tree / "self")
