"""GET /api/v1/analytics/engagement and `touchline analytics` over the hand-computed records, on both
databases: the same groups, counts and both kinds of rate; members see their own sends."""

from __future__ import annotations

import json
import subprocess
import sys

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, touchline_environment
from tests.outbound.analytics.test_averages import TEMPLATE_A, TEMPLATE_B, hand_computed_records
from touchline.config import Settings

ISSUE_KEYS = ("group", "sent", "open_rate", "human_open_rate", "click_rate", "human_click_rate", "reply_rate")


def test_api_groups_with_counts_and_both_kinds_of_rate(
    sessions: sessionmaker[Session], team: Team, client: TestClient
) -> None:
    hand_computed_records(sessions, team)
    answer = client.get(
        "/api/v1/analytics/engagement", params={"group_by": "template"}, headers=team.headers()
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["group_by"] == "template"
    first, second = body["groups"]
    assert (first["group"], first["label"], first["sent"]) == (str(TEMPLATE_A), "Template A", 4)
    assert [first[name] for name in ("open_rate", "human_open_rate", "click_rate", "human_click_rate")] == [
        66.67,
        50.0,
        33.33,
        33.33,
    ]
    assert (first["reply_rate"], first["counts"]["open_tracked"], first["counts"]["human_open_known"]) == (
        25.0,
        3,
        2,
    )
    assert (second["group"], second["open_rate"], second["reply_rate"]) == (str(TEMPLATE_B), None, 0.0)
    assert (first["emails_in"], first["emails_out"]) == (None, None)
    companies = client.get(
        "/api/v1/analytics/engagement", params={"group_by": "company"}, headers=team.headers()
    ).json()["groups"]
    assert {(group["label"], group["emails_in"], group["emails_out"]) for group in companies} == {
        ("Globex", 0, 0),
        ("Initech", 0, 0),
    }
    # Filters: a date range (both days included) and an enduser field.
    weeks = client.get(
        "/api/v1/analytics/engagement",
        params={
            "group_by": "week",
            "from": "2026-11-30",
            "to": "2026-12-06",
            "where": "enduser.email~globex",
        },
        headers=team.headers(),
    ).json()["groups"]
    assert [(group["group"], group["sent"]) for group in weeks] == [("2026-11-30", 2)]
    # A member averages their own sends (template A); a viewer may not send, so sees no analytics.
    mine = client.get("/api/v1/analytics/engagement", headers=team.headers("member")).json()["groups"]
    assert [group["label"] for group in mine] == ["Template A"]
    assert client.get("/api/v1/analytics/engagement", headers=team.headers("viewer")).status_code == 403
    refused = client.get(
        "/api/v1/analytics/engagement", params={"group_by": "colour"}, headers=team.headers()
    )
    assert refused.status_code == 422
    backwards = client.get(
        "/api/v1/analytics/engagement",
        params={"from": "2026-12-02", "to": "2026-12-01"},
        headers=team.headers(),
    )
    assert backwards.status_code == 422


def test_cli_prints_the_groups_as_a_table_or_json_lines(
    sessions: sessionmaker[Session], team: Team, settings: Settings
) -> None:
    hand_computed_records(sessions, team)
    environment = touchline_environment(settings)

    def touchline(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "touchline.cli", "analytics", "--workspace", "Team A", *args],
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    listed = touchline("--by", "template", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [
        {
            "group": "Template A",
            "sent": 4,
            "open_rate": 66.67,
            "human_open_rate": 50.0,
            "click_rate": 33.33,
            "human_click_rate": 33.33,
            "reply_rate": 25.0,
        },
        {
            "group": "Template B",
            "sent": 1,
            "open_rate": None,
            "human_open_rate": None,
            "click_rate": None,
            "human_click_rate": None,
            "reply_rate": 0.0,
        },
    ]
    weeks = touchline("--by", "week", "--from", "2026-11-30", "--to", "2026-12-06", "--json")
    assert [(json.loads(line)["group"], json.loads(line)["sent"]) for line in weeks.stdout.splitlines()] == [
        ("2026-11-30", 3)
    ]
    companies = [json.loads(line) for line in touchline("--by", "company", "--json").stdout.splitlines()]
    assert companies
    for company in companies:  # a company's metrics: its last touch, emails in and out, beside the rates
        assert set(company) == {*ISSUE_KEYS, "emails_in", "emails_out", "last_touch_at"}
        assert isinstance(company["emails_in"], int)
        assert isinstance(company["emails_out"], int)
    assert set(json.loads(listed.stdout.splitlines()[0])) == set(ISSUE_KEYS)
    company_table = touchline("--by", "company")
    assert company_table.returncode == 0, company_table.stderr
    assert "emails out" in company_table.stdout
    table = touchline("--by", "template")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if "Template A" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "Template A",
        "4",
        "66.7",
        "50.0",
        "33.3",
        "33.3",
        "25.0",
    ]
    wrong = touchline("--by", "colour")
    assert wrong.returncode != 0
    bad_date = touchline("--by", "week", "--from", "30/11/2026")
    assert bad_date.returncode == 1
    assert "YYYY-MM-DD" in bad_date.stderr
