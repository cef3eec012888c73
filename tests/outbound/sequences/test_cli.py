"""`touchline sequence create|enrol|list|pause|resume` as an operator's script runs them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import run_touchline
from tests.outbound.sequences.conftest import MEMBER, Playbook


def _touchline(playbook: Playbook, *args: str) -> subprocess.CompletedProcess[str]:
    return run_touchline(playbook.settings, "sequence", *args)


def _file(tmp_path: Path, **changes: object) -> str:
    path = tmp_path / "sequence.json"
    written = {
        "name": "Onboarding",
        "from": MEMBER,
        "time_zone": "Europe/Berlin",
        "window_start": "08:30",
        "steps": [
            {"template": "Welcome"},
            {"template": "Nudge", "delay_days": 3, "condition": "step 1 not opened"},
        ],
        **changes,
    }
    path.write_text(json.dumps(written), encoding="utf-8")
    return str(path)


def test_create_enrol_list_pause_and_resume(playbook: Playbook, tmp_path: Path) -> None:
    workspace = ("--workspace", "Team A", "--as", MEMBER)
    created = _touchline(playbook, "create", *workspace, "--file", _file(tmp_path), "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["steps"] == 2

    enrolled = _touchline(
        playbook, "enrol", *workspace, "Onboarding", "--where", "enduser.email~jane", "--json"
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["enrolled"] == ["jane@acme.example"]
    again = _touchline(
        playbook, "enrol", *workspace, "Onboarding", "--contact", "jane@acme.example", "--json"
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already"] == ["jane@acme.example"]

    paused = _touchline(playbook, "pause", *workspace, "Onboarding", "--contact", "jane@acme.example")
    assert paused.returncode == 0, paused.stderr
    assert "jane@acme.example is paused in 'Onboarding'" in paused.stdout
    resumed = _touchline(playbook, "resume", *workspace, "Onboarding", "--contact", "jane@acme.example")
    assert "is active" in resumed.stdout
    assert _touchline(playbook, "pause", *workspace, "Onboarding").returncode == 0

    [listed] = [
        json.loads(line) for line in _touchline(playbook, "list", *workspace, "--json").stdout.splitlines()
    ]
    assert (listed["name"], listed["status"], listed["steps"], listed["enrolments"]) == (
        "Onboarding",
        "paused",
        2,
        {"active": 1},
    )


def test_a_sequence_file_that_cannot_work_exits_2_with_the_reason(playbook: Playbook, tmp_path: Path) -> None:
    workspace = ("--workspace", "Team A", "--as", MEMBER)
    unknown = _touchline(
        playbook, "create", *workspace, "--file", _file(tmp_path, steps=[{"template": "Nope"}])
    )
    assert unknown.returncode == 2
    assert "no template named 'Nope'" in unknown.stderr
    bad_zone = _touchline(playbook, "create", *workspace, "--file", _file(tmp_path, time_zone="Mars/Olympus"))
    assert bad_zone.returncode == 2
    assert "not a time zone" in bad_zone.stderr
    not_json = tmp_path / "broken.json"
    not_json.write_text("{", encoding="utf-8")
    broken = _touchline(playbook, "create", *workspace, "--file", str(not_json))
    assert broken.returncode == 2
    assert "is not a sequence" in broken.stderr
    listed = _touchline(playbook, "list", *workspace, "--json")
    assert listed.stdout == ""
