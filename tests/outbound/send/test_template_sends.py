"""Stored templates: `touchline template create`, and sends rendered from them for their recipient."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import select

from tests.outbound.send.conftest import World
from tests.outbound.send.test_cli import MEMBER, _stored, _touchline
from touchline.db import session_scope
from touchline.models import Template
from touchline.outbound.send import service as outbox
from touchline.outbound.templates import service as templates
from touchline.workspace import service
from touchline.workspace.permissions import Actor

HTML = "<p>Hello {{ enduser.first_name }},</p><p>{{ company.name }} renews soon. {{ sender.name }}</p>"


def _create(world: World, tmp_path: Path, name: str, html: str, *extra: str) -> dict[str, object]:
    html_file = tmp_path / f"{name}.html"
    html_file.write_text(html, encoding="utf-8")
    done = _touchline(
        world,
        *("template", "create", "--workspace", "Team A", name),
        *("--subject", "{{ company.name }} renewal", "--html-file", str(html_file), "--json", *extra),
    )
    assert done.returncode == 0, done.stderr
    record: dict[str, object] = json.loads(done.stdout)
    return record


def test_a_template_made_at_the_command_line_is_sent_personalised(world: World, tmp_path: Path) -> None:
    text_file = tmp_path / "renewal.txt"
    text_file.write_text("Hi {{ enduser.first_name }}, {{ company.name }} renews.", encoding="utf-8")
    created = _create(world, tmp_path, "renewal", HTML, "--text-file", str(text_file), "--no-track-clicks")
    assert created["version"] == 1

    done = _touchline(
        world,
        *("send", "--workspace", "Team A", "--as", MEMBER, "--from", MEMBER),
        *("--to", world.contact, "--template", "renewal", "--json"),
    )
    assert done.returncode == 0, done.stderr
    sent = json.loads(done.stdout)
    assert world.deliver(sent["id"]) == "sent"
    [received] = world.sink.received
    assert received.message["Subject"] == "Acme renewal"
    assert "Hello Jane," in received.part("text/html")
    assert received.part("text/plain").strip() == "Hi Jane, Acme renews."
    [row] = _stored(world)
    assert (row.template_name, row.template_version) == ("renewal", 1)
    assert row.template_id == uuid.UUID(str(created["id"]))
    assert (row.track_opens, row.track_clicks) == (True, False)

    listed = _touchline(world, "template", "list", "--workspace", "Team A", "--json")
    [line] = [json.loads(text) for text in listed.stdout.splitlines()]
    assert (line["name"], line["track_clicks"]) == ("renewal", False)


def test_a_template_that_cannot_render_is_not_saved(world: World, tmp_path: Path) -> None:
    html_file = tmp_path / "bad.html"
    html_file.write_text("<p>{{ enduser.shoe_size }} {% for x in enduser %}{% endfor %}", encoding="utf-8")
    done = _touchline(
        world,
        *("template", "create", "--workspace", "Team A", "bad"),
        *("--subject", "{{ company.nam }}", "--html-file", str(html_file)),
    )
    assert done.returncode == 2
    assert "template not saved" in done.stderr
    assert "company.nam" in done.stderr
    assert "enduser.shoe_size" in done.stderr
    with session_scope(world.sessions) as session:
        assert session.scalars(select(Template)).all() == []


def test_a_recipient_missing_a_field_gets_nothing_and_the_refusal_names_it(
    world: World, tmp_path: Path
) -> None:
    _create(world, tmp_path, "tiered", "<p>{{ company.custom.tier }} for {{ enduser.last_name }}</p>")
    done = _touchline(
        world,
        *("send", "--workspace", "Team A", "--as", MEMBER, "--from", MEMBER),
        *("--to", world.contact, "--template", "tiered"),
    )
    assert done.returncode == 2
    assert "company.custom.tier" in done.stderr
    assert "enduser.last_name" in done.stderr
    assert _stored(world) == []
    assert world.sink.received == []


def test_editing_a_template_raises_its_version_and_new_sends_record_it(world: World) -> None:
    operator = Actor.operator(world.team.workspace_id)
    with session_scope(world.sessions) as session:
        row = templates.create_template(
            session, operator, "check-in", templates.TemplateText("Hi", "<p>v1 {{ enduser.email }}</p>")
        )
        templates.update_template(
            session, operator, row.id, templates.TemplateText("Hi", "<p>v2 {{ enduser.email }}</p>")
        )
        member = service.actor_for(service.find_user_by_email(session, operator, MEMBER))
        sent = outbox.send_email(
            session,
            member,
            outbox.Draft(sender=MEMBER, to=[outbox.Recipient(world.contact)], template_id=row.id),
            settings=world.settings,
            now=world.clock.now,
        )
        assert (sent.template_version, sent.html_body) == (2, f"<p>v2 {world.contact}</p>")
