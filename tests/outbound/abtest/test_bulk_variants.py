"""A bulk send with two template variants: its first batch is split between them by the stable hash,
the rest wait; once the test is decided the rest are queued with the winner (both databases)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import touchline_environment
from tests.outbound.bulk.conftest import Crowd
from tests.outbound.bulk.helpers import actor_for, emails_of
from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.models import BulkSend, Experiment, Template
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks
from touchline.outbound.experiments import rules
from touchline.outbound.experiments import service as experiments


def _second_template(crowd: Crowd) -> None:
    team = crowd.world.team
    with session_scope(crowd.world.sessions) as session:
        session.add(
            Template(
                workspace_id=team.workspace_id,
                name="news story",
                subject="A story for {{ company.name }}",
                html="<p>Hi {{ enduser.first_name }}, a story.</p>",
                text=None,
                version=1,
                created_by=team.member_id,
                updated_by=team.member_id,
            )
        )


def test_the_first_batch_is_split_and_the_rest_get_the_winner(crowd: Crowd) -> None:
    _second_template(crowd)
    world = crowd.world
    wanted = bulk.BulkRequest(
        sender="member@team-a.example", template="news", variants=("news story",), test_share=0.5
    )
    with session_scope(world.sessions) as session:
        bulk_id = bulk.start(session, actor_for(crowd), wanted, settings=world.settings, run_job=False).id
    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "testing"
    )

    with session_scope(world.sessions) as session:
        experiment = experiments.of_bulk(session, bulk_id)
        assert experiment is not None
        assert [variant.template_name for variant in experiments.variants_of(experiment)] == [
            "news",
            "news story",
        ]
        assert experiment.ends_at is not None
        experiment_id, share = experiment.id, experiment.test_share
        assert share == 0.5
    first = emails_of(crowd, bulk_id)
    by_contact = {row.recipients[0].contact_id: row for row in first}
    sendable = set(crowd.contacts.values()) - {
        crowd.contacts["user0@acme.example"],  # unsubscribed
        crowd.contacts["no-one@initech.invalid"],  # undeliverable
        crowd.contacts["user0@globex.example"],  # no name, which both templates use
    }
    in_batch = {one for one in sendable if rules.in_first_batch(experiment_id, one, 0.5)}
    assert set(by_contact) == in_batch
    assert 0 < len(in_batch) < len(sendable)
    for contact_id, row in by_contact.items():
        label = "AB"[rules.assigned_index(experiment_id, contact_id, 2)]
        assert row.variant == label
        assert row.template_name == {"A": "news", "B": "news story"}[label]
    assert {row.variant for row in first} == {"A", "B"}

    # Queueing again while the test runs makes nothing more.
    with session_scope(world.sessions) as session:
        session.get_one(BulkSend, bulk_id).status = "queueing"
    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "testing"
    )
    assert len(emails_of(crowd, bulk_id)) == len(first)

    with session_scope(world.sessions) as session:
        admin = actor_for(crowd, "admin@team-a.example")
        experiments.stop(session, admin, experiment_id, "B", world.clock())
    with session_scope(world.sessions) as session:
        assert session.get_one(BulkSend, bulk_id).status == "queueing"  # and its queueing job was sent
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    everyone = emails_of(crowd, bulk_id)
    assert {row.recipients[0].contact_id for row in everyone} == sendable
    rest = [row for row in everyone if row.recipients[0].contact_id not in in_batch]
    assert rest
    assert {(row.variant, row.template_name) for row in rest} == {("B", "news story")}
    assert {row.id: row.variant for row in everyone if row.id in {one.id for one in first}} == {
        row.id: row.variant for row in first
    }


def test_an_undecided_test_keeps_the_control_after_its_days(crowd: Crowd) -> None:
    _second_template(crowd)
    world = crowd.world
    wanted = bulk.BulkRequest(
        sender="member@team-a.example", template="news", variants=("news story",), test_share=0.3, test_days=2
    )
    with session_scope(world.sessions) as session:
        bulk_id = bulk.start(session, actor_for(crowd), wanted, settings=world.settings, run_job=False).id
    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "testing"
    )
    with session_scope(world.sessions) as session:
        assert experiments.evaluate_running(session, world.clock() + timedelta(days=1)) == []
        [decided] = experiments.evaluate_running(session, world.clock() + timedelta(days=2, seconds=1))
        experiment = session.get_one(Experiment, decided)
        assert (experiment.winner, experiment.decided_by) == ("A", "horizon")
        assert experiment.decision is not None
        assert experiment.decision["reason"] == "ends_at"
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    with session_scope(world.sessions) as session:
        names = set(session.scalars(select(Template.name)))
    assert "news" in names


def test_a_test_needs_one_email_per_enduser(crowd: Crowd) -> None:
    _second_template(crowd)
    world = crowd.world
    wanted = bulk.BulkRequest(
        sender="member@team-a.example", template="announce", mode="one", variants=("news story",)
    )
    with session_scope(world.sessions) as session, pytest.raises(InvalidInputError, match="mode each"):
        bulk.start(session, actor_for(crowd), wanted, settings=world.settings, run_job=False)


def test_the_bulk_send_api_starts_a_test_that_the_experiments_api_shows(
    client: TestClient, crowd: Crowd
) -> None:
    _second_template(crowd)
    world = crowd.world
    client.app.state.settings = world.settings  # type: ignore[attr-defined]
    headers = world.team.headers("member")
    body = {
        "from": "member@team-a.example",
        "template": "news",
        "variants": ["news story"],
        "metric": "human_click_rate",
        "test_share": 0.5,
    }
    answer = client.post("/api/v1/bulk-sends", json=body, headers=headers)
    assert answer.status_code == 202, answer.text
    bulk_id = uuid.UUID(answer.json()["bulk_id"])
    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "testing"
    )
    assert client.get(f"/api/v1/bulk-sends/{bulk_id}", headers=headers).json()["status"] == "testing"
    [listed] = client.get("/api/v1/experiments", headers=headers).json()
    assert (listed["bulk_id"], listed["metric"], listed["state"]) == (
        str(bulk_id),
        "human_click_rate",
        "running",
    )
    detail = client.get(f"/api/v1/experiments/{listed['id']}", headers=headers).json()
    assert [(one["label"], one["template"]) for one in detail["variants"]] == [
        ("A", "news"),
        ("B", "news story"),
    ]
    refused = client.post("/api/v1/bulk-sends", json={**body, "variants": ["no such"]}, headers=headers)
    assert refused.status_code in (404, 422), refused.text


def test_touchline_bulk_send_takes_variants(crowd: Crowd) -> None:
    _second_template(crowd)
    env = touchline_environment(crowd.world.settings)
    env["TOUCHLINE_BASE_URL"] = crowd.world.settings.base_url
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "touchline.cli",
            *("bulk", "send", "--workspace", "Team A", "--as", "member@team-a.example"),
            *(
                "--template",
                "news",
                "--mode",
                "each",
                "--variant",
                "news story",
                "--test-share",
                "0.5",
                "--json",
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "testing"
    rows = emails_of(crowd, summary["bulk_id"])
    assert rows
    assert {row.variant for row in rows} <= {"A", "B"}
    assert summary["queued"] == len(rows)


def test_a_decision_made_while_the_first_batch_was_queued_still_releases_the_rest(crowd: Crowd) -> None:
    _second_template(crowd)
    world = crowd.world
    wanted = bulk.BulkRequest(sender="member@team-a.example", template="news", variants=("news story",))
    with session_scope(world.sessions) as session:
        bulk_id = bulk.start(session, actor_for(crowd), wanted, settings=world.settings, run_job=False).id
    with session_scope(world.sessions) as session:
        experiment = experiments.of_bulk(session, bulk_id)
        assert experiment is not None
        experiments.stop(session, actor_for(crowd, "admin@team-a.example"), experiment.id, "A", world.clock())
        # The queueing job planned before the decision and so left the bulk send waiting.
        session.get_one(BulkSend, bulk_id).status = "testing"
    with session_scope(world.sessions) as session:
        assert experiments.evaluate_running(session, world.clock()) == []
        assert session.get_one(BulkSend, bulk_id).status == "queueing"
