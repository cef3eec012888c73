"""A background task is shown only to whoever started it and to admins."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Team


def test_an_admins_task_is_not_found_for_members_viewers_and_other_workspaces(
    client: TestClient, team: Team, other_team: Team
) -> None:
    started = client.post("/api/v1/workspace/default-synced-labels/apply", headers=team.headers())
    assert started.status_code == 202, started.text
    task = f"/api/v1/tasks/{started.json()['id']}"
    assert client.get(task, headers=team.headers()).status_code == 200
    assert client.get(task, headers=team.headers("member")).status_code == 404
    assert client.get(task, headers=team.headers("viewer")).status_code == 404
    assert client.get(task, headers=other_team.headers()).status_code == 404
