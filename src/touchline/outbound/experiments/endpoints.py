"""JSON API of A/B tests: the list, one test with its running numbers, and an admin's stop. Thin."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi import APIRouter

from touchline.db import session_scope
from touchline.outbound.experiments import rules, service
from touchline.outbound.experiments.schemas import (
    ExperimentDetail,
    ExperimentOut,
    StepExperimentIn,
    StopIn,
    detail_of,
    experiment_out,
)
from touchline.workspace.auth import ApiActor, Sessions

router = APIRouter(prefix="/api/v1", tags=["experiments"])


@router.get("/experiments", summary="A/B tests, newest first, with their state and decision")
def list_experiments(actor: ApiActor, sessions: Sessions) -> list[ExperimentOut]:
    with session_scope(sessions) as session:
        return [
            ExperimentOut(**experiment_out(one, rules.metric_warning(service.metric_of(one))))
            for one in service.list_experiments(session, actor)
        ]


@router.post(
    "/experiments",
    status_code=201,
    summary="Start an A/B test on a sequence step (bulk sends take variants in their own request)",
)
def create_step_experiment(body: StepExperimentIn, actor: ApiActor, sessions: Sessions) -> ExperimentDetail:
    with session_scope(sessions) as session:
        experiment = service.create_for_step(
            session,
            actor,
            body.sequence_id,
            body.step,
            body.templates,
            name=body.name,
            metric=body.metric,
            min_sample=body.min_sample,
            horizon=body.horizon,
        )
        return detail_of(service.running_numbers(session, experiment))


@router.get(
    "/experiments/{experiment_id}", summary="One A/B test: each variant's rate and interval, the test"
)
def get_experiment(experiment_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> ExperimentDetail:
    with session_scope(sessions) as session:
        experiment = service.get_experiment(session, actor, experiment_id)
        return detail_of(service.running_numbers(session, experiment))


@router.post(
    "/experiments/{experiment_id}/stop", summary="Stop a running A/B test and pick its winner (admins)"
)
def stop_experiment(
    experiment_id: uuid.UUID, body: StopIn, actor: ApiActor, sessions: Sessions
) -> ExperimentDetail:
    with session_scope(sessions) as session:
        return detail_of(service.stop(session, actor, experiment_id, body.winner, datetime.now(UTC)))
