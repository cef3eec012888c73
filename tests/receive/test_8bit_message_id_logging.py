"""The log address takes a Message-ID holding a raw 8-bit byte, over HTTP and SMTP, and stores it
losslessly (ADR 0009) instead of quarantining the message."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.receive.conftest import LogWorld, message
from tests.receive.test_http_inbound import (  # the autouse fixture signs posts as the team
    credentials,
    dkim_signed_by_the_team,  # noqa: F401
    post,
)
from tests.receive.test_smtp import send
from touchline.db import session_scope
from touchline.inbound.receive.smtp import InboundServer
from touchline.models import QuarantinedMessage

STORED = "caf\\xe9-1@team-a.example"


def _with_8bit_id(raw: bytes) -> bytes:
    return re.sub(rb"Message-ID: [^\r\n]+", b"Message-ID: <caf\xe9-1@team-a.example>", raw, count=1)


def _nothing_quarantined(world: LogWorld) -> None:
    with session_scope(world.sessions) as session:
        assert session.scalars(select(QuarantinedMessage)).first() is None


def test_the_http_log_address_stores_an_8bit_message_id(client: TestClient, world: LogWorld) -> None:
    secret = credentials(client, world.team)
    code, body = post(
        client, world, _with_8bit_id(message("Quote")), **{secret["secret_header"]: secret["inbound_secret"]}
    )
    assert code == 201, body
    [record] = world.emails()
    assert record["message_id"] == STORED
    _nothing_quarantined(world)


def test_the_smtp_log_address_stores_an_8bit_message_id(world: LogWorld, smtp_server: InboundServer) -> None:
    code, reply = send(
        smtp_server, "member@team-a.example", [world.log_address], _with_8bit_id(message("Quote"))
    )
    assert code == 250, reply
    [record] = world.emails()
    assert record["message_id"] == STORED
    _nothing_quarantined(world)
