"""Cohorts of a send-out on both databases: who did and did not open, click or reply (raw or
human-only; unknown rates in neither list), through the service, the API and the CSV download (cells
that a spreadsheet would run as formulas are made text)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.analytics.test_averages import TEMPLATE_A, TEMPLATE_B, hand_computed_records
from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.outbound.analytics.service import CohortMember, SendOut, cohort, cohort_csv, csv_safe
from touchline.workspace.permissions import Actor

ANA, BO = "ana@globex.example", "bo@initech.example"


@pytest.mark.parametrize(
    ("outcome", "human", "did", "expected"),
    [
        ("open", False, True, [ANA]),
        ("open", False, False, [BO]),  # the untracked email to Bo is left out, the unopened one counts
        ("open", True, True, [ANA]),
        ("open", True, False, [BO]),
        ("click", False, True, [ANA]),  # one of Ana's two emails was clicked: she did
        ("click", False, False, [BO]),
        ("reply", False, True, [ANA]),
        ("reply", False, False, [BO]),
    ],
)
def test_who_did_and_did_not_by_raw_and_human_rates(
    sessions: sessionmaker[Session], team: Team, outcome: str, human: bool, did: bool, expected: list[str]
) -> None:
    hand_computed_records(sessions, team)
    with session_scope(sessions) as session:
        found = cohort(
            session,
            Actor.operator(team.workspace_id),
            SendOut(template=TEMPLATE_A),
            outcome,
            did=did,
            human=human,
        )
    assert [member.address for member in found] == expected


def test_a_template_over_a_period_and_unknown_rates(sessions: sessionmaker[Session], team: Team) -> None:
    hand_computed_records(sessions, team)
    admin = Actor.operator(team.workspace_id)
    with session_scope(sessions) as session:
        # Template B's only email was sent with tracking off: nobody is known to have opened or not.
        assert cohort(session, admin, SendOut(template=TEMPLATE_B), "open", did=False) == []
        assert [
            m.address for m in cohort(session, admin, SendOut(template=TEMPLATE_B), "reply", did=False)
        ] == [BO]
        first_day = SendOut(template=TEMPLATE_A, start=datetime(2026, 11, 30, tzinfo=UTC).date(), end=None)
        [ana] = cohort(session, admin, first_day, "reply", did=True)
        assert (ana.address, ana.company, ana.emails) == (ANA, "Globex", 2)
        with pytest.raises(InvalidInputError):
            cohort(session, admin, SendOut(), "open", did=True)
        with pytest.raises(InvalidInputError):
            cohort(session, admin, SendOut(template=TEMPLATE_A), "bounce", did=True)


def test_cohort_api_and_csv(sessions: sessionmaker[Session], team: Team, client: TestClient) -> None:
    hand_computed_records(sessions, team)
    params = {"template": str(TEMPLATE_A), "outcome": "open", "did": "false"}
    listed = client.get("/api/v1/analytics/cohort", params=params, headers=team.headers())
    assert listed.status_code == 200, listed.text
    assert [(one["address"], one["company"], one["emails"]) for one in listed.json()] == [
        (BO, "Initech", 1)
    ]  # the untracked one is not counted
    download = client.get("/api/v1/analytics/cohort.csv", params=params, headers=team.headers())
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert 'filename="cohort-did-not-open.csv"' in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text)))
    assert rows[0] == ["address", "company", "emails", "last_sent_at", "contact_id"]
    assert [row[:3] for row in rows[1:]] == [[BO, "Initech", "1"]]
    # The member sent these; the viewer may not send, so sees no cohort.
    assert (
        len(client.get("/api/v1/analytics/cohort", params=params, headers=team.headers("member")).json()) == 1
    )
    assert (
        client.get("/api/v1/analytics/cohort", params=params, headers=team.headers("viewer")).status_code
        == 403
    )
    assert (
        client.get("/api/v1/analytics/cohort", params={"outcome": "open"}, headers=team.headers()).status_code
        == 422
    )


@pytest.mark.parametrize("cell", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_cells_that_look_like_formulas_are_text(cell: str) -> None:
    assert csv_safe(cell) == "'" + cell
    member = CohortMember(None, "a@b.example", cell, 1, datetime(2026, 12, 1, tzinfo=UTC))
    [_, row] = list(csv.reader(io.StringIO(cohort_csv([member]))))
    assert row[1] == "'" + cell
    assert csv_safe("Globex") == "Globex"
