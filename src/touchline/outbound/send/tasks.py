"""Delivery jobs: each delivers a batch of outbound emails in turn; the every-minute scheduler
finds the due ones.

Retries are not the queue's: the email's row holds when the next attempt may run, and the scheduler
honours it, so a restart loses no delay and a retried job never sends twice (the claim decides).
The scheduler also runs when a worker starts: it takes over at once the claims of this host's
processes that are gone (a worker killed mid-send), so a restarted worker does not wait out their
lease.
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.processes import started_of, this_process
from touchline.models import Mailbox
from touchline.outbound.send import budget, recovery, service
from touchline.outbound.send.budget import Reserved
from touchline.outbound.send.contract import Delivered, DeliveryError, HandoverStopped, MessageSender
from touchline.outbound.send.delivery import VIA_MAILBOX, VIA_RELAY, open_sender
from touchline.outbound.send.limits import NotBefore, Refused
from touchline.outbound.track.links import TrackingUrls
from touchline.worker import JobContext, Queue, job

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
        held = service.claim(
            session, outbound_id, now, tracking=TrackingUrls(settings.resolved_tracking_base_url)
        )
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


@dataclass(frozen=True)
class _Unknown:
    """The attempt cannot tell whether the message left; `reason` is what its sender is told."""

    reason: str


@dataclass(frozen=True)
class _Lost:
    """Another attempt took the email before this one handed it over: nothing was sent."""


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
        # An earlier attempt that handed it over may have got through, and without a sender
        # nothing can check it; one that did not hand it over sent nothing.
        if held.recovering and held.handed_over:
            reason = recovery.unknown_reason(None, _kind(held, mailbox))
            return _record_unknown(sessions, held, reason, clock)
        return _record_failure(sessions, held, error, room, clock)
    try:
        outcome = _attempt(sender, held, _kind(held, mailbox), sessions, clock)
    finally:
        sender.close()
    if isinstance(outcome, Delivered):
        return _record_sent(sessions, held, outcome, clock)
    if isinstance(outcome, DeliveryError):
        return _record_failure(sessions, held, outcome, room, clock)
    if isinstance(outcome, _Lost):
        return None
    return _record_unknown(sessions, held, outcome.reason, clock)


def _kind(held: service.Claim, mailbox: Mailbox | None) -> str | None:
    """The way the email leaves as `recovery` names it: the mailbox kind, None for the relay, and
    empty for a mailbox disconnected since."""
    if held.via == VIA_RELAY:
        return None
    return mailbox.provider if mailbox is not None else ""


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


def _settled(
    found: bool | None, decided: recovery.Verdict, provider: str | None
) -> Delivered | _Unknown | None:
    """The outcome `decided` records; None when the verdict is to send (again)."""
    if decided is recovery.Verdict.SENT:
        return Delivered()
    if decided is recovery.Verdict.UNKNOWN:
        return _Unknown(recovery.unknown_reason(found, provider))
    return None


def _attempt(
    sender: MessageSender,
    held: service.Claim,
    provider: str | None,
    sessions: sessionmaker[Session],
    clock: Clock,
) -> Delivered | DeliveryError | _Unknown | _Lost:
    """What became of one attempt: delivered, failed, unknown (it may have left, and nothing can
    tell), or lost to another attempt. Before any resend, the Sent folder is asked, and
    `recovery.verdict` decides; `provider` is the mailbox kind (None: the relay)."""
    message_id = held.outgoing.message_id
    if held.recovering:
        found = sender.find_sent(message_id)
        decided = recovery.verdict(handed_over=held.handed_over, found=found, provider=provider)
        settled = _settled(found, decided, provider)
        if settled is not None:
            return settled

    def handing_over() -> None:
        with session_scope(sessions) as session:
            if not service.record_handover(session, held, clock()):
                raise HandoverStopped("another attempt took this email over")

    try:
        return sender.deliver(held.outgoing, handing_over)
    except HandoverStopped:
        return _Lost()
    except DeliveryError as error:
        if not error.outcome_unknown:
            return error
        found = sender.find_sent(message_id)
        decided = recovery.verdict(handed_over=True, found=found, provider=provider)
        # Verdict SEND: not taken after all, so retried after the backoff.
        return _settled(found, decided, provider) or error


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


def _record_unknown(
    sessions: sessionmaker[Session], held: service.Claim, reason: str, clock: Clock
) -> str | None:
    with session_scope(sessions) as session:
        return service.UNKNOWN if service.record_unknown(session, held, reason, clock()) else None


@job(service.DELIVER_JOB, retries=0)
def deliver_job(
    context: JobContext, *, outbound_ids: Sequence[str] = (), outbound_id: str | None = None
) -> None:
    """Deliver each email of the batch in turn (`outbound_id`: a job queued before batches). One
    that breaks is logged and left to the scheduler, so it does not hold back the rest."""
    box = SecretBox(context.settings.secret_keys)
    for one in [*outbound_ids, *([outbound_id] if outbound_id else [])]:
        try:
            status = deliver(context.sessions, box, context.settings, uuid.UUID(one))
        except Exception:
            log.exception("delivery of outbound %s broke; the scheduler sends it again", one)
            continue
        if status is not None:
            log.info("outbound %s: %s", one, status)


_STARTED: weakref.WeakSet[Queue] = weakref.WeakSet()
"""The queues whose worker has run the scheduler once: its first run is the worker starting."""


@job("outbound.schedule_deliveries", retries=0, every_minutes=1, at_start=True)
def schedule_deliveries(context: JobContext) -> None:
    """Scheduled emails leave within a minute of their time; retries and lost jobs are picked up,
    and so are the emails of this host's processes that died holding them. When the worker starts,
    or after it took over a dead process's claims, every queued email gets a job at once: those of a
    batch whose job died with that process would otherwise wait out the lost-job delay."""
    starting = context.queue not in _STARTED
    _STARTED.add(context.queue)
    with session_scope(context.sessions) as session:
        now = _now()
        abandoned = service.take_over_abandoned(session, this_process(), started_of, now)
        if abandoned:
            log.warning("taking over %d email(s) left sending by a process that is gone", len(abandoned))
        due = service.due_emails(session, now, at_once=starting or bool(abandoned))
    for batch in service.delivery_batches(due):
        context.queue.send(service.DELIVER_JOB, outbound_ids=batch)
