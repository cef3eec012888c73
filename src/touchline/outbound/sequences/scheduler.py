"""The sequence tick: run every step that is due, each enrolment in its own transaction.

An enrolment is taken with one conditional UPDATE (still active, still due); the row lock it takes
(PostgreSQL) or the write lock (SQLite) holds until the commit, so a second worker's UPDATE waits and
then finds the enrolment no longer due. Everything a step does, the queued email, its StepRun (unique
per enrolment and step) and the next due time, is written in that same transaction: a worker killed
at any point leaves either all of it or none, and the next tick runs the step again exactly once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import TouchlineError
from touchline.models import Enrolment, OutboundEmail, Sequence, SequenceStep, StepRun, User
from touchline.outbound import repository
from touchline.outbound.compose.conditions import StepOutcome, continues, evaluate
from touchline.outbound.engagement.repository import recorded_engagement
from touchline.outbound.experiments import service as experiments
from touchline.outbound.send import service as outbox
from touchline.outbound.sequences import service
from touchline.outbound.sequences.outcomes import EngagementReader, step_outcomes
from touchline.outbound.sequences.timing import step_due
from touchline.outbound.unsubscribe.service import unsubscribe_url
from touchline.workspace.service import actor_for

log = logging.getLogger(__name__)

BATCH: Final = 500
"""Enrolments taken per tick; more wait for the next minute's."""


@dataclass(frozen=True)
class StepDone:
    """What a tick did to one enrolment: the step it ran and how that went, and where it stands."""

    enrolment_id: uuid.UUID
    position: int | None
    outcome: str
    state: str


BeforeCommit = Callable[[Session, StepDone], None]


def _nothing(session: Session, done: StepDone) -> None:
    return None


def due_enrolments(session: Session, now: datetime, limit: int = BATCH) -> list[uuid.UUID]:
    return list(
        session.scalars(
            select(Enrolment.id)
            .join(Sequence, Sequence.id == Enrolment.sequence_id)
            .where(
                Enrolment.state == service.ACTIVE,
                Enrolment.next_due_at <= now,
                Sequence.status == service.ACTIVE,
            )
            .order_by(Enrolment.next_due_at)
            .limit(limit)
        )
    )


