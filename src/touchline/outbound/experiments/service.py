"""Experiments: made with a bulk send or a sequence step, their variant for each enduser, the running
counts per variant from the Email Engagement records, and the decision (by the sequential test, by the
horizon, or by an admin). Takes a session; may flush, never commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from touchline import models
from touchline.kit.errors import InvalidInputError, NotFoundError
from touchline.models import BulkSend, EmailEngagement, Experiment, Template
from touchline.outbound import bulk as bulk_sends
from touchline.outbound.analytics.abtest import (
    DEFAULT_ALPHA,
    DEFAULT_HORIZON,
    DEFAULT_MIN_SAMPLE,
    Decision,
    Interval,
    decide,
    rate_interval,
)
from touchline.outbound.experiments import rules
from touchline.outbound.experiments.rules import Metric
from touchline.outbound.templates import service as templates_service
from touchline.worker import enqueue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

RUNNING, DECIDED = "running", "decided"


@dataclass(frozen=True)
class Variant:
    label: str
    template_id: uuid.UUID
    template_name: str


@dataclass(frozen=True)
class VariantNumbers:
    label: str
    template_name: str
    sends: int
    successes: int
    rate: float | None
    interval: Interval


@dataclass(frozen=True)
class Running:
    """An experiment with its numbers so far and what the test says of them now."""

    experiment: Experiment
    variants: tuple[VariantNumbers, ...]
    decision: Decision
    warning: str | None


def variants_of(experiment: Experiment) -> list[Variant]:
    """The variants in order, the control first."""
    variants = []
    for stored in experiment.variants:
        variants.append(Variant(stored["label"], uuid.UUID(stored["template_id"]), stored["template_name"]))
    return variants


def metric_of(experiment: Experiment) -> Metric:
    return _metric(experiment.metric)


def _metric(raw: str) -> Metric:
    if raw not in rules.METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(rules.METRICS)}")
    return raw


def create(
    session: Session,
    actor: Actor,
    templates: Sequence[Template],
    *,
    name: str,
    metric: str = "reply_rate",
    bulk_id: uuid.UUID | None = None,
    sequence_id: uuid.UUID | None = None,
    sequence_step: int | None = None,
    min_sample: int = DEFAULT_MIN_SAMPLE,
    horizon: int = DEFAULT_HORIZON,
    test_share: float | None = None,
    ends_at: datetime | None = None,
) -> Experiment:
    """Record an experiment between these templates (the first is the control, A)."""
    actor.require(Permission.SEND_EMAIL)
    _metric(metric)
    if not 2 <= len(templates) <= rules.MAX_VARIANTS:
        raise InvalidInputError(f"an A/B test needs 2 to {rules.MAX_VARIANTS} template variants")
    if len({template.id for template in templates}) != len(templates):
        raise InvalidInputError("each variant must be a different template")
    if (bulk_id is None) == (sequence_id is None) or (sequence_id is not None and sequence_step is None):
        raise InvalidInputError("an A/B test belongs to one bulk send or one sequence step")
    if not 1 <= min_sample <= horizon:
        raise InvalidInputError("the minimum sample must be at least 1 and at most the horizon")
    if test_share is not None and not 0 < test_share <= 1:
        raise InvalidInputError("the first batch's share must lie above 0 and at most 1")
    experiment = Experiment(
        workspace_id=actor.workspace_id,
        created_by=actor.user_id,
        name=name.strip()[:200] or "A/B test",
        bulk_id=bulk_id,
        sequence_id=sequence_id,
        sequence_step=sequence_step,
        metric=metric,
        variants=[
            {"label": label, "template_id": str(template.id), "template_name": template.name}
            for label, template in zip(rules.LABELS, templates, strict=False)
        ],
        alpha=DEFAULT_ALPHA,
        min_sample=min_sample,
        horizon=horizon,
        test_share=test_share,
        ends_at=ends_at,
        state=RUNNING,
    )
    session.add(experiment)
    session.flush()
    workspace_service.record_audit(
        session, actor, "experiment.create", "experiment", experiment.id, {"metric": metric, "name": name}
    )
    return experiment


def create_for_step(
    session: Session,
    actor: Actor,
    sequence_id: uuid.UUID,
    step: int,
    template_ids: Sequence[uuid.UUID],
    *,
    name: str = "",
    metric: str = "reply_rate",
    min_sample: int = DEFAULT_MIN_SAMPLE,
    horizon: int = DEFAULT_HORIZON,
) -> Experiment:
    """An A/B test on a sequence step: the step's own template is the control (A), these templates
    the other variants; endusers who reach the step from now on get their variant, and the winner
    once decided."""
    actor.require(Permission.SEND_EMAIL)
    sequence = session.get(models.Sequence, sequence_id)
    if sequence is None or sequence.workspace_id != actor.workspace_id:
        raise NotFoundError("no such sequence")
    found = session.scalar(
        select(models.SequenceStep).where(
            models.SequenceStep.sequence_id == sequence_id, models.SequenceStep.position == step
        )
    )
    if found is None:
        raise NotFoundError(f"the sequence has no step {step}")
    chosen = [templates_service.get_template(session, actor, found.template_id)]
    chosen += [templates_service.get_template(session, actor, one) for one in template_ids]
    return create(
        session,
        actor,
        chosen,
        name=name or f"{sequence.name}, step {step}",
        metric=metric,
        sequence_id=sequence_id,
        sequence_step=step,
        min_sample=min_sample,
        horizon=horizon,
    )


def variant_for(experiment: Experiment, contact_id: uuid.UUID) -> Variant:
    """The variant an enduser gets: the winner once decided, else their stable share of the split."""
    variants = variants_of(experiment)
    if experiment.state == DECIDED and experiment.winner is not None:
        return next(variant for variant in variants if variant.label == experiment.winner)
    return variants[rules.assigned_index(experiment.id, contact_id, len(variants))]


def waits(experiment: Experiment, contact_id: uuid.UUID) -> bool:
    """Whether an enduser of a bulk send waits for the winner (not in the running test's first batch)."""
    if experiment.state != RUNNING or experiment.test_share is None:
        return False
    return not rules.in_first_batch(experiment.id, contact_id, experiment.test_share)


def of_bulk(session: Session, bulk_id: uuid.UUID) -> Experiment | None:
    return session.scalar(select(Experiment).where(Experiment.bulk_id == bulk_id))


def of_step(session: Session, sequence_id: uuid.UUID, step: int) -> Experiment | None:
    """The A/B test of a sequence step, the newest if several were made."""
    return session.scalar(
        select(Experiment)
        .where(Experiment.sequence_id == sequence_id, Experiment.sequence_step == step)
        .order_by(Experiment.created_at.desc())
        .limit(1)
    )


def _subject(experiment: Experiment) -> list[ColumnElement[bool]]:
    conditions = [EmailEngagement.workspace_id == experiment.workspace_id]
    if experiment.bulk_id is not None:
        conditions.append(EmailEngagement.bulk_id == experiment.bulk_id)
    else:
        conditions.append(EmailEngagement.sequence_id == experiment.sequence_id)
        conditions.append(EmailEngagement.sequence_step == experiment.sequence_step)
    return conditions


def counts(session: Session, experiment: Experiment) -> list[tuple[int, int]]:
    """(sends, successes) per variant, in the experiment's order, from the engagement records of
    the emails sent with a variant. Emails whose metric is unknown (tracking off for a click or open
    rate) are not counted as sends."""
    column = {
        "reply_rate": EmailEngagement.reply_rate,
        "human_click_rate": EmailEngagement.human_click_rate,
        "open_rate": EmailEngagement.open_rate,
    }[_metric(experiment.metric)]
    rows = session.execute(
        select(
            EmailEngagement.variant,
            func.count(column),
            func.coalesce(func.sum(case((column == 100, 1), else_=0)), 0),
        )
        .where(*_subject(experiment), EmailEngagement.variant != "")
        .group_by(EmailEngagement.variant)
    ).all()
    found = {label: (int(sends), int(successes)) for label, sends, successes in rows}
    return [found.get(variant.label, (0, 0)) for variant in variants_of(experiment)]


def running_numbers(session: Session, experiment: Experiment) -> Running:
    arms = counts(session, experiment)
    decision = decide(
        arms, alpha=experiment.alpha, min_sample=experiment.min_sample, horizon=experiment.horizon
    )
    numbers = tuple(
        VariantNumbers(
            variant.label,
            variant.template_name,
            sends,
            successes,
            successes / sends if sends else None,
            rate_interval(sends, successes, alpha=experiment.alpha),
        )
        for variant, (sends, successes) in zip(variants_of(experiment), arms, strict=True)
    )
    return Running(experiment, numbers, decision, rules.metric_warning(_metric(experiment.metric)))


def _record(
    experiment: Experiment,
    running: Running,
    winner: str,
    decided_by: str,
    now: datetime,
    user_id: uuid.UUID | None = None,
) -> None:
    decision = running.decision
    experiment.state = DECIDED
    experiment.winner = winner
    experiment.decided_at = now
    experiment.decided_by = decided_by
    experiment.decided_by_user = user_id
    recorded: dict[str, Any] = {
        "metric": experiment.metric,
        "counts": [
            {"label": one.label, "sends": one.sends, "successes": one.successes} for one in running.variants
        ],
        "statistic": decision.statistic,
        "bound": decision.bound,
        "p_value": decision.p_value,
        "alpha": decision.alpha,
        "reason": decision.reason,
    }
    experiment.decision = recorded


def _release(session: Session, experiment: Experiment) -> None:
    """A decided test's bulk send goes on: the rest of its audience is queued with the winner."""
    if experiment.bulk_id is None:
        return
    bulk = session.get(BulkSend, experiment.bulk_id)
    if bulk is not None and bulk.status == bulk_sends.TESTING:
        bulk.status = "queueing"
        enqueue(session, bulk_sends.QUEUE_JOB, bulk_id=str(bulk.id))


def evaluate(session: Session, experiment: Experiment, now: datetime) -> Running:
    """Run the test on the experiment's counts; a verdict (or the horizon) is recorded as its
    decision, decided by `test` or `horizon`."""
    running = running_numbers(session, experiment)
    if experiment.state != RUNNING:
        return running
    if running.decision.winner is not None:
        label = variants_of(experiment)[running.decision.winner].label
        decided_by = "test" if running.decision.reason == "significant" else "horizon"
        _record(experiment, running, label, decided_by, now)
    elif experiment.ends_at is not None and now >= experiment.ends_at:
        _record(experiment, running, variants_of(experiment)[0].label, "horizon", now)
        assert experiment.decision is not None
        experiment.decision = {**experiment.decision, "reason": "ends_at"}
    else:
        return running
    session.flush()
    _release(session, experiment)
    return running


def evaluate_running(session: Session, now: datetime) -> list[uuid.UUID]:
    """Evaluate every running experiment (one grouped count each); returns those it decided."""
    decided = []
    for experiment in session.scalars(select(Experiment).where(Experiment.state == RUNNING)):
        if evaluate(session, experiment, now).experiment.state == DECIDED:
            decided.append(experiment.id)
    # A decision made while the first batch was still being queued finds its bulk send not yet
    # waiting; the bulk send goes on here once it is.
    late = select(Experiment).join(BulkSend, BulkSend.id == Experiment.bulk_id)
    for experiment in session.scalars(
        late.where(Experiment.state == DECIDED, BulkSend.status == bulk_sends.TESTING)
    ):
        _release(session, experiment)
    return decided


def stop(session: Session, actor: Actor, experiment_id: uuid.UUID, winner: str, now: datetime) -> Running:
    """An admin ends a running test and picks its winner; recorded as decided by that user."""
    actor.require(Permission.ADMIN_ACCESS)
    experiment = get_experiment(session, actor, experiment_id)
    if experiment.state != RUNNING:
        raise InvalidInputError("this A/B test is already decided")
    labels = [variant.label for variant in variants_of(experiment)]
    if winner not in labels:
        raise InvalidInputError(f"the winner must be one of {', '.join(labels)}")
    running = running_numbers(session, experiment)
    _record(experiment, running, winner, "user", now, actor.user_id)
    session.flush()
    _release(session, experiment)
    workspace_service.record_audit(
        session, actor, "experiment.stop", "experiment", experiment.id, {"winner": winner}
    )
    return running


def list_experiments(session: Session, actor: Actor, *, limit: int = 200) -> list[Experiment]:
    actor.require(Permission.SEND_EMAIL)
    return list(
        session.scalars(
            select(Experiment)
            .where(Experiment.workspace_id == actor.workspace_id)
            .order_by(Experiment.created_at.desc(), Experiment.id.desc())
            .limit(limit)
        )
    )


def get_experiment(session: Session, actor: Actor, experiment_id: uuid.UUID) -> Experiment:
    actor.require(Permission.SEND_EMAIL)
    experiment = session.get(Experiment, experiment_id)
    if experiment is None or experiment.workspace_id != actor.workspace_id:
        raise NotFoundError("no such A/B test")
    return experiment
