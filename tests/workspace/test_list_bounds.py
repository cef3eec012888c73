"""Lists refuse an offset or page number beyond what a database can skip with 422, never a 500."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.conftest import Team, sign_in_form
from touchline.app import ROUTERS
from touchline.kit.pagination import MAX_OFFSET, MAX_PAGE, PageRequest

# One past the largest 64-bit integer: what the fuzzer sent, and what no database can take as OFFSET.
BEYOND_64_BITS = 2**63


def _listed(app: FastAPI, parameter: str) -> list[str]:
    """Every GET path with the query parameter, path parameters filled with an unknown id."""
    paths = []
    for path, operations in app.openapi()["paths"].items():
        names = {p["name"] for p in operations.get("get", {}).get("parameters", []) if p["in"] == "query"}
        if parameter in names:
            paths.append(_fill(path))
    assert paths, f"no list takes {parameter}"
    return paths


def _fill(path: str) -> str:
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + str(uuid.uuid4()) + path[end + 1 :]
    return path


def _html_paths() -> list[str]:
    """Pages (outside the API document) that take a page number."""
    paths = []
    for router in ROUTERS:
        for route in router.routes:
            if (
                not isinstance(route, APIRoute)
                or "GET" not in route.methods
                or route.path.startswith("/api/")
            ):
                continue
            if any(p.name == "page" for p in route.dependant.query_params):
                paths.append(_fill(route.path))
    assert paths, "no page takes a page number"
    return paths


def test_every_api_list_refuses_an_offset_past_the_bound(
    client: TestClient, app: FastAPI, team: Team
) -> None:
    for path in _listed(app, "offset"):
        for offset in (BEYOND_64_BITS, MAX_OFFSET + 1):
            response = client.get(path, params={"offset": offset}, headers=team.headers())
            assert response.status_code == 422, (path, offset, response.text)
            assert "offset" in response.text


def test_an_offset_at_the_bound_is_an_empty_page(client: TestClient, app: FastAPI, team: Team) -> None:
    lists = [path for path in _listed(app, "offset") if path.count("/") == 3]  # /api/v1/<things>
    assert lists
    for path in lists:
        response = client.get(path, params={"offset": MAX_OFFSET}, headers=team.headers())
        assert response.status_code == 200, (path, response.text)
        assert response.json()["items"] == []


def test_every_page_refuses_a_page_number_past_the_bound(client: TestClient, team: Team) -> None:
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    for path in _html_paths():
        for number in (BEYOND_64_BITS, MAX_PAGE + 1):
            response = client.get(path, params={"page": number})
            assert response.status_code == 422, (path, number, response.status_code)


def test_a_page_request_past_the_bound_is_refused() -> None:
    PageRequest(limit=500, offset=MAX_OFFSET)
    with pytest.raises(ValueError, match="offset"):
        PageRequest(limit=1, offset=MAX_OFFSET + 1)
