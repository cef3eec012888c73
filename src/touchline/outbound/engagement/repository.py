"""Engagement records as rows: the one made when an email is recorded sent, and what the sequences'
conditions read from them. Imports nothing of the outbox's behaviour, so the outbox can call it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from collections.abc import Sequence as Many
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.models import EmailEngagement, OutboundEmail

# Installs the session hooks that keep the analytics rollup current with every record written.
from touchline.outbound.analytics import rollup as _rollup  # noqa: F401
from touchline.outbound.engagement import rules
from touchline.outbound.sequences.outcomes import Engagement


def first_recipient(row: OutboundEmail) -> tuple[uuid.UUID | None, str]:
    """The contact and address every outcome is credited to: the first enduser in To, else the first
    To address."""
    for recipient in row.recipients:
        if recipient.first_enduser:
            return recipient.contact_id, recipient.address
    to = [r for r in row.recipients if r.kind == "to"]
    return None, to[0].address if to else ""


def ensure_record(session: Session, row: OutboundEmail, sent_at: datetime) -> EmailEngagement:
    """The engagement record of a sent email, made with empty figures if it has none yet."""
    record = session.scalar(select(EmailEngagement).where(EmailEngagement.outbound_email_id == row.id))
    if record is not None:
        return record
    contact_id, address = first_recipient(row)
    empty = rules.outcome(rules.SentEmail(sent_at, row.track_opens, row.track_clicks), [])
    record = EmailEngagement(
        workspace_id=row.workspace_id,
        outbound_email_id=row.id,
        sender_user_id=row.sender_user_id,
        created_by=row.created_by,
        contact_id=contact_id,
        recipient_address=address,
        company_id=row.company_id,
        template_id=row.template_id,
        template_name=row.template_name,
        template_version=row.template_version,
        sequence_id=row.sequence_id,
        sequence_step=row.sequence_step,
        bulk_id=row.bulk_id,
        variant=row.variant,
        track_opens=row.track_opens,
        track_clicks=row.track_clicks,
        sent_at=sent_at,
    )
    write_outcome(record, empty)
    session.add(record)
    session.flush()
    return record


def write_outcome(record: EmailEngagement, outcome: rules.Outcome) -> None:
    for name in rules.Outcome.__slots__:
        setattr(record, name, getattr(outcome, name))


def outcome_of(record: EmailEngagement) -> rules.Outcome:
    return rules.Outcome(**{name: getattr(record, name) for name in rules.Outcome.__slots__})


def recorded_engagement(session: Session, outbound_ids: Many[uuid.UUID]) -> Mapping[uuid.UUID, Engagement]:
    """What the sequences' conditions read: opened and clicked as the record's raw rates say (a
    click or a reply counts as an open), bounced when it bounced (a delay is no bounce)."""
    if not outbound_ids:
        return {}
    rows = session.execute(
        select(
            EmailEngagement.outbound_email_id,
            EmailEngagement.open_rate,
            EmailEngagement.click_rate,
            EmailEngagement.bounce,
        ).where(EmailEngagement.outbound_email_id.in_(list(outbound_ids)))
    )
    return {
        row.outbound_email_id: Engagement(
            opened=row.open_rate == 100, clicked=row.click_rate == 100, bounced=row.bounce is not None
        )
        for row in rows
    }
