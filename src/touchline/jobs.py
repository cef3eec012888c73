"""Every job's name and the module that declares it (with `@job`, beside its feature).

Every process's queue declares a job as it is first sent (`configure_queue(..., declare=declare)`),
and a process that runs jobs (a worker, `touchline serve`) also declares them all before it takes
any. So a command that only sends a few (`touchline sync`, the imports, the tracking endpoints)
starts without importing every feature, most of whose jobs it never sends (they were most of the
2 s a no-change `touchline sync --once` took).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import import_module
from typing import Final

DECLARED_IN: Final[Mapping[str, str]] = {
    "engagement.refresh": "touchline.outbound.engagement.tasks",
    "inbound.log_spooled": "touchline.inbound.receive.tasks",
    "inbound.schedule_syncs": "touchline.inbound.fetch.tasks",
    "inbound.sync_mailbox": "touchline.inbound.fetch.tasks",
    "mail.delivery_report": "touchline.outbound.engagement.tasks",
    "mail.stored": "touchline.outbound.engagement.tasks",
    "mailboxes.apply_default_labels": "touchline.mailboxes.tasks",
    "notify.deliver": "touchline.outbound.notify.tasks",
    "notify.engagement": "touchline.outbound.notify.tasks",
    "notify.retry_due": "touchline.outbound.notify.tasks",
    "outbound.account_link_email": "touchline.outbound.account_links.tasks",
    "outbound.bulk_queue": "touchline.outbound.bulk.tasks",
    "outbound.bulk_resume": "touchline.outbound.bulk.tasks",
    "outbound.deliver": "touchline.outbound.send.tasks",
    "outbound.experiments_evaluate": "touchline.outbound.experiments.tasks",
    "outbound.schedule_deliveries": "touchline.outbound.send.tasks",
    "outbound.sequence_tick": "touchline.outbound.sequences.tasks",
    "worker.ping": "touchline.worker.tasks",
    "worker.send_pending": "touchline.worker.tasks",
    "workspace.forget_ended_logins": "touchline.workspace.tasks",
}


def declare(name: str) -> bool:
    """Declare the job `name` by importing its module; False when no job has that name."""
    module = DECLARED_IN.get(name)
    if module is None:
        return False
    import_module(module)
    return True


def declare_all() -> None:
    """Declare every job: what a process that runs jobs, or schedules them, must do first."""
    for module in sorted(set(DECLARED_IN.values())):
        import_module(module)
