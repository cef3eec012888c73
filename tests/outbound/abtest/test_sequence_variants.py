"""An A/B test on a sequence step: endusers reaching the step get their variant's template, recorded
on the email, and those after the decision get the winner (both databases)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.outbound.sequences.conftest import Playbook
from touchline.db import session_scope
from touchline.outbound.experiments import rules
from touchline.outbound.experiments import service as experiments
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


def test_a_step_sends_each_enduser_their_variant_and_later_ones_the_winner(
    client: TestClient, playbook: Playbook
) -> None:
    sequence_id = playbook.create([("Welcome", 0, "")])
    headers = playbook.team.headers("member")
    answer = client.post(
        "/api/v1/experiments",
        json={"sequence_id": str(sequence_id), "step": 1, "templates": [str(playbook.templates["Nudge"])]},
        headers=headers,
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert [(one["label"], one["template"]) for one in created["variants"]] == [
        ("A", "Welcome"),
        ("B", "Nudge"),
    ]
    missing = client.post(
        "/api/v1/experiments",
        json={"sequence_id": str(sequence_id), "step": 2, "templates": [str(playbook.templates["Nudge"])]},
        headers=headers,
    )
    assert missing.status_code == 404

    playbook.enrol(sequence_id, playbook.jane)
    playbook.tick()
    [jane_email] = playbook.outbound()
    with session_scope(playbook.sessions) as session:
        experiment = experiments.of_step(session, sequence_id, 1)
        assert experiment is not None
        label = "AB"[rules.assigned_index(experiment.id, playbook.jane, 2)]
    assert jane_email.variant == label
    assert jane_email.template_name == {"A": "Welcome", "B": "Nudge"}[label]

    with session_scope(playbook.sessions) as session:
        operator = Actor.operator(playbook.team.workspace_id)
        admin = workspace_service.actor_for(
            workspace_service.get_user(session, operator, playbook.team.admin_id)
        )
        experiments.stop(session, admin, experiment.id, "B", playbook.clock.now)
    playbook.enrol(sequence_id, playbook.bob)
    playbook.tick()
    bob_email = next(row for row in playbook.outbound() if row.id != jane_email.id)
    assert (bob_email.variant, bob_email.template_name) == ("B", "Nudge")