def _claim(session: Session, enrolment_id: uuid.UUID, now: datetime) -> Enrolment | None:
    taken = session.execute(
        update(Enrolment)
        .where(
            Enrolment.id == enrolment_id,
            Enrolment.state == service.ACTIVE,
            Enrolment.next_due_at <= now,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    return session.get(Enrolment, enrolment_id, populate_existing=True)


def _end(enrolment: Enrolment, state: str, reason: str, now: datetime) -> None:
    enrolment.state, enrolment.reason = state, reason
    enrolment.next_due_at, enrolment.ended_at = None, now


def _advance(enrolment: Enrolment, sequence: Sequence, now: datetime) -> None:
    """On to the next step, due its delay after now; finished after the last."""
    enrolment.current_step += 1
    enrolment.last_step_at = now
    following = _step_at(sequence, enrolment.current_step)
    if following is None:
        _end(enrolment, service.FINISHED, "every step ran", now)
        return
    window = service.window_for(sequence, enrolment.contact)
    enrolment.next_due_at = step_due(now, following.delay_days, window)


def _step_at(sequence: Sequence, position: int) -> SequenceStep | None:
    return next((step for step in sequence.steps if step.position == position), None)


def _first_sent_email(session: Session, enrolment: Enrolment) -> uuid.UUID | None:
    """The stored copy of the first email this enrolment sent, which later steps answer."""
    return session.scalar(
        select(OutboundEmail.email_id)
        .join(StepRun, StepRun.outbound_id == OutboundEmail.id)
        .where(StepRun.enrolment_id == enrolment.id, OutboundEmail.email_id.is_not(None))
        .order_by(StepRun.position)
        .limit(1)
    )


def _record(
    session: Session,
    enrolment: Enrolment,
    step: SequenceStep,
    outcome: str,
    now: datetime,
    *,
    outbound_id: uuid.UUID | None = None,
    reason: str | None = None,
) -> None:
    session.add(
        StepRun(
            workspace_id=enrolment.workspace_id,
            enrolment_id=enrolment.id,
            position=step.position,
            step_id=step.id,
            outcome=outcome,
            outbound_id=outbound_id,
            reason=reason[:4000] if reason else None,
            ran_at=now,
        )
    )


def _send_step(
    session: Session,
    enrolment: Enrolment,
    sequence: Sequence,
    step: SequenceStep,
    owner: User,
    outcomes: Mapping[int, StepOutcome],
    settings: Settings,
    box: SecretBox,
    now: datetime,
) -> str:
    """Skip the step when its condition does not hold, else queue its email; the outcome recorded."""
    contact, position = enrolment.contact, step.position
    actor = actor_for(owner)
    try:
        condition = service.step_condition(step.condition, position)
        if condition is not None:
            context = repository.merge_contexts(session, actor, [contact.id], owner)[contact.id]
            result = evaluate(condition, context, outcomes)
            if not result.met:
                _record(session, enrolment, step, "skipped", now, reason="; ".join(result.reasons))
                _advance(enrolment, sequence, now)
                return "skipped"
        # An A/B test on this step: the enduser's variant, or the winner once decided.
        experiment = experiments.of_step(session, sequence.id, position)
        variant = experiments.variant_for(experiment, contact.id) if experiment is not None else None
        draft = outbox.Draft(
            sender=sequence.sender,
            to=[outbox.Recipient(contact.email, contact.name)],
            template_id=variant.template_id if variant is not None else step.template_id,
            kind="sequence",
            unsubscribe_url=unsubscribe_url(settings.base_url, box, enrolment.workspace_id, contact.id),
            sequence_id=sequence.id,
            sequence_step=position,
            idempotency_key=f"sequence:{enrolment.id}:{position}",
            reply_to_email_id=_first_sent_email(session, enrolment),
        )
        with session.begin_nested():  # a refused send leaves nothing half-made behind
            sent = outbox.send_email(session, actor, draft, settings=settings, now=now)
            if variant is not None:
                sent.variant = variant.label
    except outbox.Undeliverable as undeliverable:
        _record(session, enrolment, step, "undeliverable", now, reason=str(undeliverable))
        _end(enrolment, service.UNENROLLED, str(undeliverable), now)
        return "undeliverable"
    except outbox.Skipped as skipped:
        _record(session, enrolment, step, "unsubscribed", now, reason=str(skipped))
        _end(enrolment, service.UNENROLLED, str(skipped), now)
        return "unsubscribed"
    except TouchlineError as error:
        _record(session, enrolment, step, "failed", now, reason=str(error))
        _end(enrolment, service.FAILED, f"step {position}: {error}", now)
        return "failed"
    _record(session, enrolment, step, "queued", now, outbound_id=sent.id)
    _advance(enrolment, sequence, now)
    return "queued"


def run_step(
    session: Session,
    enrolment: Enrolment,
    *,
    settings: Settings,
    box: SecretBox,
    now: datetime,
    engagement: EngagementReader = recorded_engagement,
) -> StepDone:
    """Run the enrolment's current step: exit on a reply, skip the step when its condition does not
    hold, otherwise queue its email; then move on to the next step."""
    sequence = session.get(Sequence, enrolment.sequence_id)
    assert sequence is not None
    contact = enrolment.contact
    position = enrolment.current_step

    def done(outcome: str) -> StepDone:
        return StepDone(enrolment.id, position, outcome, enrolment.state)

    outcomes = step_outcomes(session, enrolment, engagement)
    if not continues(outcomes, stop_on_reply=sequence.exit_on_reply):
        _end(enrolment, service.EXITED, f"{contact.email} replied", now)
        return done("exited")
    step = _step_at(sequence, position)
    if step is None:
        _end(enrolment, service.FINISHED, "every step ran", now)
        return done("finished")
    owner = session.get(User, sequence.owner_id) if sequence.owner_id else None
    if owner is None or not owner.active:
        reason = "the sequence's owner is no longer an active user; save the sequence again to take it over"
        _record(session, enrolment, step, "failed", now, reason=reason)
        _end(enrolment, service.FAILED, f"step {position}: {reason}", now)
        return done("failed")
    return done(_send_step(session, enrolment, sequence, step, owner, outcomes, settings, box, now))


def run_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    now: datetime,
    *,
    engagement: EngagementReader = recorded_engagement,
    before_commit: BeforeCommit = _nothing,
) -> list[StepDone]:
    """One tick: every due enrolment's step, each in a transaction of its own. `before_commit` runs
    inside each transaction after the step's writes (tests stop a worker there)."""
    box = SecretBox(settings.secret_keys)
    with session_scope(sessions) as session:
        due = due_enrolments(session, now)
    results = []
    for enrolment_id in due:
        try:
            with session_scope(sessions) as session:
                enrolment = _claim(session, enrolment_id, now)
                if enrolment is None:
                    continue  # another worker ran it, or it was paused or unenrolled meanwhile
                done = run_step(
                    session, enrolment, settings=settings, box=box, now=now, engagement=engagement
                )
                session.flush()
                before_commit(session, done)
        except Exception:
            # Rolled back, so the step is still due: the next tick tries it again, and this one
            # goes on with the other enrolments.
            log.exception("sequence enrolment %s: the step could not be run", enrolment_id)
            continue
        log.info("sequence enrolment %s step %s: %s", done.enrolment_id, done.position, done.outcome)
        results.append(done)
    return results
