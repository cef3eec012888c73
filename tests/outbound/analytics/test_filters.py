"""Analytics filters against hand-computed figures, on both databases: by bulk send, by a company
custom field (`company.custom.<key>` in the `where` filter language) and by sequence, whose steps
make the funnel.

The records are the averages' fixture (see test_averages) with these added:

    record  company  tier    sequence step  bulk send  open  human open  click  human click  reply
    a       Globex   silver  1              -          100   100         100    100          100
    b       Globex   silver  1              X          100   None        0      0            0
    c       Initech  gold    -              X          None  None        None   None         0
    d       Initech  gold    2              -          0     0           0      0            0 (bounced)
    e       Initech  gold    -              -          None  None        None   None         0 (template B)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import time

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.analytics.test_averages import hand_computed_records
from touchline.db import session_scope
from touchline.models import Company, CustomFieldDefinition, EmailEngagement, SequenceStep
from touchline.models import Sequence as SequenceRow
from touchline.outbound.analytics.service import AnalyticsFilter, Group, engagement_groups
from touchline.outbound.templates import service as templates
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor


@dataclass(frozen=True)
class Sequenced:
    sequence_id: uuid.UUID
    bulk_id: uuid.UUID
    records: dict[str, uuid.UUID]


def sequenced_records(sessions: sessionmaker[Session], team: Team) -> Sequenced:
    """The averages' records, with a two-step sequence, a bulk send and a company tier (above)."""
    records = hand_computed_records(sessions, team)
    bulk_id = uuid.uuid4()
    steps = {"a": 1, "b": 1, "d": 2}
    with session_scope(sessions) as session:
        operator = Actor.operator(team.workspace_id)
        member = workspace_service.actor_for(workspace_service.get_user(session, operator, team.member_id))
        made = [
            templates.create_template(session, member, name, templates.TemplateText(name, f"<p>{name}</p>"))
            for name in ("Playbook opener", "Playbook nudge")
        ]
        sequence = SequenceRow(
            workspace_id=team.workspace_id,
            name="Renewal playbook",
            sender="member@team-a.example",
            owner_id=team.member_id,
            window_start=time(9),
            window_end=time(17),
        )
        session.add(sequence)
        session.flush()
        session.add_all(
            SequenceStep(
                workspace_id=team.workspace_id,
                sequence_id=sequence.id,
                position=position,
                template_id=template.id,
                delay_days=3 * (position - 1),
            )
            for position, template in enumerate(made, start=1)
        )
        session.add(
            CustomFieldDefinition(
                workspace_id=team.workspace_id, kind="company", key="tier", label="Tier", type="text"
            )
        )
        for company in session.scalars(select(Company).where(Company.workspace_id == team.workspace_id)):
            company.custom_fields = {"tier": "silver" if company.name == "Globex" else "gold"}
        for name, outbound in records.items():
            record = session.scalar(
                select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound)
            )
            assert record is not None
            if name in steps:
                record.sequence_id, record.sequence_step = sequence.id, steps[name]
            if name in ("b", "c"):
                record.bulk_id = bulk_id
        return Sequenced(sequence.id, bulk_id, records)


def _groups(sessions: sessionmaker[Session], team: Team, by: str, given: AnalyticsFilter) -> list[Group]:
    with session_scope(sessions) as session:
        return engagement_groups(session, Actor.operator(team.workspace_id), by, given)


def _figures(group: Group) -> tuple[object, ...]:
    rates = group.rates
    return (
        group.label,
        group.counts.sent,
        rates.open_rate,
        rates.human_open_rate,
        rates.click_rate,
        rates.human_click_rate,
        rates.reply_rate,
    )


def test_a_bulk_send_filter_counts_only_its_emails(sessions: sessionmaker[Session], team: Team) -> None:
    made = sequenced_records(sessions, team)
    only_bulk = AnalyticsFilter(bulk_id=made.bulk_id)
    # b: opened by a proxy only (human open unknown), tracked click not made; c: nothing tracked.
    assert [_figures(g) for g in _groups(sessions, team, "template", only_bulk)] == [
        ("Template A", 2, 100.0, None, 0.0, 0.0, 0.0)
    ]
    assert sorted((g.label, g.counts.sent) for g in _groups(sessions, team, "company", only_bulk)) == [
        ("Globex", 1),
        ("Initech", 1),
    ]
    assert _groups(sessions, team, "template", AnalyticsFilter(bulk_id=uuid.uuid4())) == []


def test_a_company_custom_field_filter_counts_its_companies_endusers(
    sessions: sessionmaker[Session], team: Team
) -> None:
    sequenced_records(sessions, team)
    gold = AnalyticsFilter(where=("company.custom.tier=gold",))
    # c (nothing tracked) and d (tracked, not opened, bounced) from template A; e from template B.
    groups = _groups(sessions, team, "template", gold)
    assert [_figures(g) for g in groups] == [
        ("Template A", 2, 0.0, 0.0, 0.0, 0.0, 0.0),
        ("Template B", 1, None, None, None, None, 0.0),
    ]
    assert groups[0].rates.bounce_rate == 50.0
    silver = _groups(sessions, team, "company", AnalyticsFilter(where=("company.custom.tier=silver",)))
    assert [_figures(g) for g in silver] == [("Globex", 2, 100.0, 100.0, 50.0, 50.0, 50.0)]
    assert _groups(sessions, team, "template", AnalyticsFilter(where=("company.custom.tier=bronze",))) == []


def test_a_sequence_filter_counts_its_steps_and_makes_the_funnel(
    sessions: sessionmaker[Session], team: Team
) -> None:
    made = sequenced_records(sessions, team)
    in_sequence = AnalyticsFilter(sequence=made.sequence_id)
    # a, b and d: 3 tracked, 2 opened; human opens known for a (yes) and d (no); one click, one reply.
    assert [_figures(g) for g in _groups(sessions, team, "template", in_sequence)] == [
        ("Template A", 3, 66.67, 50.0, 33.33, 33.33, 33.33)
    ]
    assert [(g.key, g.counts.sent) for g in _groups(sessions, team, "week", in_sequence)] == [
        ("2026-11-30", 2),
        ("2026-12-07", 1),
    ]
    funnel = sorted(_groups(sessions, team, "step", in_sequence), key=lambda group: group.key)
    assert [g.key for g in funnel] == [f"{made.sequence_id}:1", f"{made.sequence_id}:2"]
    assert [_figures(g) for g in funnel] == [
        ("Renewal playbook step 1", 2, 100.0, 100.0, 50.0, 50.0, 50.0),
        ("Renewal playbook step 2", 1, 0.0, 0.0, 0.0, 0.0, 0.0),
    ]
    assert [(g.counts.opened, g.counts.clicked, g.counts.replied) for g in funnel] == [(2, 1, 1), (0, 0, 0)]
    with session_scope(sessions) as session:  # the records give what the rollup gives
        exact = engagement_groups(session, Actor.operator(team.workspace_id), "step", in_sequence, exact=True)
    assert sorted(_figures(g) for g in exact) == [_figures(g) for g in funnel]
    step_two = AnalyticsFilter(sequence=made.sequence_id, step=2)
    assert [_figures(g) for g in _groups(sessions, team, "sequence", step_two)] == [
        ("Renewal playbook", 1, 0.0, 0.0, 0.0, 0.0, 0.0)
    ]
    assert _groups(sessions, team, "template", AnalyticsFilter(sequence=uuid.uuid4())) == []
