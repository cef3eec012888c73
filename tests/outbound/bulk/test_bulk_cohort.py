"""A follow-up bulk send to an analytics cohort: exactly the recipients of a send-out who did not reply
(and whom the filters still select), in the dry run and when the queueing job makes the emails."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.outbound.bulk.conftest import MEMBER, Crowd
from tests.outbound.engagement.conftest import sent_email
from touchline.db import session_scope
from touchline.models import BulkSend, EmailEngagement, Template
from touchline.outbound.bulk import tasks


def _sent_news(crowd: Crowd, replied: dict[str, bool]) -> uuid.UUID:
    """The news template sent to these endusers, with whether each replied; returns the template id."""
    world = crowd.world
    with session_scope(world.sessions) as session:
        template_id = session.scalar(
            select(Template.id).where(
                Template.workspace_id == world.team.workspace_id, Template.name == "news"
            )
        )
    assert template_id is not None
    for address, reply in replied.items():
        outbound = sent_email(world.sessions, world.team, [address])
        with session_scope(world.sessions) as session:
            record = session.scalar(
                select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound)
            )
            assert record is not None
            record.template_id, record.template_name, record.reply_rate = (
                template_id,
                "news",
                100 if reply else 0,
            )
    return template_id


def test_a_follow_up_goes_to_exactly_the_cohort(client: TestClient, crowd: Crowd) -> None:
    world = crowd.world
    client.app.state.settings = world.settings  # type: ignore[attr-defined]
    template_id = _sent_news(
        crowd,
        {
            "user1@acme.example": True,
            "user2@acme.example": False,
            "user1@initech.example": False,
            "user1@globex.example": False,  # silver: the filter leaves them out
        },
    )
    headers = world.team.headers("member")
    body = {
        "from": MEMBER,
        "template": "news",
        "filters": ["company.custom.tier=gold"],
        "cohort": {"template": str(template_id), "outcome": "reply", "did": False},
    }
    dry = client.post("/api/v1/bulk-sends", json=body | {"dry_run": True}, headers=headers)
    assert dry.status_code == 200, dry.text
    assert (dry.json()["recipients"], dry.json()["queued"], dry.json()["skipped"]) == (2, 2, 0)

    started = client.post("/api/v1/bulk-sends", json=body, headers=headers)
    assert started.status_code == 202, started.text
    bulk_id = uuid.UUID(started.json()["bulk_id"])
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    with session_scope(world.sessions) as session:
        bulk = session.get(BulkSend, bulk_id)
        assert bulk is not None
        assert (bulk.recipients, bulk.queued) == (2, 2)
        # The cohort as it was when the follow-up started (the filters narrowed it to two).
        cohort = ("user2@acme.example", "user1@initech.example", "user1@globex.example")
        assert sorted(bulk.contact_ids or []) == sorted(str(crowd.contacts[address]) for address in cohort)
    # Without the cohort the same filters select every gold enduser.
    everyone = client.post(
        "/api/v1/bulk-sends", json=body | {"dry_run": True, "cohort": None}, headers=headers
    )
    assert everyone.json()["recipients"] == 13
