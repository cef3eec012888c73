"""`touchline bounces classify` on files, an mbox and a folder."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.inbound.reports.samples import delivery_report, out_of_office
from touchline.cli import app

FIXTURES = Path(__file__).parents[2] / "fixtures" / "bounces"


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_files_an_mbox_and_a_folder(tmp_path: Path) -> None:
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(delivery_report("<sent-1@touchline.example>", "gone@customer.example"))
    box = tmp_path / "box.mbox"
    box.write_bytes(
        b"From MAILER-DAEMON Tue Mar 11 08:00:00 2025\n"
        + delivery_report("<sent-2@touchline.example>", "full@customer.example", status="5.2.2").replace(
            b"\r\n", b"\n"
        )
        + b"\nFrom erin@customer.example Tue Mar 11 08:05:00 2025\n"
        + out_of_office("Erin <erin@customer.example>", "<sent-2@touchline.example>").replace(b"\r\n", b"\n")
    )
    folder = tmp_path / "folder"
    (folder / "deeper").mkdir(parents=True)
    (folder / "deeper" / "plain.eml").write_bytes((FIXTURES / "human" / "plain.eml").read_bytes())
    (folder / "notes.txt").write_text("not a message file")

    result = CliRunner().invoke(app, ["bounces", "classify", str(bounce), str(box), str(folder)])

    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert lines == [
        {
            "path": str(bounce),
            "kind": "hard",
            "recipients": ["gone@customer.example"],
            "status": "5.1.1",
            "diagnostic": "550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown",
        },
        {
            "path": f"{box}#1",
            "kind": "soft",
            "recipients": ["full@customer.example"],
            "status": "5.2.2",
            "diagnostic": "550 5.1.1 <full@customer.example>: Recipient address rejected: User unknown",
        },
        {"path": f"{box}#2", "kind": "auto_reply", "recipients": [], "status": None, "diagnostic": None},
        {
            "path": str(folder / "deeper" / "plain.eml"),
            "kind": None,
            "recipients": [],
            "status": None,
            "diagnostic": None,
        },
    ]


def test_an_unreadable_path_gets_an_error_line_and_the_run_goes_on(tmp_path: Path) -> None:
    missing = tmp_path / "missing.eml"
    present = tmp_path / "ooo.eml"
    present.write_bytes(out_of_office("Erin <erin@customer.example>", "<sent-2@touchline.example>"))

    result = CliRunner().invoke(app, ["bounces", "classify", str(missing), str(present)])

    assert result.exit_code == 1
    first, second = _lines(result.output)
    assert first["path"] == str(missing)
    assert first["error"] == "no such file or directory"
    assert second["kind"] == "auto_reply"


def test_the_collected_corpus_runs_through_the_command() -> None:
    result = CliRunner().invoke(app, ["bounces", "classify", str(FIXTURES / "flufl" / "dsn_14.txt")])
    assert _lines(result.output)[0]["kind"] == "hard"
