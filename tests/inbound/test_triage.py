"""`run_triage`: messages on disk in, one JSON decision line per message out, whatever the input."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import corpus_folder, enron_files
from tests.inbound.samples import FIXTURES, message_bytes
from touchline.inbound.triage import run_triage

DIRECTORY = {
    "internal_domains": ["touchline.example"],
    "users": ["owner@touchline.example"],
    "companies": [{"id": "c-acme", "domains": ["acme.com"]}, {"id": "c-globex", "domains": ["globex.com"]}],
    "contacts": [{"email": "pat@gmail.com", "company": "c-globex"}],
    "blocklist": ["spam.example"],
    "create_contacts": True,
}
KEYS = {
    "path",
    "message_id",
    "decision",
    "rule",
    "reason",
    "companies",
    "contacts",
    "created_contacts",
    "error",
}


@pytest.fixture
def directory_file(tmp_path: Path) -> Path:
    path = tmp_path / "directory.json"
    path.write_text(json.dumps(DIRECTORY))
    return path


def triage(directory_file: Path, *paths: Path) -> tuple[int, list[dict[str, object]]]:
    out = io.StringIO()
    code = run_triage(directory_file, list(paths), out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(set(line) == KEYS for line in lines)
    return code, lines


def test_single_files_are_decided(directory_file: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept.eml"
    kept.write_bytes(message_bytes(sender="Jane O'Doe <jane.odoe@acme.com>", message_id="<k-1@acme.com>"))
    ignored = tmp_path / "ignored.eml"
    ignored.write_bytes(message_bytes(sender="a@touchline.example", to=["b@touchline.example"]))
    code, lines = triage(directory_file, kept, ignored)
    assert code == 0
    assert lines[0] == {
        "path": str(kept),
        "message_id": "k-1@acme.com",
        "decision": "keep",
        "rule": "matched",
        "reason": lines[0]["reason"],
        "companies": ["c-acme"],
        "contacts": ["jane.odoe@acme.com"],
        "created_contacts": [{"email": "jane.odoe@acme.com", "name": "Jane Odoe", "company": "c-acme"}],
        "error": None,
    }
    assert "jane.odoe@acme.com (domain acme.com of company c-acme)" in str(lines[0]["reason"])
    assert (lines[1]["decision"], lines[1]["rule"]) == ("ignore", "all-internal")


def test_an_mbox_is_split_into_numbered_messages(directory_file: Path, tmp_path: Path) -> None:
    mbox = tmp_path / "archive.mbox"
    mbox.write_bytes(
        b"From jane@acme.com Mon Mar  3 09:15:00 2025\n"
        + message_bytes(sender="jane@acme.com", body="Hello.\n>From the archive, escaped.\n").replace(
            b"\r\n", b"\n"
        )
        + b"\nFrom bot@spam.example Mon Mar  3 09:16:00 2025\n"
        + message_bytes(sender="bot@spam.example", to=["jane@acme.com"]).replace(b"\r\n", b"\n")
        + b"\nFrom nobody Mon Mar  3 09:17:00 2025\n\x00\x01\x02 not a message\n"
    )
    code, lines = triage(directory_file, mbox)
    assert code == 0
    assert [line["path"] for line in lines] == [f"{mbox}#1", f"{mbox}#2", f"{mbox}#3"]
    assert [line["decision"] for line in lines] == ["keep", "ignore", "quarantine"]
    assert lines[1]["rule"] == "blocklisted-sender"
    assert str(lines[2]["error"]).startswith("no readable header fields")


def test_a_maildir_reads_new_and_cur_but_not_tmp(directory_file: Path, tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    for part in ("cur", "new", "tmp"):
        (maildir / part).mkdir(parents=True)
    (maildir / "new" / "1.host").write_bytes(message_bytes(sender="a@acme.com"))
    (maildir / "cur" / "2.host:2,S").write_bytes(message_bytes(sender="pat@gmail.com"))
    (maildir / "tmp" / "3.host").write_bytes(b"half written")
    code, lines = triage(directory_file, maildir)
    assert code == 0
    assert [Path(str(line["path"])).parent.name for line in lines] == ["cur", "new"]
    assert [line["companies"] for line in lines] == [["c-globex"], ["c-acme"]]


def test_a_folder_is_read_recursively_and_bad_files_are_quarantined(
    directory_file: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "dump"
    (folder / "fixtures").mkdir(parents=True)
    for fixture in FIXTURES.glob("*.eml"):
        shutil.copy(fixture, folder / "fixtures" / fixture.name)
    (folder / "deeper" / "still").mkdir(parents=True)
    (folder / "deeper" / "still" / "garbage.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00 binary")
    (folder / "deeper" / "empty.eml").write_bytes(b"")
    (folder / "deeper" / ".DS_Store").write_bytes(b"ignored")
    (folder / "deeper" / "dangling.eml").symlink_to(folder / "missing-target.eml")
    code, lines = triage(directory_file, folder)
    assert code == 0
    by_name = {Path(str(line["path"])).name: line for line in lines}
    assert len(by_name) == len(list(FIXTURES.glob("*.eml"))) + 3
    assert by_name["dangling.eml"]["error"] == "a symbolic link to nothing"
    assert ".DS_Store" not in by_name
    assert by_name["garbage.bin"]["decision"] == "quarantine"
    assert by_name["empty.eml"]["error"] == "empty message"
    assert by_name["missing_message_id.eml"]["message_id"] is None
    assert by_name["bulk_list.eml"]["decision"] == "keep"
    assert by_name["bulk_list.eml"]["created_contacts"] == []
    assert by_name["eight_bit_headers.eml"]["companies"] == ["c-acme"]


def test_a_missing_path_is_reported_and_the_rest_goes_on(directory_file: Path, tmp_path: Path) -> None:
    present = tmp_path / "one.eml"
    present.write_bytes(message_bytes())
    code, lines = triage(directory_file, tmp_path / "nope.eml", present)
    assert code == 1
    assert [line["decision"] for line in lines] == ["quarantine", "keep"]
    assert lines[0]["error"] == "no such file or directory"


def test_an_unusable_directory_file_stops_before_reading_mail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "directory.json"
    bad.write_text('{"companies": [{"id": "c", "domains": ["gmail.com"]}]}')
    out = io.StringIO()
    assert run_triage(bad, [tmp_path], out) == 2
    assert out.getvalue() == ""
    assert "free-mail" in capsys.readouterr().err
    assert run_triage(tmp_path / "absent.json", [tmp_path], out) == 2


def test_a_header_block_split_across_read_chunks(directory_file: Path, tmp_path: Path) -> None:
    padding = "x" * (64 * 1024 - 60)
    message = tmp_path / "big-header.eml"
    message.write_bytes(f"From: jane@acme.com\nX-Padding: {padding}\nTo: a@b.example\n\nbody".encode())
    _, lines = triage(directory_file, message)
    assert lines[0]["decision"] == "keep"


def test_run_triage_in_its_own_process(directory_file: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from touchline.inbound.triage import run_triage; "
            "sys.exit(run_triage(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]], sys.stdout))",
            str(directory_file),
            str(FIXTURES / "auto_reply.eml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    (line,) = [json.loads(text) for text in completed.stdout.splitlines()]
    assert (line["decision"], line["created_contacts"]) == ("keep", [])


def _triage_command() -> list[str] | None:
    executable = Path(sys.executable).with_name("touchline")
    if not executable.exists():
        return None
    probe = subprocess.run(
        [str(executable), "triage", "--help"], capture_output=True, check=False, timeout=120
    )
    return [str(executable), "triage"] if probe.returncode == 0 else None


def test_the_triage_command(directory_file: Path) -> None:
    command = _triage_command()
    if command is None:
        pytest.skip("the CLI has no `touchline triage` command yet; run_triage is tested directly above")
    completed = subprocess.run(
        [*command, "--directory", str(directory_file), str(FIXTURES / "encoded_words.eml"), str(FIXTURES)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    lines = [json.loads(text) for text in completed.stdout.splitlines()]
    assert len(lines) == 1 + sum(1 for path in FIXTURES.rglob("*") if path.is_file())
    assert all(set(line) == KEYS for line in lines)


@pytest.mark.corpus
def test_triage_of_the_enron_corpus_keeps_and_ignores(tmp_path: Path) -> None:
    enron = corpus_folder("enron")
    path = tmp_path / "directory.json"
    path.write_text(
        json.dumps(
            {
                "internal_domains": ["enron.com"],
                "companies": [
                    {"id": "c-carr", "domains": ["carrfut.com"]},
                    {"id": "c-nyiso", "domains": ["nyiso.com"]},
                ],
                "contacts": [],
                "create_contacts": True,
            }
        )
    )
    code, lines = triage(path, enron)
    assert code == 0
    assert sorted(str(line["path"]) for line in lines) == sorted(map(str, enron_files()))
    decisions = {line["decision"] for line in lines}
    assert decisions == {"keep", "ignore"}
    kept = [line for line in lines if line["decision"] == "keep"]
    assert {company for line in kept for company in line["companies"]} <= {"c-carr", "c-nyiso"}  # type: ignore[attr-defined]
