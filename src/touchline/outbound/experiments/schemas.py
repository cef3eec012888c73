"""API models of A/B tests: each variant's running numbers with its interval, the test's state and
its recorded decision."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from touchline.models import Experiment
from touchline.outbound.experiments.service import Running


class VariantOut(BaseModel):
    label: str
    template: str
    sends: int
    successes: int
    rate: float | None
    rate_low: float
    rate_high: float
    """Always-valid confidence interval of the rate, at the test's alpha."""


class TestOut(BaseModel):
    """What the sequential test says of the numbers now."""

    statistic: float
    bound: float
    p_value: float
    alpha: float
    reason: str
    leading: str | None
    """The variant the test would name now (before the decision is recorded, or after it)."""


class ExperimentOut(BaseModel):
    id: uuid.UUID
    name: str
    bulk_id: uuid.UUID | None
    sequence_id: uuid.UUID | None
    sequence_step: int | None
    metric: str
    warning: str | None
    min_sample: int
    horizon: int
    state: str
    winner: str | None
    decided_at: datetime | None
    decided_by: str | None
    """test, horizon or user."""
    decided_by_user: uuid.UUID | None
    decision: dict[str, Any] | None
    created_at: datetime


class ExperimentDetail(ExperimentOut):
    variants: list[VariantOut]
    test: TestOut


def experiment_out(experiment: Experiment, warning: str | None) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "name": experiment.name,
        "bulk_id": experiment.bulk_id,
        "sequence_id": experiment.sequence_id,
        "sequence_step": experiment.sequence_step,
        "metric": experiment.metric,
        "warning": warning,
        "min_sample": experiment.min_sample,
        "horizon": experiment.horizon,
        "state": experiment.state,
        "winner": experiment.winner,
        "decided_at": experiment.decided_at,
        "decided_by": experiment.decided_by,
        "decided_by_user": experiment.decided_by_user,
        "decision": experiment.decision,
        "created_at": experiment.created_at,
    }


def detail_of(running: Running) -> ExperimentDetail:
    decision = running.decision
    leading = running.variants[decision.winner].label if decision.winner is not None else None
    return ExperimentDetail(
        **experiment_out(running.experiment, running.warning),
        variants=[
            VariantOut(
                label=one.label,
                template=one.template_name,
                sends=one.sends,
                successes=one.successes,
                rate=one.rate,
                rate_low=one.interval.low,
                rate_high=one.interval.high,
            )
            for one in running.variants
        ],
        test=TestOut(
            statistic=decision.statistic,
            bound=decision.bound,
            p_value=decision.p_value,
            alpha=decision.alpha,
            reason=decision.reason,
            leading=leading,
        ),
    )


class StopIn(BaseModel):
    winner: str = Field(min_length=1, max_length=50)
    """The label of the variant the rest of the audience gets."""


class StepExperimentIn(BaseModel):
    """An A/B test on a sequence step: its own template is variant A, these templates B, C, ..."""

    sequence_id: uuid.UUID
    step: int = Field(ge=1)
    templates: list[uuid.UUID] = Field(min_length=1, max_length=9)
    name: str = Field("", max_length=200)
    metric: Literal["reply_rate", "human_click_rate", "open_rate"] = "reply_rate"
    min_sample: int = Field(100, ge=1)
    horizon: int = Field(10_000, ge=1)
