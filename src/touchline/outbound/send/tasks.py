"""Delivery jobs: one per outbound email, and the every-minute scheduler that finds the due ones.

Retries are not the queue's: the email's row holds when the next attempt may run, and the scheduler
honours it, so a restart loses no delay and a retried job never sends twice (the claim decides).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Mailbox
from touchline.outbound.send import budget, service
from touchline.outbound.send.budget import Reserved
from touchline.outbound.send.contract import Delivered, DeliveryError, MessageSender
from touchline.outbound.send.delivery import VIA_MAILBOX, VIA_RELAY, open_sender
from touchline.outbound.send.limits import NotBefore, Refused
from touchline.worker import JobContext, job

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SenderOpener = Callable[[Mailbox | None, SecretBox, Settings], MessageSender]


def _now() -> datetime:
    return datetime.now(UTC)


def deliver(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    outbound_id: uuid.UUID,
    *,
    clock: Clock = _now,
    opener: SenderOpener | None = None,
) -> str | None:
    """Deliver one outbound email if it is this attempt's to send; returns the status it was left in
    (None: nothing to do)."""
    with session_scope(sessions) as session:
        now = clock()
        held = service.claim(session, outbound_id, now)
        if held is None:
            return None
        mailbox = session.get(Mailbox, held.mailbox_id) if held.mailbox_id else None
        # Room in the sending budget is taken with the claim, so no two workers count the same room.
        room = _reserve(session, held, mailbox, settings, now)
        if isinstance(room, NotBefore):
            return service.postpone(session, held, room.when, room.reason, now)
        if isinstance(room, Refused):
            return service.record_failure(session, held, DeliveryError(room.reason, temporary=False), now)
    return _hand_over(sessions, box, settings, held, mailbox, room, clock, opener)


def _hand_over(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    held: service.Claim,
    mailbox: Mailbox | None,
    room: Reserved | None,
    clock: Clock,
    opener: SenderOpener | None,
) -> str | None:
    try:
        if held.via == VIA_MAILBOX and mailbox is None:
            raise DeliveryError("the mailbox it was to leave through was disconnected", temporary=False)
        if opener is None:
            sender = open_sender(mailbox, box, settings, sessions=sessions)
        else:
            sender = opener(mailbox, box, settings)
    except DeliveryError as error:
        # An earlier attempt may have got through, and without a sender nothing can check it.
        if held.recovering:
            return _record_unknown(sessions, held, clock)
        return _record_failure(sessions, held, error, room, clock)
    try:
        outcome = _attempt(sender, held)
    finally:
        sender.close()
    if isinstance(outcome, Delivered):
        return _record_sent(sessions, held, outcome, clock)
    if isinstance(outcome, DeliveryError):
        return _record_failure(sessions, held, outcome, room, clock)
    return _record_unknown(sessions, held, clock)


def _reserve(
    session: Session, held: service.Claim, mailbox: Mailbox | None, settings: Settings, now: datetime
) -> Reserved | NotBefore | Refused | None:
    """Room for this attempt's message; None when none is taken: an attempt that recovers an earlier
    one's send keeps the room that one took, and a disconnected mailbox sends nothing."""
    if held.recovering:
        return None
    recipients = len(held.outgoing.recipients)
    if held.via == VIA_RELAY:
        return budget.reserve_relay(session, recipients, now, settings)
    if mailbox is None:
        return None
    return budget.reserve(session, mailbox, recipients, now, settings)


def _attempt(sender: MessageSender, held: service.Claim) -> Delivered | DeliveryError | None:
    """What became of one attempt: delivered, failed, or None when it cannot be known whether an
    earlier or this attempt got through. Before any resend, the Sent folder is asked."""
    message_id = held.outgoing.message_id
    if held.recovering:
        found = sender.find_sent(message_id)
        if found is not False:
            return Delivered() if found else None
    try:
        return sender.deliver(held.outgoing)
    except DeliveryError as error:
        if not error.outcome_unknown:
            return error
        found = sender.find_sent(message_id)
        if found is False:
            return error  # not taken after all: retried after the backoff
        return Delivered() if found else None


def _record_sent(
    sessions: sessionmaker[Session], held: service.Claim, delivered: Delivered, clock: Clock
) -> str | None:
    with session_scope(sessions) as session:
        return service.SENT if service.record_sent(session, held, delivered, clock()) else None


def _record_failure(
    sessions: sessionmaker[Session],
    held: service.Claim,
    error: DeliveryError,
    room: Reserved | None,
    clock: Clock,
) -> str | None:
    """The provider did not take the message, so the room it was given goes back to the budget."""
    log.warning("delivery of %s failed: %s", held.outgoing.message_id, error.reason)
    with session_scope(sessions) as session:
        status = service.record_failure(session, held, error, clock())
        if status is not None and room is not None:
            budget.release(session, room)
        return status


def _record_unknown(sessions: sessionmaker[Session], held: service.Claim, clock: Clock) -> str | None:
    reason = (
        "it may have been sent: the process stopped between handing it over and recording the "
        "outcome, and this mailbox's Sent folder cannot be checked; look there before sending it again"
    )
    with session_scope(sessions) as session:
        return service.UNKNOWN if service.record_unknown(session, held, reason, clock()) else None


@job(service.DELIVER_JOB, retries=0)
def deliver_job(context: JobContext, *, outbound_id: str) -> None:
    status = deliver(
        context.sessions, SecretBox(context.settings.secret_keys), context.settings, uuid.UUID(outbound_id)
    )
    if status is not None:
        log.info("outbound %s: %s", outbound_id, status)


@job("outbound.schedule_deliveries", retries=0, every_minutes=1)
def schedule_deliveries(context: JobContext) -> None:
    """Scheduled emails leave within a minute of their time; retries and lost jobs are picked up."""
    with session_scope(context.sessions) as session:
        due = service.due_emails(session, _now())
    for outbound_id in due:
        context.queue.send(service.DELIVER_JOB, outbound_id=str(outbound_id))
