"""Bulk and sequence emails in the outbox: they carry the one-click unsubscribe link and are never made
for an enduser who used it; personal emails and replies do neither."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from tests.outbound.send.conftest import World
from touchline.db import session_scope
from touchline.models import Contact
from touchline.outbound.send import service as outbox
from touchline.outbound.unsubscribe.service import unsubscribe_url
from touchline.workspace import service
from touchline.workspace.permissions import Actor

MEMBER = "member@team-a.example"


def _send(world: World, draft: outbox.Draft) -> uuid.UUID:
    with session_scope(world.sessions) as session:
        operator = Actor.operator(world.team.workspace_id)
        member = service.actor_for(service.find_user_by_email(session, operator, MEMBER))
        return outbox.send_email(session, member, draft, settings=world.settings, now=world.clock.now).id


def _link(world: World) -> str:
    with session_scope(world.sessions) as session:
        contact = session.scalars(select(Contact).where(Contact.email == world.contact)).one()
        return unsubscribe_url("https://touchline.example", world.box, contact.workspace_id, contact.id)


def _draft(world: World, kind: outbox.SendKind, link: str | None) -> outbox.Draft:
    return outbox.Draft(
        sender=MEMBER,
        to=[outbox.Recipient(world.contact)],
        subject="News",
        html="<p>News</p>",
        kind=kind,
        unsubscribe_url=link,
        bulk_id=uuid.uuid4() if kind == "bulk" else None,
    )


def test_a_bulk_email_carries_one_click_unsubscribe(world: World) -> None:
    link = _link(world)
    sent = _send(world, _draft(world, "bulk", link))
    assert world.deliver(sent) == "sent"
    [received] = world.sink.received
    assert received.message["List-Unsubscribe"] == f"<{link}>"
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert world.outbound(sent).kind == "bulk"


def test_a_personal_email_carries_no_unsubscribe_link(world: World) -> None:
    sent = _send(world, _draft(world, "personal", _link(world)))
    assert world.deliver(sent) == "sent"
    [received] = world.sink.received
    assert received.message["List-Unsubscribe"] is None


@pytest.mark.parametrize("kind", ["bulk", "sequence"])
def test_an_unsubscribed_enduser_is_skipped_by_mass_mail_only(world: World, kind: outbox.SendKind) -> None:
    with session_scope(world.sessions) as session:
        contact = session.scalars(select(Contact).where(Contact.email == world.contact)).one()
        contact.unsubscribed_at = world.clock.now
    with pytest.raises(outbox.Skipped, match="unsubscribed on"):
        _send(world, _draft(world, kind, _link(world)))
    assert _send(world, _draft(world, "personal", None))


def test_a_mass_email_without_its_link_is_refused(world: World) -> None:
    with pytest.raises(outbox.SendRefused, match="unsubscribe link"):
        _send(world, _draft(world, "bulk", None))
