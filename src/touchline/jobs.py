"""Imports every module that declares jobs, so any process that runs or sends them knows them all."""

import touchline.inbound.fetch.tasks
import touchline.inbound.receive.tasks
import touchline.mailboxes.tasks
import touchline.outbound.account_links.tasks
import touchline.outbound.bulk.tasks
import touchline.outbound.engagement.tasks
import touchline.outbound.experiments.tasks
import touchline.outbound.notify.tasks
import touchline.outbound.send.tasks
import touchline.outbound.sequences.tasks
import touchline.worker.tasks
import touchline.workspace.tasks  # noqa: F401

__all__: list[str] = []
