"""The every-minute sequence tick in the worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from touchline.outbound.sequences import scheduler
from touchline.worker import JobContext, job

SEQUENCE_TICK: Final = "outbound.sequence_tick"


@job(SEQUENCE_TICK, retries=0, every_minutes=1)
def sequence_tick(context: JobContext) -> None:
    """Due steps leave within a minute of their time; a tick that dies is simply run again."""
    scheduler.run_due(context.sessions, context.settings, datetime.now(UTC))
