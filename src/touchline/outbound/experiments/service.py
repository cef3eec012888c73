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

from touchline.kit.errors import InvalidInputError, NotFoundError
from touchline.models import EmailEngagement, Experiment, Template
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
        state=RUNNING,
    )
    session.add(experiment)
    session.flush()
    workspace_service.record_audit(
        session, actor, "experiment.create", "experiment", experiment.id, {"metric": metric, "name": name}
    )
    return experiment


def variant_for(experiment: Experiment, contact_id: uuid.UUID) -> Variant:
    """The variant an enduser gets: the winner once decided, else their stable share of the split."""
    variants = variants_of(experiment)
    if experiment.state == DECIDED and experiment.winner is not None:
        return next(variant for variant in variants if variant.label == experiment.winner)
    return variants[rules.assigned_index(experiment.id, contact_id, len(variants))]


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


def evaluate(session: Session, experiment: Experiment, now: datetime) -> Running:
    """Run the test on the experiment's counts; a verdict (or the horizon) is recorded as its
    decision, decided by `test` or `horizon`."""
    running = running_numbers(session, experiment)
    if experiment.state == RUNNING and running.decision.winner is not None:
        label = variants_of(experiment)[running.decision.winner].label
        decided_by = "test" if running.decision.reason == "significant" else "horizon"
        _record(experiment, running, label, decided_by, now)
        session.flush()
    return running


def evaluate_running(session: Session, now: datetime) -> list[uuid.UUID]:
    """Evaluate every running experiment (one grouped count each); returns those it decided."""
    decided = []
    for experiment in session.scalars(select(Experiment).where(Experiment.state == RUNNING)):
        if evaluate(session, experiment, now).experiment.state == DECIDED:
            decided.append(experiment.id)
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
