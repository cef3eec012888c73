"""A template's UTM parameters are written on its page and with `touchline template create`, kept when
the template is edited, and cleared by emptying them."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, csrf_of, sign_in_form
from tests.outbound.send.conftest import World
from tests.outbound.send.test_template_sends import _create
from tests.outbound.test_template_pages import ADMIN, ADMIN_PASSWORD, _stored

HTML = '<p>Hi {{ enduser.first_name }}, <a href="https://acme.example/plans">plans</a></p>'


def test_the_template_page_writes_and_keeps_utm_parameters(
    client: TestClient, team: Team, sessions: sessionmaker[Session]
) -> None:
    assert sign_in_form(client, ADMIN, ADMIN_PASSWORD).status_code == 303
    editor = client.get("/templates/new").text
    assert 'name="utm_campaign"' in editor
    form = {
        "csrf_token": csrf_of(editor),
        "name": "Renewal",
        "subject": "Renewal",
        "html": HTML,
        "track_opens": "yes",
        "track_clicks": "yes",
        "utm_source": "touchline",
        "utm_medium": "",
        "utm_campaign": "renewal {{ company.name }}",
        "utm_content": "",
    }
    saved = client.post("/templates", data=form, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    row = _stored(sessions, team, "Renewal")
    assert row.utm == {"utm_source": "touchline", "utm_campaign": "renewal {{ company.name }}"}
    page = client.get(saved.headers["location"]).text
    assert 'value="renewal {{ company.name }}"' in page
    # An edit that leaves the fields as shown keeps them; emptying one removes it.
    edited = client.post(f"/templates/{row.id}", data={**form, "utm_source": ""}, follow_redirects=False)
    assert edited.status_code == 303, edited.text
    assert _stored(sessions, team, "Renewal").utm == {"utm_campaign": "renewal {{ company.name }}"}
    refused = client.post(f"/templates/{row.id}", data={**form, "utm_source": "x" * 201})
    assert refused.status_code == 400
    assert "utm_source has at most 200 characters" in refused.text


def test_template_create_takes_the_utm_options(world: World, tmp_path: Path) -> None:
    _create(
        world,
        tmp_path,
        "renewal",
        HTML,
        *("--utm-source", "touchline", "--utm-medium", "email", "--utm-campaign", "for {{ company.name }}"),
    )
    row = _stored(world.sessions, world.team, "renewal")
    assert row.utm == {
        "utm_source": "touchline",
        "utm_medium": "email",
        "utm_campaign": "for {{ company.name }}",
    }
