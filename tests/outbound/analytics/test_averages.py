"""Average rates over Email Engagement records against hand-computed figures, on both databases: null
rates left out of the average (not counted as 0), human-only rates beside the raw ones, outcomes
credited to the first enduser in To, groups by template, enduser, week, and the filters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import touchline.outbound.engagement.tasks  # noqa: F401 -- declares the refresh job
from tests.conftest import Team
from tests.outbound.engagement.conftest import add_contact, add_event, link_ids, sent_email
from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError
from touchline.models import Contact, EmailEngagement
from touchline.outbound.analytics import rules
from touchline.outbound.analytics.service import AnalyticsFilter, Group, engagement_groups
from touchline.outbound.engagement import REFRESH_JOB
from touchline.outbound.engagement import service as engagement
from touchline.worker import current_queue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor

TEMPLATE_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
TEMPLATE_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

Rate = int | None


@dataclass(frozen=True)
class Figures:
    open_rate: Rate
    human_open_rate: Rate
    click_rate: Rate
    human_click_rate: Rate
    reply_rate: int
    bounce: str | None = None


# Template A: opened by a person and clicked and replied; opened only by a proxy; tracking off; not
# opened and hard-bounced. Template B: tracking off (the admin's send).
FIXTURE: list[tuple[str, uuid.UUID, datetime, Figures]] = [
    ("a", TEMPLATE_A, MONDAY, Figures(100, 100, 100, 100, 100)),
    ("b", TEMPLATE_A, MONDAY + timedelta(hours=1), Figures(100, None, 0, 0, 0)),
    ("c", TEMPLATE_A, datetime(2026, 12, 6, 23, 30, tzinfo=UTC), Figures(None, None, None, None, 0)),
    ("d", TEMPLATE_A, datetime(2026, 12, 7, 0, 30, tzinfo=UTC), Figures(0, 0, 0, 0, 0, "hard")),
    ("e", TEMPLATE_B, datetime(2026, 11, 2, 12, 0, tzinfo=UTC), Figures(None, None, None, None, 0)),
]


def hand_computed_records(sessions: sessionmaker[Session], team: Team) -> dict[str, uuid.UUID]:
    customer = add_contact(sessions, team, "ana@globex.example", company="Globex")
    other = add_contact(sessions, team, "bo@initech.example", company="Initech")
    made = {}
    for name, template, sent_at, figures in FIXTURE:
        to = [customer.address] if name in ("a", "b") else [other.address]
        sender = team.admin_id if name == "e" else team.member_id
        outbound = sent_email(sessions, team, to, sender_id=sender, sent_at=sent_at)
        with session_scope(sessions) as session:
            record = session.scalar(
                select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound)
            )
            assert record is not None
            # The outbox files an email under its first enduser's company.
            record.company_id = session.scalar(
                select(Contact.company_id).where(Contact.id == record.contact_id)
            )
            record.template_id, record.template_name = template, f"Template {str(template)[-1].upper()}"
            for column in ("open_rate", "human_open_rate", "click_rate", "human_click_rate", "reply_rate"):
                setattr(record, column, getattr(figures, column))
            record.bounce = figures.bounce
        made[name] = outbound
    return made


def _groups(
    sessions: sessionmaker[Session], actor: Actor, by: str, given: AnalyticsFilter | None = None
) -> list[Group]:
    with session_scope(sessions) as session:
        return engagement_groups(session, actor, by, given or AnalyticsFilter())


def _admin(team: Team) -> Actor:
    return Actor.operator(team.workspace_id)


def test_null_rates_are_left_out_of_the_averages_not_counted_as_zero(
    sessions: sessionmaker[Session], team: Team
) -> None:
    hand_computed_records(sessions, team)
    first, second = _groups(sessions, _admin(team), "template")
    assert (first.label, first.key) == ("Template A", str(TEMPLATE_A))
    assert first.counts == rules.Counts(
        sent=4,
        open_tracked=3,
        opened=2,
        human_open_known=2,
        human_opened=1,
        click_tracked=3,
        clicked=1,
        human_click_known=3,
        human_clicked=1,
        replied=1,
        bounced=1,
    )
    # Counting the untracked email as 0 would give 50.0 opened; the proxy-only open is unknown for people.
    assert first.rates == rules.Rates(
        open_rate=66.67,
        human_open_rate=50.0,
        click_rate=33.33,
        human_click_rate=33.33,
        reply_rate=25.0,
        bounce_rate=25.0,
    )
    reference = rules.counts_of(
        [
            (
                f.open_rate,
                f.human_open_rate,
                f.click_rate,
                f.human_click_rate,
                f.reply_rate,
                f.bounce is not None,
            )
            for _, template, _, f in FIXTURE
            if template == TEMPLATE_A
        ]
    )
    assert first.counts == reference
    # Nothing tracked: no average at all rather than 0, while the reply rate is known (0).
    assert (second.label, second.counts.sent) == ("Template B", 1)
    assert (second.rates.open_rate, second.rates.human_click_rate, second.rates.reply_rate) == (
        None,
        None,
        0.0,
    )


def test_weeks_start_on_monday_in_utc_and_the_date_range_includes_its_last_day(
    sessions: sessionmaker[Session], team: Team
) -> None:
    hand_computed_records(sessions, team)
    weeks = _groups(sessions, _admin(team), "week")
    assert [(group.key, group.counts.sent) for group in weeks] == [
        ("2026-11-02", 1),
        ("2026-11-30", 3),  # Monday 09:00 twice and Sunday 23:30
        ("2026-12-07", 1),
    ]
    days = _groups(
        sessions, _admin(team), "day", AnalyticsFilter(start=date(2026, 11, 30), end=date(2026, 12, 6))
    )
    assert [(group.key, group.counts.sent) for group in days] == [("2026-11-30", 2), ("2026-12-06", 1)]
    months = _groups(sessions, _admin(team), "month")
    assert [(group.key, group.counts.sent) for group in months] == [("2026-11-01", 3), ("2026-12-01", 2)]
    with pytest.raises(InvalidInputError):
        _groups(
            sessions, _admin(team), "week", AnalyticsFilter(start=date(2026, 12, 2), end=date(2026, 12, 1))
        )


def test_filters_by_sender_template_and_the_endusers_company_fields(
    sessions: sessionmaker[Session], team: Team
) -> None:
    hand_computed_records(sessions, team)
    admin = _admin(team)
    by_sender = _groups(sessions, admin, "sender", AnalyticsFilter(sender=team.admin_id))
    assert [(group.label, group.counts.sent) for group in by_sender] == [("admin@team-a.example", 1)]
    assert [
        g.counts.sent for g in _groups(sessions, admin, "variant", AnalyticsFilter(template=TEMPLATE_A))
    ] == [4]
    globex = _groups(sessions, admin, "company", AnalyticsFilter(where=("company.name=Globex",)))
    assert [(group.label, group.counts.sent, group.rates.open_rate) for group in globex] == [
        ("Globex", 2, 100.0)
    ]
    nobody = _groups(sessions, admin, "template", AnalyticsFilter(where=("enduser.email~@nowhere.example",)))
    assert nobody == []
    with pytest.raises(InvalidInputError):
        _groups(sessions, admin, "template", AnalyticsFilter(where=("company.name",)))
    with pytest.raises(InvalidInputError):
        _groups(sessions, admin, "colour")


def test_members_average_their_own_sends_and_admins_every_one(
    sessions: sessionmaker[Session], team: Team
) -> None:
    hand_computed_records(sessions, team)
    with session_scope(sessions) as session:
        member = workspace_service.actor_for(
            workspace_service.get_user(session, _admin(team), team.member_id)
        )
    assert [group.label for group in _groups(sessions, member, "template")] == ["Template A"]
    assert [group.label for group in _groups(sessions, _admin(team), "template")] == [
        "Template A",
        "Template B",
    ]


def test_outcomes_count_for_the_first_enduser_and_machines_only_in_the_raw_rates(
    sessions: sessionmaker[Session], team: Team
) -> None:
    first = add_contact(sessions, team, "ana@globex.example", company="Globex")
    second = add_contact(sessions, team, "cy@globex.example", company="Globex")
    clicked = sent_email(
        sessions, team, ["colleague@elsewhere.example", first.address, second.address], links=1
    )
    proxied = sent_email(sessions, team, [second.address], links=1)
    add_event(sessions, team, clicked, "click", timedelta(minutes=5), link_id=link_ids(sessions, clicked)[0])
    add_event(sessions, team, proxied, "open", timedelta(minutes=5), machine_reason="Apple Private Relay")
    with session_scope(sessions) as session:
        engagement.refresh(session, [clicked, proxied])
    groups = {group.label: group for group in _groups(sessions, _admin(team), "enduser")}
    assert set(groups) == {first.address, second.address}
    ana, cy = groups[first.address], groups[second.address]
    assert (
        ana.rates.open_rate,
        ana.rates.human_open_rate,
        ana.rates.click_rate,
        ana.rates.human_click_rate,
    ) == (
        100.0,
        100.0,
        100.0,
        100.0,
    )
    assert (cy.rates.open_rate, cy.rates.human_open_rate, cy.counts.human_open_known) == (100.0, None, 0)


def test_a_new_event_is_in_the_averages_once_the_refresh_job_has_run(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address])
    [before] = _groups(sessions, _admin(team), "sender")
    assert (before.rates.open_rate, before.rates.human_open_rate) == (0.0, 0.0)
    add_event(sessions, team, outbound, "open", timedelta(minutes=3))
    # Stored but not yet refreshed: the averages read the records, as the refresh job leaves them.
    assert _groups(sessions, _admin(team), "sender")[0].rates.open_rate == 0.0
    current_queue().send(REFRESH_JOB, outbound_ids=[str(outbound)])  # as the tracking endpoint sends it
    [after] = _groups(sessions, _admin(team), "sender")
    assert (after.rates.open_rate, after.rates.human_open_rate) == (100.0, 100.0)
