"""A/B tests stored on both databases: the stable split, counts from the engagement records, the
decision by the test, by the horizon and by an admin, and the API and CLI that show them."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, csrf_of, sign_in_form, touchline_environment
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError, PermissionDeniedError
from touchline.models import BulkSend, EmailEngagement, Experiment, OutboundEmail, Template
from touchline.outbound.experiments import rules, service
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _actor(session: Session, team: Team, user_id: uuid.UUID) -> Actor:
    operator = Actor.operator(team.workspace_id)
    return workspace_service.actor_for(workspace_service.get_user(session, operator, user_id))


def _experiment(sessions: sessionmaker[Session], team: Team, **options: object) -> uuid.UUID:
    """A bulk send with two template variants, A (the control) and B."""
    suffix = uuid.uuid4().hex[:6]
    with session_scope(sessions) as session:
        member = _actor(session, team, team.member_id)
        made: list[Template] = [
            templates.create_template(session, member, name, templates.TemplateText(name, f"<p>{name}</p>"))
            for name in (f"Renewal plain {suffix}", f"Renewal story {suffix}")
        ]
        bulk = BulkSend(
            workspace_id=team.workspace_id,
            created_by=team.member_id,
            sender_choice="member@team-a.example",
            template_id=made[0].id,
            template_name=made[0].name,
            template_version=1,
            mode="each",
            filters=[],
            status="queued",
        )
        session.add(bulk)
        session.flush()
        return service.create(session, member, made, name="Renewal subject", bulk_id=bulk.id, **options).id  # type: ignore[arg-type]


def _sent(
    sessions: sessionmaker[Session], team: Team, experiment_id: uuid.UUID, variant: str, replied: list[bool]
) -> None:
    """Sent emails of one variant with their engagement records (replied or not)."""
    with session_scope(sessions) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        for reply in replied:
            row = OutboundEmail(
                workspace_id=team.workspace_id,
                created_by=team.member_id,
                sender_choice="member@team-a.example",
                from_address="member@team-a.example",
                via="relay",
                idempotency_key=uuid.uuid4().hex,
                message_id=f"<{uuid.uuid4().hex}@team-a.example>",
                status="sent",
                sent_at=NOW,
                bulk_id=experiment.bulk_id,
                variant=variant,
            )
            session.add(row)
            session.flush()
            session.add(
                EmailEngagement(
                    workspace_id=team.workspace_id,
                    outbound_email_id=row.id,
                    recipient_address="ana@globex.example",
                    bulk_id=experiment.bulk_id,
                    variant=variant,
                    track_opens=True,
                    track_clicks=False,
                    sent_at=NOW,
                    reply_rate=100 if reply else 0,
                    open_rate=100 if reply else 0,  # a reply counts as an open
                )
            )


def test_the_split_is_stable_even_and_independent_between_experiments() -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    endusers = [uuid.UUID(int=n * 7919 + 1) for n in range(6000)]
    shares = Counter(rules.assigned_index(first, one, 3) for one in endusers)
    assert set(shares) == {0, 1, 2}
    assert all(1850 <= share <= 2150 for share in shares.values()), shares
    assert [rules.assigned_index(first, one, 3) for one in endusers[:50]] == [
        rules.assigned_index(first, one, 3) for one in endusers[:50]
    ]
    same = sum(
        rules.assigned_index(first, one, 2) == rules.assigned_index(second, one, 2) for one in endusers
    )
    assert 2800 <= same <= 3200


def test_a_clear_difference_is_decided_by_the_test_and_recorded(
    sessions: sessionmaker[Session], team: Team
) -> None:
    experiment_id = _experiment(sessions, team, min_sample=60)
    _sent(sessions, team, experiment_id, "A", [False] * 59)
    _sent(sessions, team, experiment_id, "B", [True] * 47 + [False] * 12)
    with session_scope(sessions) as session:
        # One send short of the minimum sample: no verdict, however plain the difference.
        assert service.evaluate_running(session, NOW) == []
    _sent(sessions, team, experiment_id, "A", [False])
    _sent(sessions, team, experiment_id, "B", [True])
    _sent(sessions, team, experiment_id, "", [True] * 5)  # sent before the test: not counted
    with session_scope(sessions) as session:
        assert service.evaluate_running(session, NOW) == [experiment_id]
    with session_scope(sessions) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        assert (experiment.state, experiment.winner, experiment.decided_by) == ("decided", "B", "test")
        assert experiment.decided_at == NOW
        assert experiment.decision is not None
        assert experiment.decision["metric"] == "reply_rate"
        assert experiment.decision["counts"] == [
            {"label": "A", "sends": 60, "successes": 0},
            {"label": "B", "sends": 60, "successes": 48},
        ]
        assert experiment.decision["statistic"] >= experiment.decision["bound"] == pytest.approx(20)
        assert experiment.decision["reason"] == "significant"
        # The rest of the audience gets the winner.
        assert {service.variant_for(experiment, uuid.uuid4()).label for _ in range(20)} == {"B"}
        assert service.evaluate_running(session, NOW) == []


def test_the_horizon_keeps_the_control(sessions: sessionmaker[Session], team: Team) -> None:
    experiment_id = _experiment(sessions, team, min_sample=5, horizon=10)
    _sent(sessions, team, experiment_id, "A", [True, False] * 5)
    _sent(sessions, team, experiment_id, "B", [True, False] * 5)
    with session_scope(sessions) as session:
        assert service.evaluate_running(session, NOW) == [experiment_id]
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        assert (experiment.winner, experiment.decided_by) == ("A", "horizon")
        assert experiment.decision is not None
        assert experiment.decision["reason"] == "horizon"


def test_an_admin_stops_a_test_and_picks_the_winner(sessions: sessionmaker[Session], team: Team) -> None:
    experiment_id = _experiment(sessions, team)
    _sent(sessions, team, experiment_id, "A", [True, False, False])
    with session_scope(sessions) as session:
        member = _actor(session, team, team.member_id)
        with pytest.raises(PermissionDeniedError):
            service.stop(session, member, experiment_id, "B", NOW)
    with session_scope(sessions) as session:
        admin = _actor(session, team, team.admin_id)
        with pytest.raises(InvalidInputError, match="one of A, B"):
            service.stop(session, admin, experiment_id, "C", NOW)
        running = service.stop(session, admin, experiment_id, "B", NOW)
        assert running.variants[0].sends == 3
    with session_scope(sessions) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        assert (experiment.winner, experiment.decided_by, experiment.decided_by_user) == (
            "B",
            "user",
            team.admin_id,
        )
        admin = _actor(session, team, team.admin_id)
        with pytest.raises(InvalidInputError, match="already decided"):
            service.stop(session, admin, experiment_id, "A", NOW)


def test_requests_that_make_no_test_are_refused(sessions: sessionmaker[Session], team: Team) -> None:
    with pytest.raises(InvalidInputError, match="metric"):
        _experiment(sessions, team, metric="revenue")
    with pytest.raises(InvalidInputError, match="minimum sample"):
        _experiment(sessions, team, min_sample=500, horizon=100)


def test_api_shows_running_numbers_intervals_and_the_open_rate_warning(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    experiment_id = _experiment(sessions, team, metric="open_rate")
    listed = client.get("/api/v1/experiments", headers=team.headers("member")).json()
    assert [(one["id"], one["metric"], one["state"]) for one in listed] == [
        (str(experiment_id), "open_rate", "running")
    ]
    assert "proxies" in listed[0]["warning"]
    assert client.get("/api/v1/experiments", headers=team.headers("viewer")).status_code == 403

    reply_test = _experiment(sessions, team)
    _sent(sessions, team, reply_test, "A", [True] + [False] * 9)
    _sent(sessions, team, reply_test, "B", [True] * 3 + [False] * 7)
    detail = client.get(f"/api/v1/experiments/{reply_test}", headers=team.headers("member")).json()
    assert detail["warning"] is None
    assert [(one["label"], one["sends"], one["successes"]) for one in detail["variants"]] == [
        ("A", 10, 1),
        ("B", 10, 3),
    ]
    a = detail["variants"][0]
    assert a["rate"] == pytest.approx(0.1)
    assert 0 <= a["rate_low"] < 0.1 < a["rate_high"] <= 1
    assert detail["test"]["reason"] == "collecting"
    assert detail["test"]["bound"] == pytest.approx(20)

    refused = client.post(
        f"/api/v1/experiments/{reply_test}/stop", json={"winner": "B"}, headers=team.headers("member")
    )
    assert refused.status_code == 403
    stopped = client.post(
        f"/api/v1/experiments/{reply_test}/stop", json={"winner": "B"}, headers=team.headers()
    )
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert (body["state"], body["winner"], body["decided_by"], body["decided_by_user"]) == (
        "decided",
        "B",
        "user",
        str(team.admin_id),
    )
    assert body["decision"]["counts"] == [
        {"label": "A", "sends": 10, "successes": 1},
        {"label": "B", "sends": 10, "successes": 3},
    ]


def test_cli_lists_and_shows_experiments(
    sessions: sessionmaker[Session], team: Team, settings: Settings
) -> None:
    experiment_id = _experiment(sessions, team)
    _sent(sessions, team, experiment_id, "B", [True, False])
    environment = touchline_environment(settings)

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "touchline.cli", *args],
            capture_output=True,
            text=True,
            env=environment,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    [line] = cli("experiment", "list", "--workspace", str(team.workspace_id), "--json").splitlines()
    assert json.loads(line) == {
        "id": str(experiment_id),
        "name": "Renewal subject",
        "metric": "reply_rate",
        "variants": ["A", "B"],
        "state": "running",
        "winner": None,
        "decided_by": None,
    }
    shown = json.loads(
        cli("experiment", "show", "--workspace", str(team.workspace_id), str(experiment_id), "--json")
    )
    assert [(one["label"], one["sends"], one["successes"]) for one in shown["variants"]] == [
        ("A", 0, 0),
        ("B", 2, 1),
    ]
    table = cli("experiment", "show", "--workspace", str(team.workspace_id), str(experiment_id))
    assert "Renewal story" in table
    assert "50.0%" in table


def test_the_page_shows_rates_intervals_the_state_and_lets_an_admin_pick_the_winner(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    experiment_id = _experiment(sessions, team, metric="open_rate")
    _sent(sessions, team, experiment_id, "A", [True] + [False] * 3)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    listed = client.get("/experiments")
    assert listed.status_code == 200
    assert f'href="/experiments/{experiment_id}"' in listed.text
    page = client.get(f"/experiments/{experiment_id}")
    assert page.status_code == 200
    assert "25.0%" in page.text
    # The chart's numbers travel as JSON in an attribute the page's script reads; no script inline.
    assert "data-chart='{" in page.text
    assert '"rate": 0.25' in page.text
    assert '<script src="/static/experiment.js">' in page.text
    assert "<script>" not in page.text
    assert "proxies" in page.text  # the open rate's warning
    assert "collecting" in page.text
    stopped = client.post(
        f"/experiments/{experiment_id}/stop",
        data={"csrf_token": csrf_of(page.text), "winner": "B"},
        follow_redirects=False,
    )
    assert stopped.status_code == 303
    after = client.get(f"/experiments/{experiment_id}").text
    assert "Winner <strong>B</strong>" in after
    assert "an admin" in after
    assert "Stop and pick" not in after


def test_the_variants_csv_has_each_variants_numbers_with_formula_cells_as_text(
    client: TestClient, sessions: sessionmaker[Session], team: Team
) -> None:
    experiment_id = _experiment(sessions, team)
    with session_scope(sessions) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        experiment.variants = [
            experiment.variants[0],
            {**experiment.variants[1], "template_name": '=HYPERLINK("http://evil.example")'},
        ]
    _sent(sessions, team, experiment_id, "A", [True, False])
    _sent(sessions, team, experiment_id, "B", [True] * 3 + [False] * 5)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    answer = client.get(f"/experiments/{experiment_id}/variants.csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    header, first, second = list(csv.reader(io.StringIO(answer.text)))
    assert header == [
        "variant",
        "template",
        "sends",
        "successes",
        "rate",
        "interval_low",
        "interval_high",
        "state",
    ]
    detail = client.get(f"/api/v1/experiments/{experiment_id}", headers=team.headers("member")).json()
    a, b = detail["variants"]
    assert first[:5] == ["A", a["template"], "2", "1", "0.5"]
    assert [float(first[5]), float(first[6]), first[7]] == [a["rate_low"], a["rate_high"], "running"]
    assert second[:5] == ["B", '\'=HYPERLINK("http://evil.example")', "8", "3", "0.375"]
    assert [float(second[5]), float(second[6]), second[7]] == [b["rate_low"], b["rate_high"], "running"]
    assert client.get(f"/experiments/{uuid.uuid4()}/variants.csv").status_code == 404
