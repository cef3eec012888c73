"""An email's page explains itself in plain words: the company's name, never its id or rule names."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Team, sign_in_form
from touchline.db import session_scope
from touchline.inbound.match import match
from touchline.inbound.parse import parse_message
from touchline.inbound.store.directory import load_directory
from touchline.inbound.store.service import Holding, store_email
from touchline.inbound.wording import participant_words
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


def _email_with_acme(app: FastAPI, team: Team) -> tuple[uuid.UUID, uuid.UUID]:
    raw = (
        b"From: Admin <admin@team-a.example>\r\nTo: Jane <jane@acme.example>, member@team-a.example\r\n"
        b"Subject: Seats\r\nMessage-ID: <seats@team-a.example>\r\n"
        b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\nHello\r\n"
    )
    with session_scope(app.state.sessions) as session:
        company = workspace_service.create_company(
            session, Actor.operator(team.workspace_id), "Acme Corporation", domains=["acme.example"]
        )
        parsed = parse_message(raw)
        stored = store_email(
            session,
            team.workspace_id,
            parsed,
            match(parsed, load_directory(session, team.workspace_id)),
            Holding(user_id=team.admin_id, via="log"),
        )
        assert stored.email_id is not None
        return stored.email_id, company.id


def test_why_is_this_email_here_names_the_company_in_plain_words(
    client: TestClient, app: FastAPI, team: Team
) -> None:
    email_id, company_id = _email_with_acme(app, team)
    assert sign_in_form(client, "admin@team-a.example", "admin-password-123").status_code == 303
    html = client.get(f"/emails/{email_id}").text
    explanation = html[html.index('id="explanation"') :]
    assert "Acme Corporation" in explanation
    assert str(company_id) not in explanation
    assert (
        "jane@acme.example (to): not a contact yet, but at acme.example, a domain of Acme Corporation" in html
    )
    assert "member@team-a.example (to): a teammate" in html
    for jargon in ("company-domain", "Held by", "internal (a user)", "internal —"):
        assert jargon not in html
    assert "Synced or logged by admin@team-a.example" in html


def test_every_outcome_has_words_and_a_deleted_company_is_said_so() -> None:
    names = {"c1": "Acme"}
    said = {
        outcome: participant_words({"outcome": outcome, "company": company, "detail": detail}, names)
        for outcome, company, detail in (
            ("internal", None, "internal (internal domain team-a.example)"),
            ("contact", "c1", "contact of company c1"),
            ("contact", None, "contact without a company"),
            ("company-domain", "gone", "domain old.example of company gone"),
            ("free-mail", None, "free-mail domain gmail.com and not a contact"),
            ("blocklisted", None, "blocklisted by spam.example"),
        )
    }
    assert said["internal"] == "one of your team's addresses (team-a.example)"
    assert said["contact"] == "a contact without a company"
    assert (
        said["company-domain"] == "not a contact yet, but at old.example, a domain of a company since deleted"
    )
    assert said["blocklisted"] == "on the blocklist as spam.example"
    assert participant_words({"outcome": "contact", "company": "c1"}, names) == "a contact at Acme"
