"""What came of the steps an enrolment was sent: the one place the scheduler reads outcomes from.

`replied` is read from stored mail: an inbound email from the enrolled enduser in the conversation
of an email the sequence sent them (the sent copy's conversation, OutboundEmail.email_id). `opened`,
`clicked` and `bounced` come from an `EngagementReader`: the scheduler reads the Email Engagement
records (`touchline.outbound.engagement.repository.recorded_engagement`); tests pass readers of
given outcomes. An email sent with tracking off reports None (unknown) for what it did not track, as
the condition evaluator expects.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from collections.abc import Sequence as Many
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from touchline.models import Email, Enrolment, OutboundEmail, StepRun
from touchline.outbound.compose.conditions import StepOutcome


@dataclass(frozen=True, slots=True)
class Engagement:
    """What tracking recorded for one outbound email."""

    opened: bool = False
    clicked: bool = False
    bounced: bool = False


EngagementReader = Callable[[Session, Many[uuid.UUID]], Mapping[uuid.UUID, Engagement]]
"""Given outbound email ids, what tracking recorded for each (absent: nothing recorded)."""


def replied_conversations(
    session: Session, enrolment: Enrolment, conversation_ids: Many[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of the conversations holding an email the enrolled enduser wrote (automatic replies
    are not theirs)."""
    if not conversation_ids:
        return set()
    return {
        conversation_id
        for conversation_id in session.scalars(
            select(Email.conversation_id)
            .where(
                Email.workspace_id == enrolment.workspace_id,
                Email.conversation_id.in_(list(conversation_ids)),
                func.lower(Email.from_address) == enrolment.contact.email.lower(),
                Email.automatic.is_(None),  # an out-of-office is no reply and does not end a sequence
            )
            .distinct()
        )
        if conversation_id is not None
    }


def step_outcomes(
    session: Session, enrolment: Enrolment, engagement: EngagementReader
) -> dict[int, StepOutcome]:
    """The outcome of each step sent to this enrolment, by position; skipped steps are absent."""
    sent = session.execute(
        select(
            StepRun.position,
            OutboundEmail.id,
            OutboundEmail.track_opens,
            OutboundEmail.track_clicks,
            Email.conversation_id,
        )
        .join(OutboundEmail, OutboundEmail.id == StepRun.outbound_id)
        .outerjoin(Email, Email.id == OutboundEmail.email_id)
        .where(StepRun.enrolment_id == enrolment.id, StepRun.workspace_id == enrolment.workspace_id)
    ).all()
    replied = replied_conversations(
        session, enrolment, [row.conversation_id for row in sent if row.conversation_id]
    )
    recorded = engagement(session, [row.id for row in sent])
    outcomes = {}
    for row in sent:
        seen = recorded.get(row.id, Engagement())
        outcomes[row.position] = StepOutcome(
            opened=seen.opened if row.track_opens else None,
            clicked=seen.clicked if row.track_clicks else None,
            replied=row.conversation_id in replied,
            bounced=seen.bounced,
        )
    return outcomes
