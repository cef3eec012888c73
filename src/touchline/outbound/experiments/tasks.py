"""The experiments' job: every minute, each running A/B test is evaluated on its engagement records
(one grouped count per test), so a decision follows the engagement refreshes within a minute."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from touchline.db import session_scope
from touchline.outbound.experiments import EVALUATE_JOB, service
from touchline.worker import JobContext, job

log = logging.getLogger(__name__)


@job(EVALUATE_JOB, retries=0, every_minutes=1)
def evaluate_experiments(context: JobContext) -> None:
    with session_scope(context.sessions) as session:
        decided = service.evaluate_running(session, datetime.now(UTC))
    if decided:
        log.info("A/B tests decided: %s", ", ".join(map(str, decided)))
