"""The job that logs what the log address accepted: sent after each spool commit, and run every
minute by every worker so that nothing a stopped queue or a dead worker left behind waits long."""

from __future__ import annotations

import logging

from touchline.inbound.receive import spool
from touchline.inbound.receive.authentication import SenderChecks
from touchline.worker import JobContext, job

log = logging.getLogger(__name__)


@job(spool.LOG_SPOOLED_JOB, retries=0, every_minutes=1)
def log_spooled_job(context: JobContext) -> None:
    # Workers running this at once each claim their own rows, so there is nothing to lock.
    report = spool.log_spooled(context.sessions, checks=SenderChecks.of(context.settings))
    if report.claimed:
        log.info(
            "logged spooled mail: %s logged, %s refused, %s quarantined, %s left for later",
            report.logged,
            report.refused,
            report.quarantined,
            report.left,
        )
