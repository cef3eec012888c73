"""The workspace's time zone: set by admins through the API (an IANA name, audited), read by all."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Team


def test_admins_set_the_workspace_s_time_zone_to_a_known_zone(client: TestClient, team: Team) -> None:
    admin, member = team.headers("admin"), team.headers("member")
    assert client.get("/api/v1/workspace/settings", headers=admin).json()["time_zone"] == "UTC"

    for name in ("Mars/Olympus", "../etc/passwd", ""):
        refused = client.patch("/api/v1/workspace/settings", json={"time_zone": name}, headers=admin)
        assert refused.status_code == 422, (name, refused.text)
        assert "is not a time zone; use an IANA name like Europe/Berlin" in refused.text
    assert client.get("/api/v1/workspace/settings", headers=admin).json()["time_zone"] == "UTC"

    saved = client.patch("/api/v1/workspace/settings", json={"time_zone": " Europe/Berlin "}, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["time_zone"] == "Europe/Berlin"
    assert client.get("/api/v1/workspace/settings", headers=member).json()["time_zone"] == "Europe/Berlin"
    assert (
        client.patch(
            "/api/v1/workspace/settings", json={"time_zone": "Asia/Tokyo"}, headers=member
        ).status_code
        == 403
    )

    audit = client.get("/api/v1/audit-log", headers=admin)
    assert audit.status_code == 200, audit.text
    changes = [entry["details"] for entry in audit.json() if entry["action"] == "settings.update"]
    assert {"time_zone": "Europe/Berlin"} in changes
