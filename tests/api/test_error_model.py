"""One error model: every JSON error is a problem (RFC 9457) with a sentence in `detail`, and every
operation of the OpenAPI document declares its errors in that shape."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from tests.conftest import Team
from touchline.config import Settings
from touchline.workspace.schemas import ErrorOut

PROBLEM = "application/problem+json"


def _problem(response: Response, status: int) -> ErrorOut:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = ErrorOut.model_validate(response.json(), strict=True)
    assert (problem.type, problem.status) == ("about:blank", status)
    assert problem.detail
    return problem


def _api_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method, operation in operations.items()
    ]


def test_every_operation_declares_its_errors_as_problems(app: FastAPI) -> None:
    document = app.openapi()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # the framework's list-shaped 422 is gone
    assert set(schemas["ErrorOut"]["required"]) == {"title", "status", "detail"}
    operations = _api_operations(app)
    assert len(operations) >= 90
    for method, path, operation in operations:
        responses = operation["responses"]
        expected = {"422"}
        if operation.get("security"):
            expected |= {"401", "403", "404"}
        if "{" in path:
            expected |= {"404"}
        if method in {"post", "put", "patch", "delete"}:
            expected |= {"400", "404", "409"}
        if "requestBody" in operation:
            expected |= {"413"}
        if (method, path) == ("post", "/api/v1/mailboxes/imap"):
            expected |= {"429"}  # connection attempts are counted
        assert expected <= set(responses), f"{method.upper()} {path} lacks {expected - set(responses)}"
        for code, answer in responses.items():
            if int(code) < 400:
                continue
            assert list(answer["content"]) == [PROBLEM], f"{method.upper()} {path} {code}"
            ref = answer["content"][PROBLEM]["schema"]["$ref"].rsplit("/", 1)[1]
            # ErrorOut, or an answer of its own that adds members to it.
            assert set(schemas["ErrorOut"]["required"]) <= set(schemas[ref].get("required", [])), ref


def test_a_business_rule_refusal_is_a_problem_with_a_sentence(client: TestClient, team: Team) -> None:
    response = client.post(
        "/api/v1/companies", json={"name": "Mixed", "domains": ["gmail.com"]}, headers=team.headers()
    )
    problem = _problem(response, 422)
    assert "public email provider" in problem.detail
    assert problem.errors is None


def test_a_malformed_request_names_each_field_in_the_same_shape(client: TestClient, team: Team) -> None:
    response = client.post("/api/v1/companies", json={"name": "", "domains": "x"}, headers=team.headers())
    problem = _problem(response, 422)
    assert problem.errors is not None
    fields = {tuple(error.loc) for error in problem.errors}
    assert {("body", "name"), ("body", "domains")} <= fields
    assert "body.name:" in problem.detail
    assert "body.domains:" in problem.detail


def test_authentication_permission_and_absence_are_problems(client: TestClient, team: Team) -> None:
    assert "API token" in _problem(client.get("/api/v1/companies"), 401).detail
    _problem(client.post("/api/v1/companies", json={"name": "Acme"}, headers=team.headers("viewer")), 403)
    _problem(client.get(f"/api/v1/companies/{uuid.uuid4()}", headers=team.headers()), 404)
    # A path no route serves is answered by the framework itself, in the same shape.
    _problem(client.get("/api/v1/no-such-thing", headers=team.headers()), 404)
    _problem(client.put("/api/v1/workspace", headers=team.headers()), 405)


def test_a_conflict_is_a_problem(client: TestClient, team: Team) -> None:
    body = {"name": "Acme", "domains": ["acme.example"]}
    assert client.post("/api/v1/companies", json=body, headers=team.headers()).status_code == 201
    again = client.post(
        "/api/v1/companies", json={"name": "Other", "domains": ["acme.example"]}, headers=team.headers()
    )
    assert "already belongs" in _problem(again, 409).detail


def test_a_body_over_the_limit_is_a_problem(client: TestClient, team: Team, settings: Settings) -> None:
    # Refused before the framework reads it, by the size limit: the same shape all the same.
    body = b"{" + b" " * settings.max_request_body_bytes + b"}"
    response = client.post("/api/v1/companies", content=body, headers=team.headers())
    _problem(response, 413)
