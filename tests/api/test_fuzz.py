"""A bounded, reproducible property-based run over every operation of the OpenAPI document, as an
Admin, as a Viewer and with no token: no answer is a server error, and every answer (its status, its
media type, its body) is one the document declares."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import checks
from schemathesis.core.transport import Response as FuzzResponse

from tests.conftest import Team
from touchline.config import Settings
from touchline.kit.net import AddressPolicy
from touchline.mailboxes import connect
from touchline.outbound.notify import service as notify_service

# Examples per operation and identity: about 100 operations x 3 identities, a few minutes on 2 cores.
EXAMPLES = int(os.environ.get("TOUCHLINE_FUZZ_EXAMPLES", "12"))

CHECKS: list[Callable[..., Any]] = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@schemathesis.serializer("message/rfc822")
def _raw_message(context: Any, value: Any) -> bytes:
    """The log address takes a raw message: whatever bytes the fuzzer made are sent as they are."""
    return value if isinstance(value, bytes) else str(value).encode()


def _no_network(host: str, port: int) -> list[str]:
    """Every host a user names resolves to loopback, which the policy refuses: nothing leaves the machine."""
    return ["127.0.0.1"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def policy(settings: Settings, *_: Any, **__: Any) -> AddressPolicy:
        return AddressPolicy(allow_private=False, resolver=_no_network)

    monkeypatch.setattr(connect, "mail_host_policy", policy)
    monkeypatch.setattr(notify_service, "webhook_policy", policy)


def _identities(team: Team) -> Iterator[tuple[str, dict[str, str]]]:
    yield "admin", team.headers("admin")
    yield "viewer", team.headers("viewer")
    yield "anonymous", {}


def _fuzz(operation: schemathesis.APIOperation, headers: dict[str, str]) -> None:
    @hypothesis_settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same cases on every run and machine
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the run stays bounded when it fails
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: schemathesis.Case) -> None:
        # The identity under test replaces any Authorization header the document's security scheme made.
        sent = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers = {**sent, **headers}
        response: FuzzResponse = case.call_and_validate(checks=CHECKS)
        assert response.status_code < 500

    run()


@pytest.mark.usefixtures("offline")
def test_every_operation_answers_as_its_document_says(app: FastAPI, team: Team) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for who, headers in _identities(team):
            try:
                _fuzz(operation, headers)
            except Exception as error:  # every operation is tried; all that failed are reported together
                failures.append(f"{operation.label} as {who}:\n{error}")
    assert operations >= 90, "the document lost operations"
    assert not failures, "\n\n".join(failures)
