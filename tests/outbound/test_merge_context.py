"""The merge context read from the database: a contact, its company and the sender, with custom values
typed as their fields say, so that templates and recipient filters compare them as numbers and dates."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from touchline.db import session_scope
from touchline.kit.errors import NotFoundError
from touchline.models import User
from touchline.outbound import repository
from touchline.outbound.compose.filters import matches_all, parse_filters
from touchline.outbound.compose.templates import EmailTemplate, RenderedEmail, compile_template, render
from touchline.workspace import importing
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

COMPANIES = b"""name,domains,account_owner,Renewal Date,Seats,Tier,ARR
Acme,acme.example,member@team-a.example,2027-01-31,25,gold,1200.50
Globex,globex.example,,2026-06-30,9,silver,80
"""
CONTACTS = b"""email,name,company,Plan,Score
jane@acme.example,Jane van Dijk,Acme,pro,7
bob@globex.example,Bob,Globex,,12
solo@elsewhere.example,,,free,
"""


def _admin(sessions: sessionmaker[Session], team: Team) -> Actor:
    with session_scope(sessions) as session:
        user = session.get(User, team.admin_id)
        assert user is not None
        return workspace_service.actor_for(user)


@pytest.fixture
def imported(sessions: sessionmaker[Session], team: Team) -> dict[str, uuid.UUID]:
    actor = _admin(sessions, team)
    with session_scope(sessions) as session:
        workspace_service.update_user(
            session, Actor.operator(team.workspace_id), team.admin_id, name="Sam Admin"
        )
        assert importing.import_companies(session, actor, COMPANIES).errors == []
        assert importing.import_contacts(session, actor, CONTACTS).errors == []
        return {
            email: contact.id
            for email in ("jane@acme.example", "bob@globex.example", "solo@elsewhere.example")
            if (contact := workspace_service.find_contact_by_email(session, actor, email)) is not None
        }


def test_a_contact_context_carries_typed_custom_values(
    sessions: sessionmaker[Session], team: Team, imported: dict[str, uuid.UUID]
) -> None:
    actor = _admin(sessions, team)
    with session_scope(sessions) as session:
        context = repository.merge_context(session, actor, imported["jane@acme.example"], team.admin_id)
    assert (context.enduser.email, context.enduser.first_name, context.enduser.last_name) == (
        "jane@acme.example",
        "Jane",
        "van Dijk",
    )
    assert context.enduser.custom == {"plan": "pro", "score": 7}
    assert context.company is not None
    assert (context.company.name, context.company.domain, context.company.owner_email) == (
        "Acme",
        "acme.example",
        "member@team-a.example",
    )
    assert context.company.custom == {
        "renewal_date": date(2027, 1, 31),
        "seats": 25,
        "tier": "gold",
        "arr": Decimal("1200.5"),
    }
    assert (context.sender.name, context.sender.email) == ("Sam Admin", "admin@team-a.example")


def test_templates_and_filters_read_the_typed_values(
    sessions: sessionmaker[Session], team: Team, imported: dict[str, uuid.UUID]
) -> None:
    actor = _admin(sessions, team)
    sender = team.admin_id
    with session_scope(sessions) as session:
        user = workspace_service.get_user(session, actor, sender)
        contexts = repository.merge_contexts(session, actor, list(imported.values()), user)
    by_email = {context.enduser.email: context for context in contexts.values()}
    assert set(by_email) == set(imported)

    # Numbers compare as numbers (9 < 10 although "9" > "10" as text), dates as dates.
    filters = parse_filters(["company.custom.seats>10", "company.custom.renewal_date<2027-06-01"])
    chosen = {email for email, context in by_email.items() if matches_all(filters, context)}
    assert chosen == {"jane@acme.example"}
    assert {
        email
        for email, context in by_email.items()
        if matches_all(parse_filters(["enduser.custom.score>=8"]), context)
    } == {"bob@globex.example"}

    template = compile_template(
        EmailTemplate(
            subject="Renewal on {{ company.custom.renewal_date }}",
            text="Hi {{ enduser.first_name }}, {{ company.custom.seats }} seats, "
            "plan {{ enduser.custom.plan }}.",
        )
    )
    rendered = render(template, by_email["jane@acme.example"])
    assert isinstance(rendered, RenderedEmail), rendered
    assert rendered.subject == "Renewal on 2027-01-31"
    assert rendered.text.startswith("Hi Jane, 25 seats, plan pro.")
    # Bob's plan cell was empty: the field is missing, and he is not sent a half-rendered email.
    refused = render(template, by_email["bob@globex.example"])
    assert not isinstance(refused, RenderedEmail)
    assert refused.missing_fields == ("enduser.custom.plan",)
    # A contact without a company has no company fields.
    assert by_email["solo@elsewhere.example"].company is None


def test_contexts_stay_inside_the_workspace(
    sessions: sessionmaker[Session], team: Team, other_team: Team, imported: dict[str, uuid.UUID]
) -> None:
    with session_scope(sessions) as session:
        stranger = workspace_service.actor_for(
            workspace_service.get_user(session, _admin(sessions, other_team), other_team.admin_id)
        )
        with pytest.raises(NotFoundError):
            repository.merge_context(session, stranger, imported["jane@acme.example"], other_team.admin_id)
        user = workspace_service.get_user(session, stranger, other_team.admin_id)
        assert repository.merge_contexts(session, stranger, list(imported.values()), user) == {}
