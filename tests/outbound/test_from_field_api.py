"""SPEC §5 through the JSON API: the public account switch, the From choices and the From check."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.sending_team import SendingTeam, connect, make_sending_team, store_conversation
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import AuditEntry, Mailbox, User
from touchline.outbound.from_field import service as from_field
from touchline.workspace import service
from touchline.workspace.permissions import Actor


@pytest.fixture
def crew(sessions: sessionmaker[Session], box: SecretBox, team: Team) -> SendingTeam:
    return make_sending_team(sessions, box, team)


def _choices(client: TestClient, crew: SendingTeam, who: str, **query: object) -> list[dict[str, object]]:
    response = client.get("/api/v1/compose/from-choices", params=query, headers=crew.headers(who))
    assert response.status_code == 200, response.text
    choices: list[dict[str, object]] = response.json()["choices"]
    return choices


def _keys(choices: list[dict[str, object]]) -> list[object]:
    return [choice["key"] for choice in choices]


def _check(client: TestClient, crew: SendingTeam, who: str, sender: str, **body: object) -> dict[str, object]:
    response = client.post(
        "/api/v1/compose/check-from", json={"from": sender, **body}, headers=crew.headers(who)
    )
    assert response.status_code == 200, response.text
    decision: dict[str, object] = response.json()
    return decision


def _public(client: TestClient, crew: SendingTeam, who: str) -> dict[str, object]:
    state: dict[str, object] = client.get("/api/v1/profile/public-account", headers=crew.headers(who)).json()
    return state


def test_switching_on_needs_a_mailbox_and_the_permission(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session], box: SecretBox
) -> None:
    member = crew.team
    no_mailbox = client.put(
        "/api/v1/profile/public-account", json={"public": True}, headers=member.headers("member")
    )
    assert no_mailbox.status_code == 409
    assert "Connect your mailbox first" in no_mailbox.json()["detail"]
    state = _public(client, crew, "member")
    assert state["may_switch_on"] is False
    assert "Connect your mailbox" in str(state["why_not"])

    viewer = client.put(
        "/api/v1/profile/public-account", json={"public": True}, headers=member.headers("viewer")
    )
    assert viewer.status_code == 403
    assert "Email on my behalf" in viewer.json()["detail"]

    with session_scope(sessions) as session:
        connect(session, box, member.workspace_id, member.member_id, "member@team-a.example")
    switched = client.put(
        "/api/v1/profile/public-account", json={"public": True}, headers=member.headers("member")
    )
    assert switched.status_code == 200, switched.text
    assert switched.json()["public"] is True
    assert switched.json()["address"] == "member@team-a.example"
    assert "member@team-a.example" in _keys(_choices(client, crew, "bob"))
    with session_scope(sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.public_account_usage")
        ).one()
        assert entry.actor_user_id == member.member_id
        assert entry.details == {"public": True}


def test_only_the_user_themself_switches_it_admins_included(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session]
) -> None:
    admin = crew.team.headers("admin")
    for public in (True, False):
        refused = client.put(
            f"/api/v1/users/{crew.bob_id}/public-account", json={"public": public}, headers=admin
        )
        assert refused.status_code == 403
        assert "admins included" in refused.json()["detail"]
    off = client.put(f"/api/v1/users/{crew.success_id}/public-account", json={"public": False}, headers=admin)
    assert off.status_code == 403
    own = client.put(
        f"/api/v1/users/{crew.bob_id}/public-account", json={"public": True}, headers=crew.headers("bob")
    )
    assert own.status_code == 200
    assert own.json()["public"] is True
    with session_scope(sessions) as session:
        success = session.get(User, crew.success_id)
        assert success is not None
        assert success.public_account_usage


def test_from_choices_own_address_public_addresses_and_account_owner(
    client: TestClient, crew: SendingTeam
) -> None:
    new_email = _choices(client, crew, "bob")
    assert _keys(new_email) == ["bob@team-a.example", "success@team-a.example"]
    assert [choice["kind"] for choice in new_email] == ["own", "public"]
    assert new_email[1]["label"] == "Success Team <success@team-a.example>"

    for_company = _choices(client, crew, "bob", company_id=str(crew.company_id))
    assert _keys(for_company) == ["account-owner", "bob@team-a.example", "success@team-a.example"]
    assert for_company[0]["label"] == "Account Owner"
    # success@ sees its own address once, as its own.
    assert _keys(_choices(client, crew, "success")) == ["success@team-a.example"]


def test_a_new_email_may_come_from_any_public_address(client: TestClient, crew: SendingTeam) -> None:
    decision = _check(client, crew, "bob", "Success@Team-A.example")
    assert decision["allowed"] is True
    assert decision["choice"] == {
        "kind": "public",
        "key": "success@team-a.example",
        "label": "Success Team <success@team-a.example>",
        "user_id": str(crew.success_id),
    }
    assert _check(client, crew, "bob", "account-owner", company_id=str(crew.company_id))["allowed"] is True
    assert _check(client, crew, "bob", "account-owner")["allowed"] is False


def test_another_users_private_address_is_refused(client: TestClient, crew: SendingTeam) -> None:
    decision = _check(client, crew, "success", "bob@team-a.example")
    assert decision["allowed"] is False
    assert "another user's private address" in str(decision["reason"])
    assert "bob@team-a.example" not in _keys(_choices(client, crew, "success"))
    unknown = _check(client, crew, "bob", "someone@elsewhere.example")
    assert unknown["allowed"] is False
    assert "not the address of a user" in str(unknown["reason"])


def test_a_reply_comes_from_a_public_address_only_when_it_is_in_the_conversation(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session]
) -> None:
    workspace = crew.team.workspace_id
    with_success = store_conversation(
        sessions, workspace, "a", ["bob@team-a.example", "success@team-a.example"]
    )
    without_success = store_conversation(sessions, workspace, "b", ["bob@team-a.example"])

    assert _keys(_choices(client, crew, "bob", reply_to=str(with_success))) == [
        "bob@team-a.example",
        "success@team-a.example",
    ]
    assert (
        _check(client, crew, "bob", "success@team-a.example", reply_to=str(with_success))["allowed"] is True
    )

    assert _keys(_choices(client, crew, "bob", reply_to=str(without_success))) == ["bob@team-a.example"]
    refused = _check(client, crew, "bob", "success@team-a.example", reply_to=str(without_success))
    assert refused["allowed"] is False
    assert "Forward the email to success@team-a.example first" in str(refused["reason"])
    # Account Owner never answers a conversation; one's own address always may.
    assert (
        _check(
            client, crew, "bob", "account-owner", reply_to=str(with_success), company_id=str(crew.company_id)
        )["allowed"]
        is False
    )
    assert _check(client, crew, "bob", "bob@team-a.example", reply_to=str(without_success))["allowed"] is True


def test_a_disconnected_mailbox_makes_the_address_private(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.user_id == crew.success_id)).one()
    assert (
        client.delete(f"/api/v1/mailboxes/{mailbox_id}", headers=crew.headers("success")).status_code == 204
    )
    state = _public(client, crew, "success")
    assert state["switched_on"] is False
    assert state["public"] is False
    assert "success@team-a.example" not in _keys(_choices(client, crew, "bob"))
    refused = _check(client, crew, "bob", "success@team-a.example")
    assert refused["allowed"] is False
    assert "private address" in str(refused["reason"])
    with session_scope(sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "user.public_account_usage", AuditEntry.target_id == str(crew.success_id)
            )
        ).one()
        assert entry.details == {"public": False, "because": "mailbox disconnected"}


def test_losing_the_permission_makes_the_address_private(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session]
) -> None:
    admin = crew.team.headers("admin")
    role = client.post(
        "/api/v1/roles",
        json={"name": "Shared inbox", "permissions": ["view_customers", "email_sync", "email_on_my_behalf"]},
        headers=admin,
    ).json()
    for who, user_id in (("success", crew.success_id), ("bob", crew.bob_id)):
        moved = client.patch(f"/api/v1/users/{user_id}", json={"role_id": role["id"]}, headers=admin)
        assert moved.status_code == 200, moved.text
        assert _public(client, crew, who)["switched_on"] is (who == "success")
    assert client.put(
        "/api/v1/profile/public-account", json={"public": True}, headers=crew.headers("bob")
    ).json()["public"]

    changed = client.patch(
        f"/api/v1/roles/{role['id']}", json={"permissions": ["view_customers", "email_sync"]}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    for who in ("success", "bob"):
        assert _public(client, crew, who)["switched_on"] is False
    member_choices = _choices(client, crew, "member")
    assert _keys(member_choices) == ["member@team-a.example"]


def test_moving_a_user_to_a_role_without_the_permission_makes_the_address_private(
    client: TestClient, crew: SendingTeam
) -> None:
    admin = crew.team.headers("admin")
    viewer_role = next(
        role for role in client.get("/api/v1/roles", headers=admin).json() if role["name"] == "Viewer"
    )
    assert (
        client.patch(
            f"/api/v1/users/{crew.success_id}", json={"role_id": viewer_role["id"]}, headers=admin
        ).status_code
        == 200
    )
    assert "success@team-a.example" not in _keys(_choices(client, crew, "bob"))
    assert _public(client, crew, "success")["switched_on"] is False


def test_composing_needs_send_email_and_stays_in_the_workspace(
    client: TestClient, crew: SendingTeam, other_team: Team, sessions: sessionmaker[Session]
) -> None:
    viewer = crew.team.headers("viewer")
    assert client.get("/api/v1/compose/from-choices", headers=viewer).status_code == 403
    assert (
        client.post(
            "/api/v1/compose/check-from", json={"from": "success@team-a.example"}, headers=viewer
        ).status_code
        == 403
    )
    foreign_email = store_conversation(sessions, other_team.workspace_id, "x", ["member@team-b.example"])
    bob = crew.headers("bob")
    assert (
        client.get(
            "/api/v1/compose/from-choices", params={"reply_to": str(foreign_email)}, headers=bob
        ).status_code
        == 404
    )
    other_company = client.post(
        "/api/v1/companies", json={"name": "Initech"}, headers=other_team.headers("admin")
    ).json()["id"]
    assert (
        client.get(
            "/api/v1/compose/from-choices", params={"company_id": other_company}, headers=bob
        ).status_code
        == 404
    )
    # Another workspace's public address is nobody's here.
    assert _check(client, crew, "bob", "member@team-b.example")["allowed"] is False


def test_a_scheduled_email_whose_sender_went_private_falls_back_to_account_owner(
    client: TestClient, crew: SendingTeam, sessions: sessionmaker[Session]
) -> None:
    with session_scope(sessions) as session:
        bob = service.actor_for(
            service.get_user(session, Actor.operator(crew.team.workspace_id), crew.bob_id)
        )
        kept = from_field.sender_after_edit(session, bob, "success@team-a.example")
        assert not kept.changed
        assert kept.sender.key == "success@team-a.example"
    assert (
        client.put(
            "/api/v1/profile/public-account", json={"public": False}, headers=crew.headers("success")
        ).status_code
        == 200
    )
    with session_scope(sessions) as session:
        moved = from_field.sender_after_edit(session, bob, "success@team-a.example")
        assert moved.changed
        assert moved.sender.key == "account-owner"
        assert "will now be sent from Account Owner" in str(moved.notice)
        assert not from_field.sender_after_edit(session, bob, "bob@team-a.example").changed
