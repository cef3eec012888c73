"""Bounded requests: bodies over their route's limit get 413, stored fields over their caps get 422."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Team
from touchline.body_limit import too_large
from touchline.config import Settings
from touchline.workspace.schemas import MAX_CUSTOM_FIELDS, MAX_CUSTOM_FIELDS_BYTES

MIB = 1024 * 1024


def companies(client: TestClient, team: Team) -> list[str]:
    listed = client.get("/api/v1/companies", headers=team.headers()).json()
    return [item["name"] for item in listed["items"]]


def test_a_30_mb_custom_field_is_refused_before_it_is_read(
    client: TestClient, team: Team, settings: Settings
) -> None:
    body = {"name": "Huge", "custom_fields": {"notes": "x" * (30 * MIB)}}
    response = client.post("/api/v1/companies", json=body, headers=team.headers())
    assert response.status_code == 413
    assert response.json()["detail"] == too_large(settings.max_request_body_bytes)
    assert companies(client, team) == []


def test_a_body_without_a_length_is_counted_as_it_arrives(
    client: TestClient, team: Team, settings: Settings
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "Streamed", "custom_fields": {"notes": "'
        for _ in range(2 * settings.max_request_body_bytes // 65536):
            yield b"x" * 65536
        yield b'"}}'

    headers = {**team.headers(), "Content-Type": "application/json"}
    response = client.post("/api/v1/companies", content=chunks(), headers=headers)
    assert response.status_code == 413
    assert response.json()["detail"] == too_large(settings.max_request_body_bytes)
    assert companies(client, team) == []


def test_a_csv_import_may_be_larger_than_other_requests(
    client: TestClient, team: Team, settings: Settings
) -> None:
    padding = b"#" * (settings.max_request_body_bytes + MIB)  # another part, ignored by the import
    response = client.post(
        "/api/v1/imports/companies",
        files={"file": ("c.csv", "name,domains\nAcme,acme.com\n", "text/csv"), "padding": ("p", padding)},
        headers=team.headers(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1


@pytest.mark.parametrize(
    ("custom_fields", "message"),
    [
        ({"notes": "x" * MAX_CUSTOM_FIELDS_BYTES}, f"at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON"),
        ({f"field{n}": n for n in range(MAX_CUSTOM_FIELDS + 1)}, f"at most {MAX_CUSTOM_FIELDS} fields"),
        ({"k" * 101: "long name"}, "at most 100 characters"),
    ],
)
def test_custom_fields_are_capped_in_count_and_size(
    client: TestClient, team: Team, custom_fields: dict[str, object], message: str
) -> None:
    for path, body in (
        ("/api/v1/companies", {"name": "Acme", "custom_fields": custom_fields}),
        ("/api/v1/contacts", {"email": "jane@acme.example", "custom_fields": custom_fields}),
    ):
        response = client.post(path, json=body, headers=team.headers())
        assert response.status_code == 422
        assert message in str(response.json()["detail"])
    assert companies(client, team) == []
    for label, kind in (("tier", "text"), ("seats", "number")):
        defined = client.post(
            "/api/v1/custom-fields",
            json={"kind": "company", "label": label, "type": kind},
            headers=team.headers(),
        )
        assert defined.status_code == 201, defined.text
    fits = {"tier": "gold", "seats": 40}
    response = client.post(
        "/api/v1/companies", json={"name": "Acme", "custom_fields": fits}, headers=team.headers()
    )
    assert response.status_code == 201
    assert response.json()["custom_fields"] == fits


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/companies", {"name": "Acme", "domains": [f"d{n}.example" for n in range(101)]}),
        ("/api/v1/companies", {"name": "Acme", "domains": ["d" * 254 + ".example"]}),
        ("/api/v1/contacts", {"email": "j" * 320 + "@acme.example"}),
        ("/api/v1/contacts", {"email": "jane@acme.example", "name": "J" * 201}),
        ("/api/v1/users", {"email": "new@team-a.example", "password": "p" * 1025}),
        ("/api/v1/roles", {"name": "Many", "permissions": ["email_sync"] * 101}),
    ],
)
def test_names_addresses_and_lists_are_capped(
    client: TestClient, team: Team, path: str, body: dict[str, object]
) -> None:
    response = client.post(path, json=body, headers=team.headers())
    assert response.status_code == 422


def test_settings_lists_are_capped(client: TestClient, team: Team) -> None:
    too_many = [f"blocked{n}.example" for n in range(1001)]
    response = client.patch(
        "/api/v1/workspace/settings", json={"blocklist": too_many}, headers=team.headers()
    )
    assert response.status_code == 422
    assert "at most 1000 items" in str(response.json()["detail"])
