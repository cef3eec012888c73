"""`touchline bulk send` and `touchline bulk show`: the summary's fields, --dry-run, refusals exit 2
with the reason on stderr and queue nothing, and the emails queued leave once each."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import run_touchline
from tests.outbound.bulk.conftest import MEMBER, Crowd
from tests.outbound.bulk.helpers import deliver_all
from tests.outbound.bulk.test_bulk_sends import _outbound_count


def _touchline(crowd: Crowd, *args: str) -> subprocess.CompletedProcess[str]:
    return run_touchline(crowd.world.settings, *args)


def _bulk_send(crowd: Crowd, *extra: str) -> subprocess.CompletedProcess[str]:
    return _touchline(
        crowd,
        *("bulk", "send", "--workspace", "Team A", "--as", MEMBER, "--template", "news"),
        *("--where", "company.custom.tier=gold", *extra),
    )


def test_bulk_send_prints_its_summary_and_the_emails_leave_once(crowd: Crowd) -> None:
    done = _bulk_send(crowd, "--mode", "each", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {"bulk_id", "status", "recipients", "queued", "skipped", "skipped_endusers"}
    assert (summary["status"], summary["recipients"], summary["queued"], summary["skipped"]) == (
        "queued",
        13,
        11,
        2,
    )
    reasons = {skip["address"]: skip["reason"] for skip in summary["skipped_endusers"]}
    assert reasons["no-one@initech.invalid"].startswith("undeliverable")
    assert "queueing" in done.stderr  # the progress bar

    assert deliver_all(crowd, summary["bulk_id"]) == {"sent": 11}
    assert len(crowd.world.sink.received) == 11

    shown = _touchline(crowd, "bulk", "show", "--workspace", "Team A", summary["bulk_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    progress = json.loads(shown.stdout)
    assert (progress["sent"], progress["skipped"], progress["from"]) == (11, 2, MEMBER)

    table = _touchline(crowd, "bulk", "show", "--workspace", "Team A", summary["bulk_id"])
    assert table.returncode == 0, table.stderr
    assert "queued" in table.stdout


def test_a_dry_run_prints_the_same_summary_and_queues_nothing(crowd: Crowd) -> None:
    done = _bulk_send(crowd, "--mode", "each", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["bulk_id"], summary["recipients"], summary["queued"], summary["skipped"]) == (
        None,
        13,
        11,
        2,
    )
    plain = _bulk_send(crowd, "--mode", "each", "--dry-run")
    assert plain.returncode == 0, plain.stderr
    assert "recipients: 13" in plain.stdout
    assert "skipped user0@acme.example: unsubscribed on" in plain.stdout


def test_refusals_exit_2_with_the_reason_and_queue_nothing(crowd: Crowd) -> None:
    for extra, reason in (
        (("--mode", "one"), "reads enduser fields"),
        (("--mode", "each", "--where", "enduser.nothing=1"), "is not a field"),
        (("--mode", "each", "--from", "admin@team-a.example"), "admin@team-a.example"),
    ):
        done = _bulk_send(crowd, *extra, "--json")
        assert done.returncode == 2, done.stdout
        assert reason in " ".join(done.stderr.split())
        assert done.stdout == ""
    viewer = _touchline(
        crowd,
        "bulk",
        "send",
        "--workspace",
        "Team A",
        "--as",
        "viewer@team-a.example",
        "--template",
        "news",
        "--mode",
        "each",
    )
    assert viewer.returncode == 2
    assert _outbound_count(crowd) == 0
