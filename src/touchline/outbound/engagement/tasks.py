"""Engagement jobs: refresh records after events are stored, and attribute the replies and delivery
reports that inbound finds (it names them in jobs, never importing outbound)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from touchline.db import session_scope
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB, DeliveryReport
from touchline.outbound.engagement import REFRESH_JOB, service
from touchline.worker import JobContext, job


@job(REFRESH_JOB)
def refresh_engagement(context: JobContext, outbound_ids: list[str]) -> None:
    """Recompute the records of these sent emails from all their events, in one transaction."""
    with session_scope(context.sessions) as session:
        service.refresh_and_tell(session, [uuid.UUID(one) for one in outbound_ids])


@job(STORED_JOB)
def attribute_replies(context: JobContext, workspace_id: str, email_ids: list[str]) -> None:
    """Replies and automatic replies among newly stored emails, recorded on the emails they answer."""
    with session_scope(context.sessions) as session:
        touched = service.record_replies(
            session, uuid.UUID(workspace_id), [uuid.UUID(one) for one in email_ids], datetime.now(UTC)
        )
        service.refresh_and_tell(session, touched)


@job(DELIVERY_REPORT_JOB)
def attribute_delivery_report(context: JobContext, workspace_id: str, report: dict[str, object]) -> None:
    """A bounce or delay recorded on the email it returns; a hard bounce marks the address undeliverable."""
    with session_scope(context.sessions) as session:
        bounced = service.record_bounce(
            session, uuid.UUID(workspace_id), DeliveryReport.from_json(report), datetime.now(UTC)
        )
        if bounced is not None:
            service.refresh_and_tell(session, [bounced])
