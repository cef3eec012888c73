"""The engagement rollup, on both databases: the groups it answers are the groups the records give
(any figures, any range, sender and visibility), it is current as soon as a refresh commits, the
migration fills it with what the records hold, two refreshes committing together neither deadlock nor
lose a count, and company and enduser groups count the emails in."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from random import Random
from typing import Any

import pytest
from alembic import command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

import touchline.outbound.engagement.tasks  # noqa: F401 -- declares the refresh job
from tests.conftest import Team
from tests.outbound.engagement.conftest import add_contact, add_event, sent_email
from touchline.db import session_scope
from touchline.inbound.store.service import touch_last
from touchline.models import (
    Email,
    EmailCompany,
    EmailContact,
    EmailEngagement,
    EngagementRollup,
    OutboundEmail,
    OutboundRecipient,
)
from touchline.outbound.analytics import rollup, rules
from touchline.outbound.analytics.service import AnalyticsFilter, Group, _rollup_keys, engagement_groups
from touchline.outbound.engagement import service as engagement
from touchline.outbound.engagement.repository import ensure_record
from touchline.schema import alembic_config, upgrade
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

TEMPLATES = [uuid.UUID(int=0xA1), uuid.UUID(int=0xB2), None]
SEQUENCES = [(uuid.UUID(int=0x51), 1), (uuid.UUID(int=0x51), 2), (None, None)]
VARIANTS = ["", "A", "B"]
FIRST_DAY = datetime(2026, 1, 25, tzinfo=UTC)
RATES = st.sampled_from([None, 0, 100])
ROUNDS = 7


def _sent(session: Session, team: Team, by: uuid.UUID, sent_at: datetime, draw: Random) -> uuid.UUID:
    """A sent email with its record, from a drawn template, sequence step and variant."""
    template = draw.choice(TEMPLATES)
    sequence, step = draw.choice(SEQUENCES)
    row = OutboundEmail(
        workspace_id=team.workspace_id,
        created_by=by,
        sender_choice="member@team-a.example",
        sender_user_id=by,
        from_address="member@team-a.example",
        via="relay",
        subject="Renewal",
        html_body="<p>hi</p>",
        text_body="hi",
        idempotency_key=uuid.uuid4().hex,
        message_id=f"<{uuid.uuid4().hex}@team-a.example>",
        status="sent",
        sent_at=sent_at,
        track_opens=True,
        track_clicks=True,
        template_id=template,
        template_name=None if template is None else f"Template {template.int:x}",
        sequence_id=sequence,
        sequence_step=step,
        variant=draw.choice(VARIANTS),
    )
    row.recipients.append(
        OutboundRecipient(workspace_id=team.workspace_id, position=0, kind="to", address="ana@globex.example")
    )
    session.add(row)
    session.flush()
    ensure_record(session, row, sent_at)
    return row.id


@pytest.fixture
def records(sessions: sessionmaker[Session], team: Team) -> list[uuid.UUID]:
    """24 records spread over 2026-01-25..2026-04-15 (parts of four months), by the admin and the
    member, from every template, step and variant."""
    draw = Random(14)
    with session_scope(sessions) as session:
        return [
            _sent(
                session,
                team,
                draw.choice([team.admin_id, team.member_id]),
                FIRST_DAY + timedelta(days=draw.randrange(80), hours=draw.randrange(24)),
                draw,
            )
            for _ in range(24)
        ]


def _actors(sessions: sessionmaker[Session], team: Team) -> dict[str, Actor]:
    with session_scope(sessions) as session:
        member = workspace_service.actor_for(
            workspace_service.get_user(session, Actor.operator(team.workspace_id), team.member_id)
        )
    return {"admin": Actor.operator(team.workspace_id), "member": member}


def _shown(groups: list[Group]) -> list[tuple[Any, ...]]:
    return [(g.key, g.label, g.counts, g.rates, g.last_sent_at) for g in groups]


figures = st.tuples(RATES, RATES, RATES, RATES, st.sampled_from([0, 100]), st.booleans())
days = st.one_of(st.none(), st.dates(min_value=date(2026, 1, 20), max_value=date(2026, 4, 20)))


@st.composite
def questions(draw: st.DrawFn) -> tuple[str, str, AnalyticsFilter]:
    by = draw(st.sampled_from(rollup.GROUPINGS))
    start, end = draw(days), draw(days)
    if start is not None and end is not None and end < start:
        start, end = end, start
    own: dict[str, Any] = {}
    if by == "template":
        own = {"template": draw(st.sampled_from([None, *TEMPLATES[:2]]))}
    elif by == "step":
        own = {
            "sequence": draw(st.sampled_from([None, SEQUENCES[0][0]])),
            "step": draw(st.sampled_from([None, 1])),
        }
    elif by == "variant":
        own = {"variant": draw(st.sampled_from([None, *VARIANTS]))}
    return (
        draw(st.sampled_from(["admin", "member"])),
        by,
        AnalyticsFilter(start=start, end=end, **own),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(figures, min_size=24, max_size=24), asked=st.lists(questions(), min_size=3, max_size=3)
)
def test_the_rollup_gives_the_groups_the_records_give(
    sessions: sessionmaker[Session],
    team: Team,
    records: list[uuid.UUID],
    changes: list[tuple[int | None, int | None, int | None, int | None, int, bool]],
    asked: list[tuple[str, str, AnalyticsFilter]],
) -> None:
    # The figures change as a refresh changes them: on the records, in one transaction.
    with session_scope(sessions) as session:
        for outbound_id, (opened, human_open, clicked, human_click, replied, bounced) in zip(
            records, changes, strict=True
        ):
            record = session.scalars(
                select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound_id)
            ).one()
            record.open_rate, record.human_open_rate = opened, human_open
            record.click_rate, record.human_click_rate = clicked, human_click
            record.reply_rate, record.bounce = replied, "hard" if bounced else None
    actors = _actors(sessions, team)
    for who, by, question in asked:
        with session_scope(sessions) as session:
            exact = engagement_groups(session, actors[who], by, question, exact=True)
            rolled = engagement_groups(session, actors[who], by, question)
        assert _shown(rolled) == _shown(exact), (who, by, question)
    # The sender filter, with both senders.
    for sender in (team.admin_id, team.member_id):
        with session_scope(sessions) as session:
            question = AnalyticsFilter(start=date(2026, 2, 3), end=date(2026, 3, 31), sender=sender)
            assert _shown(engagement_groups(session, actors["admin"], "week", question)) == _shown(
                engagement_groups(session, actors["admin"], "week", question, exact=True)
            )


def test_the_rollup_answers_only_what_it_holds(sessions: sessionmaker[Session], team: Team) -> None:
    """Filters on another dimension, a bulk send or enduser fields are read from the records."""
    actor = Actor.operator(team.workspace_id)
    with session_scope(sessions) as session:
        assert _rollup_keys(session, actor, "template", AnalyticsFilter(template=TEMPLATES[0])) == {
            "key_id": TEMPLATES[0]
        }
        assert _rollup_keys(session, actor, "week", AnalyticsFilter(template=TEMPLATES[0])) is None
        assert _rollup_keys(session, actor, "template", AnalyticsFilter(bulk_id=uuid.uuid4())) is None
        assert _rollup_keys(session, actor, "template", AnalyticsFilter(where=("plan = gold",))) is None
        assert _rollup_keys(session, actor, "company", AnalyticsFilter()) is None
        assert _rollup_keys(session, actor, "week", AnalyticsFilter(sender=uuid.uuid4())) is None


@settings(max_examples=300, deadline=None)
@given(start=days, end=days)
def test_a_span_covers_each_day_of_the_range_once(start: date | None, end: date | None) -> None:
    low, high = start or date(2025, 11, 1), end or date(2026, 7, 31)  # unbounded: the whole test range
    plan = rules.span(start, end)
    covered: list[date] = []
    if plan.months is not None:
        month = plan.months[0] or date(2025, 11, 1)
        while month <= (plan.months[1] or date(2026, 7, 1)):
            after = rules._next_month(month)
            covered.extend(month + timedelta(days=n) for n in range((after - month).days))
            month = after
    for first, last in plan.days:
        day = first or low
        while day <= (last or high):
            covered.append(day)
            day += timedelta(days=1)
    wanted = [low + timedelta(days=n) for n in range((high - low).days + 1)]
    assert sorted(covered) == wanted


def test_an_event_shows_in_the_analytics_when_its_refresh_commits(
    sessions: sessionmaker[Session], team: Team
) -> None:
    add_contact(sessions, team, "ana@globex.example", company="Globex")
    outbound = sent_email(sessions, team, ["ana@globex.example"])
    admin = Actor.operator(team.workspace_id)
    with session_scope(sessions) as session:
        (before,) = engagement_groups(session, admin, "week")
    add_event(sessions, team, outbound, "reply", timedelta(hours=1))
    with session_scope(sessions) as session:
        engagement.refresh(session, [outbound])
        # Read in the refreshing session too: it sees what it is about to commit.
        (inside,) = engagement_groups(session, admin, "week")
    with session_scope(sessions) as session:
        (after,) = engagement_groups(session, admin, "week")
    assert (before.counts.sent, before.counts.replied) == (1, 0)
    assert inside.counts == after.counts
    assert (after.counts.sent, after.counts.replied) == (1, 1)


def test_a_rolled_back_change_leaves_the_rollup_alone(
    sessions: sessionmaker[Session], team: Team, records: list[uuid.UUID]
) -> None:
    admin = Actor.operator(team.workspace_id)
    with session_scope(sessions) as session:
        before = _shown(engagement_groups(session, admin, "template"))
    with session_scope(sessions) as session:  # a savepoint rolled back, the transaction committed
        savepoint = session.begin_nested()
        for record in session.scalars(select(EmailEngagement)):
            record.reply_rate = 100
        session.flush()
        savepoint.rollback()
    session = sessions()  # a transaction rolled back
    for record in session.scalars(select(EmailEngagement)):
        record.reply_rate = 100
    session.flush()
    session.rollback()
    session.close()
    with session_scope(sessions) as session:
        assert _shown(engagement_groups(session, admin, "template")) == before
        assert _shown(engagement_groups(session, admin, "template", exact=True)) == before


def _rollup_rows(sessions: sessionmaker[Session]) -> list[tuple[Any, ...]]:
    with session_scope(sessions) as session:
        rows = session.execute(select(*EngagementRollup.__table__.c).where(EngagementRollup.sent > 0))
        return sorted(tuple(str(value) for value in row) for row in rows)


def test_the_migration_fills_the_rollup_from_the_records(
    sessions: sessionmaker[Session], engine: Engine, database_url: str, records: list[uuid.UUID]
) -> None:
    with session_scope(sessions) as session:
        for n, record in enumerate(session.scalars(select(EmailEngagement).order_by(EmailEngagement.id))):
            record.open_rate, record.reply_rate = (100, 100) if n % 3 == 0 else (0, 0)
            record.human_open_rate = None if n % 2 else 100
            record.bounce = "soft" if n % 5 == 0 else None
    kept = _rollup_rows(sessions)
    engine.dispose()
    command.downgrade(alembic_config(database_url), "analytics0000001")
    upgrade(database_url)
    assert _rollup_rows(sessions) == kept
    assert len(kept) > 24


def test_two_refreshes_committing_together_neither_deadlock_nor_lose_counts(
    sessions: sessionmaker[Session], engine: Engine, team: Team, records: list[uuid.UUID]
) -> None:
    """Both refreshes touch rollup rows the other touches (the records share days, months and
    templates). On PostgreSQL both have changed their records when they commit at once, so their
    upserts meet; SQLite lets one writer in at a time, so there they only start at once."""
    halves = [records[::2], records[1::2]]
    for outbound in records:
        add_event(sessions, team, outbound, "reply", timedelta(hours=1))
    start = threading.Barrier(2, timeout=30)
    both_refreshed = threading.Barrier(2, timeout=30) if engine.dialect.name == "postgresql" else None
    failures: list[BaseException] = []

    def refresh(ids: list[uuid.UUID]) -> None:
        try:
            start.wait()
            with session_scope(sessions) as session:
                engagement.refresh(session, list(reversed(ids)))
                if both_refreshed is not None:
                    both_refreshed.wait()
            # More rounds of changed figures committing at once: more chances to meet in the rows.
            for round_ in range(ROUNDS):
                with session_scope(sessions) as session:
                    for record in session.scalars(
                        select(EmailEngagement).where(EmailEngagement.outbound_email_id.in_(ids))
                    ):
                        record.bounce = "soft" if round_ % 2 == 0 else None
                    session.flush()
                    if both_refreshed is not None:
                        both_refreshed.wait()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=refresh, args=(half,)) for half in halves]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a refresh hung"
    assert failures == []
    admin = Actor.operator(team.workspace_id)
    with session_scope(sessions) as session:
        rolled = engagement_groups(session, admin, "template")
        exact = engagement_groups(session, admin, "template", exact=True)
    assert _shown(rolled) == _shown(exact)
    assert sum(group.counts.replied for group in rolled) == len(records)


def test_company_and_enduser_groups_give_the_last_touch_and_the_emails_in_and_out(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example", company="Globex")
    sent_email(sessions, team, ["ana@globex.example"], sent_at=datetime(2026, 3, 2, 9, tzinfo=UTC))
    with session_scope(sessions) as session:
        contact_company = workspace_service.find_company(session, Actor.operator(team.workspace_id), "Globex")
        assert contact_company is not None
        for n, (sender, day) in enumerate(
            [
                ("ana@globex.example", datetime(2026, 3, 3, tzinfo=UTC)),
                ("ana@globex.example", datetime(2026, 3, 9, tzinfo=UTC)),
                ("ana@globex.example", datetime(2026, 1, 9, tzinfo=UTC)),  # before the range
                ("member@team-a.example", datetime(2026, 3, 4, tzinfo=UTC)),  # from the team: out
                ("Admin@Team-A.example", datetime(2026, 1, 20, tzinfo=UTC)),  # out, before the range
                ("", datetime(2026, 3, 5, tzinfo=UTC)),  # no From: neither in nor out
            ]
        ):
            email = Email(
                workspace_id=team.workspace_id,
                dedup_key=f"in-{n}",
                message_id=f"in-{n}@globex.example",
                sent_at=day,
                from_address=sender,
                source="sync",
            )
            session.add(email)
            session.flush()
            session.add_all(
                [
                    EmailCompany(email_id=email.id, company_id=contact_company.id),
                    EmailContact(email_id=email.id, contact_id=ana.contact_id),
                ]
            )
            # As storing a synced email does: Last Touch moves forward, never back.
            touch_last(session, [contact_company.id], [ana.contact_id], day)
        # The outbox files the email under its first enduser's company.
        for record in session.scalars(select(EmailEngagement)):
            record.company_id = contact_company.id
    admin = Actor.operator(team.workspace_id)
    march = AnalyticsFilter(start=date(2026, 3, 1), end=date(2026, 3, 31))
    with session_scope(sessions) as session:
        (by_company,) = engagement_groups(session, admin, "company", march)
        (by_enduser,) = engagement_groups(session, admin, "enduser", march)
        (by_template,) = engagement_groups(session, admin, "template", march)
        (everything,) = engagement_groups(session, admin, "company")
    assert (by_company.label, by_company.counts.sent, by_company.emails_in, by_company.emails_out) == (
        "Globex",
        1,
        2,
        1,
    )
    assert (by_enduser.label, by_enduser.counts.sent, by_enduser.emails_in, by_enduser.emails_out) == (
        "ana@globex.example",
        1,
        2,
        1,
    )
    assert (everything.emails_in, everything.emails_out) == (3, 2)
    last_touch = datetime(2026, 3, 9, tzinfo=UTC)  # the latest email, whatever the range
    assert by_company.last_touch_at == by_enduser.last_touch_at == everything.last_touch_at == last_touch
    assert (by_template.emails_in, by_template.emails_out, by_template.last_touch_at) == (None, None, None)
