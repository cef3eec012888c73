"""Bulk sends through the outbox and the SMTP sink: filters choose the endusers, each gets one
personalised email with the one-click unsubscribe link, the unsubscribed and undeliverable and those
missing a field are skipped with the reason, one email to all, queueing again makes nothing twice,
and a spent sending budget makes the rest wait and the bulk send say when it continues."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from tests.outbound.bulk.conftest import MEMBER, Crowd
from tests.outbound.bulk.helpers import actor_for, deliver_all, emails_of, plan, progress, request, start
from touchline.db import session_scope
from touchline.models import BulkSend, BulkSkip, OutboundEmail
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

UNSUBSCRIBED = "user0@acme.example"
UNDELIVERABLE = "no-one@initech.invalid"
GOLD = (
    {f"user{i}@{name}.example" for name in ("acme", "initech") for i in range(6)} - {"user0@initech.example"}
) | {"jane@acme.example", UNDELIVERABLE}


def _outbound_count(crowd: Crowd) -> int:
    with session_scope(crowd.world.sessions) as session:
        return int(session.scalar(select(func.count()).select_from(OutboundEmail)) or 0)


def test_a_dry_run_counts_the_selected_names_the_skipped_and_queues_nothing(crowd: Crowd) -> None:
    planned = plan(crowd, request("company.custom.tier=gold"))
    assert planned.recipients == len(GOLD) == 13
    reasons = {skip.address: skip.reason for skip in planned.skipped}
    assert set(reasons) == {UNSUBSCRIBED, UNDELIVERABLE}
    assert reasons[UNSUBSCRIBED].startswith("unsubscribed on")
    assert reasons[UNDELIVERABLE].startswith("undeliverable:")
    assert planned.queued == 11
    assert {email.to[0].address for email in planned.emails} == GOLD - {UNSUBSCRIBED, UNDELIVERABLE}
    assert _outbound_count(crowd) == 0


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (("company.name=Globex",), {f"user{i}@globex.example" for i in range(6)}),
        (
            ("company.custom.seats>=50", "enduser.custom.role=champion"),
            {
                "user2@acme.example",
                "user4@acme.example",
                "user2@initech.example",
                "user4@initech.example",
                UNSUBSCRIBED,
                UNDELIVERABLE,
            },
        ),
        (("enduser.email~@umbrella",), {f"user{i}@umbrella.example" for i in range(6)}),
        (
            ("company.custom.tier!=gold", "company.custom.seats<10"),
            {f"user{i}@umbrella.example" for i in range(6)},
        ),
    ],
)
def test_filters_over_enduser_and_company_fields_select_the_right_endusers(
    crowd: Crowd, filters: tuple[str, ...], expected: set[str]
) -> None:
    planned = plan(crowd, request(*filters))
    chosen = {email.to[0].address for email in planned.emails} | {skip.address for skip in planned.skipped}
    assert chosen == expected
    assert planned.recipients == len(expected)


def test_each_enduser_gets_one_personalised_email_with_one_click_unsubscribe(crowd: Crowd) -> None:
    bulk_id = start(crowd, request("company.custom.tier=gold"))
    assert deliver_all(crowd, bulk_id) == {"sent": 11}
    received = crowd.world.sink.received
    assert len(received) == 11
    by_address = {message.recipients[0]: message for message in received}
    assert set(by_address) == GOLD - {UNSUBSCRIBED, UNDELIVERABLE}
    for address, message in by_address.items():
        assert list(message.recipients) == [address]
        assert message.message["List-Unsubscribe"].startswith("<http")
        assert message.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert MEMBER in str(message.message["From"])
    one = by_address["user3@initech.example"].part("text/html")
    assert "Hi Person3," in one
    assert "Initech is on the gold plan" in one
    assert by_address["user3@initech.example"].message["Subject"] == "Initech news"
    links = {message.message["List-Unsubscribe"] for message in received}
    assert len(links) == 11  # each enduser's own link

    rows = emails_of(crowd, bulk_id)
    assert {row.idempotency_key for row in rows} == {
        f"bulk:{bulk_id}:{crowd.contacts[address].hex}" for address in by_address
    }
    assert all(row.kind == "bulk" and row.template_name == "news" for row in rows)
    done = progress(crowd, bulk_id)
    assert (done.status, done.recipients, done.queued, done.skipped, done.sent) == ("queued", 13, 11, 2, 11)
    with session_scope(crowd.world.sessions) as session:
        skips = {skip.address: skip.reason for skip in session.scalars(select(BulkSkip))}
    assert set(skips) == {UNSUBSCRIBED, UNDELIVERABLE}


def test_a_missing_field_skips_that_enduser_only(crowd: Crowd) -> None:
    planned = plan(crowd, request("company.name=Globex"))
    [skip] = planned.skipped
    assert skip.address == "user0@globex.example"
    assert skip.reason == "missing field: enduser.first_name"
    bulk_id = start(crowd, request("company.name=Globex"))
    assert deliver_all(crowd, bulk_id) == {"sent": 5}
    assert "user0@globex.example" not in {m.recipients[0] for m in crowd.world.sink.received}


def test_one_email_to_all_goes_in_messages_of_at_most_a_hundred(crowd: Crowd) -> None:
    bulk_id = start(crowd, request("company.custom.tier=gold", template="announce", mode="one"))
    [row] = emails_of(crowd, bulk_id)
    assert {r.address for r in row.recipients} == GOLD - {UNSUBSCRIBED, UNDELIVERABLE}
    assert row.idempotency_key == f"bulk:{bulk_id}:chunk0"
    assert deliver_all(crowd, bulk_id) == {"sent": 1}
    [received] = crowd.world.sink.received
    assert set(received.recipients) == GOLD - {UNSUBSCRIBED, UNDELIVERABLE}
    assert received.message["List-Unsubscribe"] is None  # no single enduser's link fits all
    assert progress(crowd, bulk_id).sent == 11


def test_one_email_to_all_refuses_a_template_that_reads_enduser_fields(crowd: Crowd) -> None:
    with pytest.raises(bulk.BulkRefused, match="reads enduser fields"):
        plan(crowd, request(template="news", mode="one"))
    with (
        pytest.raises(bulk.BulkRefused, match="reads enduser fields"),
        session_scope(crowd.world.sessions) as session,
    ):
        bulk.start(
            session, actor_for(crowd), request(mode="one"), settings=crowd.world.settings, run_job=False
        )
    assert _outbound_count(crowd) == 0


def test_queueing_again_after_a_crash_makes_nothing_twice(crowd: Crowd) -> None:
    world = crowd.world
    bulk_id = start(crowd, request("company.custom.tier=gold"), queue_now=False)
    seen: list[tuple[int, int]] = []

    def crash_after_first_chunk(done: int, total: int) -> None:
        seen.append((done, total))
        if len(seen) == 2:
            raise KeyboardInterrupt  # the worker stops after committing one chunk

    with pytest.raises(KeyboardInterrupt):
        tasks.queue_bulk(
            world.sessions,
            world.box,
            world.settings,
            bulk_id,
            clock=world.clock,
            on_progress=crash_after_first_chunk,
            chunk_size=4,
        )
    assert seen == [(2, 13), (6, 13)]
    assert len(emails_of(crowd, bulk_id)) == 4
    assert progress(crowd, bulk_id).status == "queueing"

    assert (
        tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock, chunk_size=4)
        == "queued"
    )
    rows = emails_of(crowd, bulk_id)
    assert len(rows) == 11
    assert len({row.idempotency_key for row in rows}) == 11
    # and a job that runs once more does nothing
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    assert len(emails_of(crowd, bulk_id)) == 11
    with session_scope(world.sessions) as session:
        assert session.scalar(select(func.count()).select_from(BulkSkip)) == 2
    assert deliver_all(crowd, bulk_id) == {"sent": 11}
    assert len(world.sink.received) == 11


def test_a_bulk_send_whose_queueing_stopped_is_sent_to_the_queue_again(crowd: Crowd) -> None:
    world = crowd.world
    bulk_id = start(crowd, request("company.custom.tier=gold"), queue_now=False)  # its job was lost
    with session_scope(world.sessions) as session:
        stopped_at = session.get_one(BulkSend, bulk_id).updated_at
    with session_scope(world.sessions) as session:
        assert bulk.resume_stalled(session, stopped_at + bulk.STALLED_AFTER / 2) == []
    with session_scope(world.sessions) as session:
        assert bulk.resume_stalled(session, stopped_at + bulk.STALLED_AFTER * 2) == [bulk_id]
    with session_scope(world.sessions) as session:  # the job just sent is given its time
        assert bulk.resume_stalled(session, stopped_at + bulk.STALLED_AFTER * 2) == []
    assert tasks.queue_bulk(world.sessions, world.box, world.settings, bulk_id, clock=world.clock) == "queued"
    with session_scope(world.sessions) as session:
        assert bulk.resume_stalled(session, stopped_at + bulk.STALLED_AFTER * 10) == []
    assert len(emails_of(crowd, bulk_id)) == 11


def test_a_spent_budget_makes_the_rest_wait_and_the_bulk_says_when_it_continues(crowd: Crowd) -> None:
    world = crowd.world
    world.settings = world.settings.model_copy(update={"send_smtp_messages_per_day": 4})
    bulk_id = start(crowd, request("company.custom.tier=gold"))
    assert deliver_all(crowd, bulk_id) == {"sent": 4, "queued": 7}
    waiting = progress(crowd, bulk_id)
    assert (waiting.sent, waiting.waiting) == (4, 7)
    assert waiting.continues is not None
    assert waiting.continues.startswith("continues tomorrow at ")
    assert waiting.continues.endswith(" UTC")
    with session_scope(world.sessions) as session:  # said on the workspace's clock once it has a zone
        zone = workspace_service.SettingsChange(time_zone="Pacific/Kiritimati")  # UTC+14: a day ahead
        workspace_service.update_settings(session, Actor.operator(world.team.workspace_id), zone)
    ahead = progress(crowd, bulk_id).continues
    assert ahead is not None
    assert ahead.endswith(" Pacific/Kiritimati")
    with session_scope(world.sessions) as session:
        zone = workspace_service.SettingsChange(time_zone="UTC")
        workspace_service.update_settings(session, Actor.operator(world.team.workspace_id), zone)
    assert waiting.waiting_reason is not None
    assert "allows 4 messages a day" in waiting.waiting_reason

    world.clock.advance(days=1, seconds=1)
    assert deliver_all(crowd, bulk_id) == {"sent": 4, "queued": 3, "none": 4}
    world.clock.advance(days=1, seconds=1)
    deliver_all(crowd, bulk_id)
    done = progress(crowd, bulk_id)
    assert (done.sent, done.waiting, done.continues) == (11, 0, None)
    assert len(world.sink.received) == 11


def test_account_owner_sends_each_company_from_its_owner_and_skips_where_none_can(crowd: Crowd) -> None:
    planned = plan(crowd, request("company.custom.tier!=gold", sender="account-owner"))
    reasons = {skip.address: skip.reason for skip in planned.skipped}
    # Globex's owner (the admin) has no mailbox and no relay is set; Umbrella has no owner.
    assert {a for a in reasons if a.endswith("@globex.example")} == {
        f"user{i}@globex.example" for i in range(6)
    }
    assert "no mailbox touchline can send through" in reasons["user1@globex.example"]
    assert "has no account owner" in reasons["user1@umbrella.example"]
    assert planned.emails == []
    sent = plan(crowd, request("company.name=Initech", sender="account-owner"))
    assert {email.route.address for email in sent.emails} == {MEMBER}


def test_the_bulk_send_is_refused_as_a_whole_for_a_from_that_is_not_yours(crowd: Crowd) -> None:
    with pytest.raises(bulk.BulkRefused, match=r"admin@team-a\.example"):
        plan(crowd, request(sender="admin@team-a.example"))


def test_permissions_and_workspaces(crowd: Crowd, other_team: object) -> None:
    from touchline.kit.errors import NotFoundError, PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        plan(crowd, request(), actor=actor_for(crowd, "viewer@team-a.example"))
    bulk_id = start(crowd, request("company.name=Acme"))
    with session_scope(crowd.world.sessions) as session:
        other = session.get(BulkSend, bulk_id)
        assert other is not None
    from tests.conftest import Team
    from touchline.workspace import service
    from touchline.workspace.permissions import Actor

    assert isinstance(other_team, Team)
    with session_scope(crowd.world.sessions) as session:
        outsider = service.actor_for(
            service.find_user_by_email(
                session, Actor.operator(other_team.workspace_id), "admin@team-b.example"
            )
        )
    with pytest.raises(NotFoundError):
        progress(crowd, bulk_id, actor=outsider)
    assert progress(crowd, bulk_id, actor=actor_for(crowd, "admin@team-a.example")).recipients == 7
