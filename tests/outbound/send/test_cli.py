"""`touchline send` and `touchline outbox list`, and the SMTP check when a mailbox is connected."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.conftest import run_touchline
from tests.outbound.send.conftest import World
from touchline.db import session_scope
from touchline.models import Mailbox, OutboundEmail

MEMBER = "member@team-a.example"


def _touchline(world: World, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_touchline(world.settings, *args, stdin=stdin)


@pytest.fixture
def html_file(tmp_path: Path) -> Path:
    path = tmp_path / "body.html"
    path.write_text("<p>Hello from the <i>command line</i></p>", encoding="utf-8")
    return path


def _send(
    world: World, html_file: Path, *extra: str, subject: str = "From the CLI"
) -> subprocess.CompletedProcess[str]:
    return _touchline(
        world,
        *("send", "--workspace", "Team A", "--as", MEMBER, "--from", MEMBER, "--to", world.contact),
        *("--subject", subject, "--html-file", str(html_file), "--json", *extra),
    )


def _stored(world: World) -> list[OutboundEmail]:
    with session_scope(world.sessions) as session:
        rows = list(session.scalars(select(OutboundEmail)))
        session.expunge_all()
        return rows


def test_send_prints_one_json_object_and_the_email_leaves(world: World, html_file: Path) -> None:
    done = _send(world, html_file, "--cc", "boss@acme.example")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert set(printed) == {"id", "status", "message_id", "from", "to"}
    assert printed["status"] == "queued"
    assert printed["from"] == MEMBER
    assert printed["to"] == [world.contact]

    assert world.deliver(printed["id"]) == "sent"
    [received] = world.sink.received
    assert received.message["Message-ID"] == printed["message_id"]
    assert set(received.recipients) == {world.contact, "boss@acme.example"}
    assert "command line" in received.part("text/plain")

    listed = _touchline(world, "outbox", "list", "--workspace", "Team A", "--json")
    assert listed.returncode == 0, listed.stderr
    [line] = [json.loads(text) for text in listed.stdout.splitlines()]
    assert line["id"] == printed["id"]
    assert line["status"] == "sent"
    assert line["first_recipient"] == world.contact
    for field in ("message_id", "from", "to", "template", "bulk_id", "sequence", "step", "error"):
        assert field in line


def test_send_at_a_time_schedules_it(world: World, html_file: Path) -> None:
    done = _send(world, html_file, "--at", "2099-01-04T09:00:00+01:00")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "scheduled"
    [row] = _stored(world)
    assert row.scheduled_for is not None
    assert row.scheduled_for.isoformat() == "2099-01-04T08:00:00+00:00"


@pytest.mark.parametrize(
    ("extra", "subject", "reason"),
    [
        ((), "Hello\r\nBcc: victim@elsewhere.example", "line break"),
        (("--cc", "boss@acme.example\nBcc: victim@elsewhere.example"), "Hi", "line break"),
        (("--at", "2099-01-04T09:00:00"), "Hi", "time zone"),
    ],
)
def test_a_refused_send_exits_2_and_sends_nothing(
    world: World, html_file: Path, extra: tuple[str, ...], subject: str, reason: str
) -> None:
    done = _send(world, html_file, *extra, subject=subject)
    assert done.returncode == 2
    assert reason in done.stderr
    assert done.stdout == ""
    assert _stored(world) == []
    assert world.sink.received == []


def test_the_from_rules_and_permissions_hold_at_the_command_line(world: World, html_file: Path) -> None:
    private = _touchline(
        world,
        *("send", "--workspace", "Team A", "--as", MEMBER, "--from", "admin@team-a.example"),
        *("--to", world.contact, "--subject", "s", "--html-file", str(html_file)),
    )
    assert private.returncode == 2
    assert "private address" in private.stderr
    viewer = _touchline(
        world,
        *(
            "send",
            "--workspace",
            "Team A",
            "--as",
            "viewer@team-a.example",
            "--from",
            "viewer@team-a.example",
        ),
        *("--to", world.contact, "--subject", "s", "--html-file", str(html_file)),
    )
    assert viewer.returncode == 2
    assert "send_email" in viewer.stderr
    template = _touchline(
        world,
        *("send", "--workspace", "Team A", "--as", MEMBER, "--from", "account-owner"),
        *("--to", world.contact, "--template", "renewal"),
    )
    assert template.returncode == 2
    assert "no template named 'renewal'" in template.stderr
    assert _stored(world) == []


def test_connecting_a_mailbox_checks_the_smtp_login_too(world: World, client: TestClient) -> None:
    with session_scope(world.sessions) as session:
        session.execute(Mailbox.__table__.delete())
    body = {
        "host": world.dovecot.host,
        "port": world.dovecot.imap_port,
        "security": "plain",
        "username": world.imap.username,
        "password": world.imap.password,
        "smtp_host": "127.0.0.1",
        "smtp_port": world.sink.port,
        "smtp_security": "plain",
    }
    world.sink.password = "not-the-imap-password"
    refused = client.post("/api/v1/mailboxes/imap", json=body, headers=world.team.headers("member"))
    assert refused.status_code == 422
    assert "SMTP" in refused.json()["detail"]
    with session_scope(world.sessions) as session:
        assert session.scalars(select(Mailbox)).all() == []

    world.sink.password = world.imap.password
    connected = client.post("/api/v1/mailboxes/imap", json=body, headers=world.team.headers("member"))
    assert connected.status_code == 201, connected.text
    with session_scope(world.sessions) as session:
        mailbox = session.get(Mailbox, uuid.UUID(connected.json()["id"]))
        assert mailbox is not None
        assert mailbox.connection["smtp"] == {
            "host": "127.0.0.1",
            "port": world.sink.port,
            "security": "plain",
        }


def test_connect_imap_at_the_command_line_refuses_a_failing_smtp_login(world: World) -> None:
    world.sink.password = "not-the-imap-password"
    done = _touchline(
        world,
        *("mailbox", "connect-imap", "--workspace", "Team A", "--user", "admin@team-a.example"),
        *("--host", world.dovecot.host, "--port", str(world.dovecot.imap_port), "--security", "plain"),
        *("--username", world.imap.username, "--password-stdin"),
        *("--smtp-host", "127.0.0.1", "--smtp-port", str(world.sink.port), "--smtp-security", "plain"),
        stdin=world.imap.password + "\n",
    )
    assert done.returncode == 1
    assert "could not sign in to SMTP" in done.stderr
