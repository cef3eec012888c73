"""/api/v1/bulk-sends: dry run, start (the queueing job enqueued), list, progress, skipped; answers
match their OpenAPI models; send_email is needed and another workspace's bulk send is not found."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import Team
from tests.outbound.bulk.conftest import MEMBER, Crowd
from tests.outbound.bulk.helpers import deliver_all, start
from touchline.outbound.bulk import tasks


def _client(client: TestClient, crowd: Crowd) -> TestClient:
    client.app.state.settings = crowd.world.settings  # type: ignore[attr-defined]
    return client


def _body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": MEMBER,
        "template": "news",
        "mode": "each",
        "filters": ["company.custom.tier=gold"],
    }
    body.update(fields)
    return body


def test_a_dry_run_answers_the_count_and_the_skipped_and_queues_nothing(
    client: TestClient, crowd: Crowd
) -> None:
    api = _client(client, crowd)
    answer = api.post(
        "/api/v1/bulk-sends", json=_body(dry_run=True), headers=crowd.world.team.headers("member")
    )
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert (
        summary["bulk_id"],
        summary["status"],
        summary["recipients"],
        summary["queued"],
        summary["skipped"],
    ) == (
        None,
        "dry-run",
        13,
        11,
        2,
    )
    assert {skip["address"] for skip in summary["skipped_endusers"]} == {
        "user0@acme.example",
        "no-one@initech.invalid",
    }
    assert api.get("/api/v1/bulk-sends", headers=crowd.world.team.headers("member")).json() == []


def test_start_then_progress_and_skipped(client: TestClient, crowd: Crowd) -> None:
    api = _client(client, crowd)
    headers = crowd.world.team.headers("member")
    answer = api.post("/api/v1/bulk-sends", json=_body(), headers=headers)
    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started["status"] == "queueing"
    bulk_id = started["bulk_id"]
    world = crowd.world
    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, uuid.UUID(bulk_id), clock=world.clock)
        == "queued"
    )
    deliver_all(crowd, bulk_id)

    one = api.get(f"/api/v1/bulk-sends/{bulk_id}", headers=headers).json()
    assert {
        key: one[key] for key in ("status", "recipients", "queued", "skipped", "sent", "failed", "waiting")
    } == {
        "status": "queued",
        "recipients": 13,
        "queued": 11,
        "skipped": 2,
        "sent": 11,
        "failed": 0,
        "waiting": 0,
    }
    assert (one["from"], one["template"], one["filters"]) == (MEMBER, "news", ["company.custom.tier=gold"])
    [listed] = api.get("/api/v1/bulk-sends", headers=headers).json()
    assert listed["id"] == bulk_id
    skipped = api.get(f"/api/v1/bulk-sends/{bulk_id}/skipped", headers=headers).json()
    assert [skip["address"] for skip in skipped] == ["no-one@initech.invalid", "user0@acme.example"]
    assert skipped[1]["reason"].startswith("unsubscribed on")

    count = api.get(
        "/api/v1/bulk-sends/count", params={"filter": ["company.custom.tier=gold"]}, headers=headers
    ).json()
    assert count == {"recipients": 13, "skipped": 2}


def test_refusals_answer_422_with_the_reason(client: TestClient, crowd: Crowd) -> None:
    api = _client(client, crowd)
    headers = crowd.world.team.headers("member")
    for body, reason in (
        (_body(mode="one"), "reads enduser fields"),
        (_body(filters=["company.tier=gold"]), "is not a field"),
        (_body(template="nothing"), "no template named"),
        (_body(**{"from": "admin@team-a.example"}), "admin@team-a.example"),
    ):
        answer = api.post("/api/v1/bulk-sends", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert reason in answer.json()["detail"]
    assert api.get("/api/v1/bulk-sends", headers=headers).json() == []


def test_send_email_is_needed_and_other_workspaces_see_nothing(
    client: TestClient, crowd: Crowd, other_team: Team
) -> None:
    api = _client(client, crowd)
    answer = api.post("/api/v1/bulk-sends", json=_body(), headers=crowd.world.team.headers("viewer"))
    assert answer.status_code == 403
    bulk_id = start(crowd, _request_gold())
    for path in (f"/api/v1/bulk-sends/{bulk_id}", f"/api/v1/bulk-sends/{bulk_id}/skipped"):
        assert api.get(path, headers=other_team.headers("admin")).status_code == 404
    assert api.get("/api/v1/bulk-sends", headers=other_team.headers("admin")).json() == []
    assert (
        api.get(f"/api/v1/bulk-sends/{bulk_id}", headers=crowd.world.team.headers("admin")).status_code == 200
    )


def test_the_openapi_document_names_the_bulk_send_models(client: TestClient, crowd: Crowd) -> None:
    paths = _client(client, crowd).get("/openapi.json").json()["paths"]
    assert "/api/v1/bulk-sends" in paths
    ok = paths["/api/v1/bulk-sends/{bulk_id}"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert ok["$ref"].endswith("/BulkSendOut")


def _request_gold() -> Any:
    from tests.outbound.bulk.helpers import request

    return request("company.custom.tier=gold")
