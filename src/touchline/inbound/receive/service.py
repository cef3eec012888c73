"""Log messages sent to a workspace's log address (SPEC §4), whichever way they arrived.

Who may log is one pure decision (`refuse_message` over a workspace's `Loggers`): every header From
address and the envelope sender must be active users, and the message must be authenticated for
its From domain (`authentication.judge`: DKIM, SPF, a trusted ARC seal or relay, or a domain the
workspace relaxed). The SMTP server applies it before its 250 and spools the message (`spool`); the
HTTP channel and the spool's workers then log in the same order:

1. `prepare` (no database): parse the message, look up what authenticates it (which may query
   DNS), make what the timeline shows of it and find the forwarded conversation in it. Each step's
   work is bounded, and all of it is done before a write transaction opens, so that one costly
   message cannot hold the database's write lock.
2. `log_batch` (inside the caller's transaction): the decision again, against the users as they are
   now; then the keep-or-ignore engine links each message (`match_logged`), the forwarded
   participants suggest companies for what stays unassigned, and `store_emails` stores them once
   (deduplicated with synced copies). A refusal is recorded in `inbound_refusals` in the same
   transaction, so an admin sees every refusal, including those made after an SMTP sender's 250
   (stage "spool").

Each outcome carries the SMTP reply for it; the HTTP endpoint maps the same outcomes to statuses.

Also here: the unassigned list's changes (`assign`, `dismiss`) and the HTTP channel's per-workspace
secret (`authenticate_inbound`, `rotate_inbound_secret`). Nothing here commits.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from touchline.db import open_transaction, session_scope
from touchline.inbound import repository as emails
from touchline.inbound.directory import Directory
from touchline.inbound.match import match_logged
from touchline.inbound.parse import ParsedEmail, header_block, parse_message
from touchline.inbound.reading import Shown, shown_of
from touchline.inbound.receive.authentication import NO_EVIDENCE, Evidence, SenderChecks, collect, judge
from touchline.inbound.receive.forwarded import Forwarded, find_forwarded
from touchline.inbound.receive.signatures import DkimResult
from touchline.inbound.reports.classify import (
    AutomaticReply,
    Verdict,
    classify_logged_bytes,
    logged_needs_classifying,
)
from touchline.inbound.reports.model import DeliveryReport
from touchline.inbound.store.directory import directories, told_in
from touchline.inbound.store.failsafe import database_failed
from touchline.inbound.store.service import (
    Holding,
    Incoming,
    Stored,
    pass_report_on,
    quarantine,
    store_or_set_aside,
    touch_last,
)
from touchline.kit.addresses import InvalidAddressError, domain_of, normalise_address
from touchline.kit.crypto import SecretBox, new_token
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.models import (
    Company,
    Contact,
    Email,
    EmailCompany,
    EmailContact,
    Role,
    User,
    WorkspaceSettings,
)
from touchline.models.inbound import InboundRefusal
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission
from touchline.workspace.service import record_audit

log = logging.getLogger(__name__)

Channel = Literal["smtp", "http"]
Outcome = Literal["accepted", "logged", "refused", "deferred", "quarantined"]

MAX_REFUSALS_KEPT = 1000
"""Per workspace; the oldest go first, so a stranger hammering the address cannot fill the disk."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """How a message reached the log address: the channel, MAIL FROM (None when the channel does
    not say) and the client's network address; over HTTP, `client` is the SMTP client's address as
    the posting relay tells it (for SPF), while `remote` is the relay's own."""

    channel: Channel
    sender: str | None = None
    remote: str = ""
    client: str | None = None

    @property
    def peer(self) -> str | None:
        """The address that handed the message to our SMTP server, which trusted networks are about."""
        return self.remote if self.channel == "smtp" else None

    @property
    def spf_client(self) -> str:
        return self.remote if self.channel == "smtp" else (self.client or "")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A received message after the work that needs no database: parsed, its authentication
    looked up, what is shown of it made and the forwarded conversation in it found (None where not
    done, as for a message refused before it was read)."""

    raw: bytes
    head: bytes
    parsed: ParsedEmail
    evidence: Evidence = NO_EVIDENCE
    shown: Shown | None = None
    forwarded: Forwarded | None = None
    verdict: Verdict = None
    """A delivery report it is or forwards, or why it is an automatic reply (`reports.classify`)."""

    @property
    def dkim(self) -> DkimResult:
        return self.evidence.dkim


@dataclass(frozen=True, slots=True)
class LogResult:
    """What happened to one message for one workspace, with the SMTP reply that says so."""

    outcome: Outcome
    code: int
    status: str
    text: str
    reason_code: str = ""
    email_id: uuid.UUID | None = None
    created: bool = False
    unassigned: bool = False
    suggested_company_ids: tuple[str, ...] = field(default=())
    spool_id: uuid.UUID | None = None
    """For "accepted": the spool row the message waits in until a worker logs it."""

    @property
    def smtp_reply(self) -> str:
        # One line: a reply that carried a line break would be read as two replies.
        text = " ".join(self.text.split())
        return f"{self.code} {self.status} {text}"[:510]


def prepare(raw: bytes, envelope: Envelope, checks: SenderChecks) -> Prepared:
    """Everything about a raw message that needs no database; never raises. Run it before opening a
    transaction."""
    head = header_block(raw)
    parsed = parse_message(raw)
    return Prepared(
        raw,
        head,
        parsed,
        authenticate(raw, head, parsed, envelope, checks),
        shown=shown_of(parsed),
        forwarded=find_forwarded(raw),
        verdict=_verdict(raw, parsed),
    )


def _verdict(raw: bytes, parsed: ParsedEmail) -> Verdict:
    if not logged_needs_classifying(raw, parsed.sender, parsed.subject, parsed.auto_reply):
        return None
    try:
        return classify_logged_bytes(raw)
    except Exception:  # an unreadable report is logged like any other message
        log.warning("could not classify a logged message that looks like a report", exc_info=True)
        return None


def authenticate(
    raw: bytes, head: bytes, headers: ParsedEmail, envelope: Envelope, checks: SenderChecks
) -> Evidence:
    """What DNS says about the message's From domains (`authentication.collect`); may wait on DNS."""
    return collect(
        raw,
        head,
        from_domains([address.address for address in headers.from_]),
        peer=envelope.peer,
        spf_client=envelope.spf_client,
        mail_from=envelope.sender,
        checks=checks,
    )


def from_domains(addresses: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(domain_of(address) for address in addresses))


# --- who may log ---------------------------------------------------------------------------------


def resolve_log_address(session: Session, address: str) -> uuid.UUID | None:
    """The workspace whose log address this is (compared case-insensitively), or None."""
    try:
        normal = normalise_address(address)
    except InvalidAddressError:
        return None
    return session.scalar(
        select(WorkspaceSettings.workspace_id).where(WorkspaceSettings.log_address == normal)
    )


@dataclass(frozen=True, slots=True)
class Loggers:
    """What decides who may log into a workspace: its active users by address, the From domains its
    admins let in unauthenticated, and which users' roles may create contacts. Read with `loggers`;
    the checks below are pure, so the SMTP server can apply them to what it read lately and the
    worker to what it reads in its own transaction."""

    users: Mapping[str, uuid.UUID]
    relaxed_domains: frozenset[str] = frozenset()
    editors: frozenset[uuid.UUID] = frozenset()
    """Users whose role has `edit_customers`: only their logged mail creates contacts."""


def loggers(session: Session, workspace_id: uuid.UUID) -> Loggers | None:
    """The workspace's `Loggers`, read once per transaction (a batch checks many messages in one);
    None if the workspace no longer exists."""
    remembered: dict[uuid.UUID, Loggers | None] = session.info.setdefault(_LOGGERS_KEY, {})
    if workspace_id not in remembered:
        settings = session.get(WorkspaceSettings, workspace_id)
        users = session.execute(
            select(User.email, User.id, Role.permissions)
            .join(Role, Role.id == User.role_id)
            .where(User.workspace_id == workspace_id, User.active.is_(True))
        ).all()
        editors = frozenset(
            user_id for _, user_id, permissions in users if Permission.EDIT_CUSTOMERS.value in permissions
        )
        remembered[workspace_id] = (
            None
            if settings is None
            else Loggers(
                {email: user_id for email, user_id, _ in users},
                frozenset(settings.unauthenticated_sender_domains),
                editors,
            )
        )
    return remembered[workspace_id]


_LOGGERS_KEY = "touchline.inbound.loggers"


@event.listens_for(Session, "after_transaction_end")
def _forget_loggers(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_LOGGERS_KEY, None)


def refuse_envelope(who: Loggers, sender: str | None) -> LogResult | None:
    """The refusal for an envelope sender who is not one of `who`'s users; None if it may log."""
    if sender is None:
        return None
    text = sender.strip().strip("<>").strip()
    if not text:
        return _refused(
            "null-sender",
            "a message without an envelope sender (a bounce or automatic notice) cannot be logged",
        )
    try:
        normal = normalise_address(text)
    except InvalidAddressError:
        return _refused("envelope-not-user", f"envelope sender {_safe(text)} is not an email address")
    if normal not in who.users:
        return _refused(
            "envelope-not-user",
            f"envelope sender <{normal}> is not a user of this workspace; only its users may log mail",
        )
    return None


def refuse_message(
    who: Loggers,
    from_addresses: Sequence[str],
    envelope: Envelope,
    evidence: Evidence | None,
    checks: SenderChecks,
) -> LogResult | None:
    """Why a message with these From addresses may not be logged by `who`; None if it may.

    `evidence` None means not looked up yet: authentication is then left to whoever looks it up.
    """
    if not from_addresses:
        no_from = "the message has no readable From address; only users of this workspace may log mail"
        return _refused("no-from", no_from)
    strangers = sorted(set(from_addresses) - who.users.keys())
    if strangers:
        # Every From address must be a user: a second From (or one hidden in a list) is how a
        # stranger would ride in on a colleague's name.
        named = ", ".join(f"<{a}>" for a in strangers)
        return _refused(
            "sender-not-user", f"From {named} is not a user of this workspace; only its users may log mail"
        )
    refusal = refuse_envelope(who, envelope.sender)
    if refusal is not None or evidence is None:
        return refusal
    return _refuse_unauthenticated(who, from_addresses, envelope, evidence, checks)


def _refuse_unauthenticated(
    who: Loggers, from_addresses: Sequence[str], envelope: Envelope, evidence: Evidence, checks: SenderChecks
) -> LogResult | None:
    verdict = judge(from_domains(from_addresses), envelope.peer, evidence, checks, who.relaxed_domains)
    if verdict.authenticated:
        return None
    if verdict.retry:
        return LogResult(
            "deferred",
            451,
            "4.7.5",
            f"could not look up what authenticates the sender just now; try again later ({verdict.reason})",
            reason_code="auth-temperror",
        )
    return LogResult(
        "refused",
        550,
        "5.7.26",
        f"{verdict.reason}; only mail authenticated for its From domain is logged",
        reason_code="not-authenticated",
    )


def record_refusal(
    session: Session,
    workspace_id: uuid.UUID,
    result: LogResult,
    envelope: Envelope,
    *,
    stage: str,
    prepared: Prepared | None = None,
) -> None:
    """Keep what was refused and why for the workspace's admins (the message itself is not kept)."""
    parsed = prepared.parsed if prepared else None
    session.add(
        InboundRefusal(
            workspace_id=workspace_id,
            channel=envelope.channel,
            stage=stage,
            code=result.reason_code[:40],
            reason=result.text[:4000],
            envelope_sender=(envelope.sender or "")[:320] if envelope.sender is not None else None,
            header_from=", ".join(a.address for a in parsed.from_)[:2000] if parsed else "",
            subject=parsed.subject[:2000] if parsed else "",
            message_id=parsed.message_id[:998] if parsed and parsed.message_id else None,
            remote=envelope.remote[:100],
            size=len(prepared.raw) if prepared else None,
            dkim=prepared.dkim.record() if prepared else {},
        )
    )
    session.flush()
    _prune_refusals(session, workspace_id)


def _prune_refusals(session: Session, workspace_id: uuid.UUID) -> None:
    cutoff = session.scalar(
        select(InboundRefusal.created_at)
        .where(InboundRefusal.workspace_id == workspace_id)
        .order_by(InboundRefusal.created_at.desc())
        .offset(MAX_REFUSALS_KEPT)
        .limit(1)
    )
    if cutoff is not None:
        session.execute(
            delete(InboundRefusal).where(
                InboundRefusal.workspace_id == workspace_id, InboundRefusal.created_at <= cutoff
            )
        )


# --- logging -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogJob:
    workspace_id: uuid.UUID
    prepared: Prepared
    envelope: Envelope
    checks: SenderChecks
    stage: str = "data"
    """Where a refusal is recorded as made: "data" while the sender waits, "spool" after its 250."""
    spool_id: uuid.UUID | None = None


def log_prepared(
    session: Session, workspace_id: uuid.UUID, prepared: Prepared, envelope: Envelope, checks: SenderChecks
) -> LogResult:
    """Verify, link and store one prepared message for a workspace; records refusals. Never commits."""
    return log_batch(session, [LogJob(workspace_id, prepared, envelope, checks)])[0]


def log_batch(session: Session, jobs: Sequence[LogJob]) -> list[LogResult]:
    """`log_prepared` for many messages in one transaction: each is verified and decided, then each
    workspace's messages are stored together. A message that fails is quarantined with why, and costs
    only itself; a database that fails (`database_failed`) fails the whole batch. Never commits."""
    results: list[LogResult | None] = [None] * len(jobs)
    to_store: dict[uuid.UUID, list[tuple[int, Incoming]]] = {}
    # Each message is decided in a savepoint; on SQLite one taken before any write would commit on
    # its own, and a refusal it records would stay though the batch failed after it.
    open_transaction(session)
    directories_of: dict[uuid.UUID, Directory] = {}
    for index, job in enumerate(jobs):
        try:
            with session.begin_nested():
                decided = _decide(session, job, directories_of)
        except Exception as error:
            if database_failed(error):
                raise
            results[index] = _quarantined_job(session, job, error)
            continue
        if isinstance(decided, LogResult):
            results[index] = decided
        else:
            to_store.setdefault(job.workspace_id, []).append((index, decided))
    for workspace_id, items in to_store.items():
        pairs = [(jobs[i], item) for i, item in items]
        for index, outcome in _store_logged(session, workspace_id, pairs, directories_of.get(workspace_id)):
            results[items[index][0]] = outcome
    assert all(result is not None for result in results)
    return [result for result in results if result is not None]


def _decide(
    session: Session, job: LogJob, directories_of: dict[uuid.UUID, Directory]
) -> LogResult | Incoming:
    """The refusal for a message that may not be logged (recorded for admins), or what to store."""
    workspace_id, prepared, envelope = job.workspace_id, job.prepared, job.envelope
    settings = session.get(WorkspaceSettings, workspace_id)
    who = loggers(session, workspace_id)
    if settings is None or who is None:
        return NO_WORKSPACE
    parsed = prepared.parsed
    from_addresses = [address.address for address in parsed.from_]
    refusal = refuse_message(who, from_addresses, envelope, prepared.evidence, job.checks)
    if refusal is not None:
        if refusal.outcome == "refused":
            record_refusal(session, workspace_id, refusal, envelope, stage=job.stage, prepared=prepared)
        return refusal
    if isinstance(prepared.verdict, DeliveryReport):
        # A bounce a user forwards: it goes to engagement tracking, never into the customer records.
        linked = pass_report_on(session, workspace_id, prepared.verdict, None)
        return REPORT_PASSED_ON if linked else REPORT_UNLINKED
    directory = directories_of.get(workspace_id)
    if directory is None:
        directory = directories_of[workspace_id] = directories.get(session, workspace_id)
    logger = who.users[from_addresses[0]]
    decision = match_logged(
        parsed,
        directory,
        settings.log_address,
        contacts_blocked_by=None if logger in who.editors else "the sender's role may not edit customers",
    )
    if decision.action == "refuse":
        refusal = _refused(decision.rule, decision.reason)
        record_refusal(session, workspace_id, refusal, envelope, stage=job.stage, prepared=prepared)
        return refusal
    # The batch's later messages see the contacts this one creates, as if stored one by one.
    if decision.created_contacts:
        told_in(session, workspace_id)
    for new in decision.created_contacts:
        directory.add_contact(new.email, new.company)
    # Found by `prepare`: nothing costly runs while the caller's transaction is open.
    found = prepared.forwarded
    forwarded = found if decision.action == "unassigned" and found is not None else Forwarded()
    suggestions = suggest_companies(forwarded.participants, directory)
    return Incoming(
        parsed,
        decision,
        Holding(user_id=logger, via="log"),
        suggested_company_ids=tuple(suggestions),
        log_entry=_log_entry(prepared, envelope, job.spool_id),
        shown=prepared.shown,
        automatic=prepared.verdict.reason if isinstance(prepared.verdict, AutomaticReply) else None,
        forwarded={
            "styles": list(forwarded.styles),
            "participants": list(forwarded.participants),
            "suggested_company_ids": suggestions,
        }
        if forwarded.blocks
        else None,
    )


def _store_logged(
    session: Session,
    workspace_id: uuid.UUID,
    items: list[tuple[LogJob, Incoming]],
    directory: Directory | None,
) -> list[tuple[int, LogResult]]:
    """Store one workspace's logged messages at once; should that fail, each alone."""

    def set_aside(job: LogJob, error: Exception) -> LogResult:
        return _quarantined_job(session, job, error)

    results = store_or_set_aside(session, workspace_id, items, set_aside, told=directory)
    return [
        (index, _logged(result, incoming) if isinstance(result, Stored) else result)
        for index, (result, (_, incoming)) in enumerate(zip(results, items, strict=True))
    ]


def _logged(stored: Stored, incoming: Incoming) -> LogResult:
    where = "unassigned, for a user to assign" if stored.unassigned else "linked to its customers"
    return LogResult(
        outcome="logged",
        code=250,
        status="2.0.0",
        text=f"logged as {stored.email_id} ({where})",
        email_id=stored.email_id,
        created=stored.created,
        unassigned=stored.unassigned,
        suggested_company_ids=incoming.suggested_company_ids,
    )


def _quarantined_job(session: Session, job: LogJob, error: Exception) -> LogResult:
    log.warning("logging a message for workspace %s failed; quarantined", job.workspace_id, exc_info=True)
    return quarantined(session, job.workspace_id, job.prepared.raw, job.envelope, error)


def suggest_companies(participants: tuple[str, ...], directory: Directory) -> list[str]:
    """Companies of the forwarded conversation's external participants, in the order found."""
    found: list[str] = []
    for address in participants:
        standing = directory.standing(address)
        if standing.internal_by is not None:
            continue
        company = standing.contact_company if standing.is_contact else standing.domain_company
        if company is not None and company not in found:
            found.append(company)
    return found


def _log_entry(prepared: Prepared, envelope: Envelope, spool_id: uuid.UUID | None) -> dict[str, Any]:
    """Who logged the email, how, and what its DKIM signatures said, for the email's decision record;
    `accepted_as` is the id the SMTP reply named when the message was accepted."""
    return {
        **({"accepted_as": str(spool_id)} if spool_id is not None else {}),
        "at": datetime.now(UTC).isoformat(),
        "from": prepared.parsed.sender,
        "channel": envelope.channel,
        "envelope_sender": envelope.sender,
        "remote": envelope.remote,
        **({"client": envelope.client} if envelope.client else {}),
        **prepared.evidence.record(),
    }


def quarantined(
    session: Session, workspace_id: uuid.UUID, raw: bytes, envelope: Envelope, error: BaseException
) -> LogResult:
    """Keep a message that failed while being stored, with why, for an admin; the sender is told."""
    reason = f"log address ({envelope.channel}): {type(error).__name__}: {error}"
    quarantine(session, workspace_id, source="log", reason=reason, raw=raw)
    return LogResult(
        "quarantined",
        554,
        "5.6.0",
        "the message could not be logged and was set aside for an admin to look at",
        reason_code="quarantined",
    )


DATABASE_UNAVAILABLE = LogResult(
    "deferred", 451, "4.3.0", "the message could not be stored just now; try again later", "unavailable"
)
"""The database could not be reached or was busy: nothing was stored, and the sender should retry."""


REPORT_PASSED_ON = LogResult(
    "logged", 250, "2.0.0", "a delivery report: passed to engagement tracking, not stored", "delivery-report"
)
REPORT_UNLINKED = LogResult(
    "logged", 250, "2.0.0", "a delivery report that names no sent message: not stored", "delivery-report"
)
NO_WORKSPACE = LogResult("refused", 550, "5.1.1", "this log address no longer exists", "no-workspace")


def too_big(limit: int) -> LogResult:
    return LogResult(
        "refused", 552, "5.3.4", f"message larger than the {limit} bytes this server accepts", "too-big"
    )


def log_message(
    sessions: sessionmaker[Session],
    workspace_id: uuid.UUID,
    raw: bytes,
    envelope: Envelope,
    *,
    max_bytes: int,
    checks: SenderChecks,
) -> LogResult:
    """Prepare, then log in a transaction of its own; a failure while storing is quarantined."""
    if len(raw) > max_bytes:
        return too_big(max_bytes)
    prepared = prepare(raw, envelope, checks)
    try:
        with session_scope(sessions) as session:
            return log_prepared(session, workspace_id, prepared, envelope, checks)
    except Exception as error:
        if database_failed(error):
            return DATABASE_UNAVAILABLE
        try:
            with session_scope(sessions) as session:
                return quarantined(session, workspace_id, raw, envelope, error)
        except Exception:
            return DATABASE_UNAVAILABLE


def _refused(code: str, text: str) -> LogResult:
    return LogResult("refused", 550, "5.7.1", text, reason_code=code)


def _safe(text: str) -> str:
    return repr(text[:200])


# --- the unassigned list -------------------------------------------------------------------------


def assign(
    session: Session,
    actor: Actor,
    email_id: uuid.UUID,
    *,
    company_ids: Iterable[uuid.UUID] = (),
    contact_ids: Iterable[uuid.UUID] = (),
) -> Email:
    """Link a logged email to companies and/or contacts by hand: it leaves the unassigned list,
    shows on their timelines, and moves their Last Touch. A contact's company is linked too."""
    actor.require(Permission.EDIT_CUSTOMERS)
    email = emails.get_email(session, actor, email_id)
    if not email.logged:
        raise ConflictError(
            "only emails sent to the log address are assigned by hand; "
            "synced mail is linked by its participants"
        )
    companies = {company_id: _company(session, actor, company_id) for company_id in company_ids}
    contacts = {contact_id: _contact(session, actor, contact_id) for contact_id in contact_ids}
    if not companies and not contacts:
        raise InvalidInputError("choose at least one company or contact to assign the email to")
    linked_companies = set(companies) | {c.company_id for c in contacts.values() if c.company_id is not None}
    known_companies = set(
        session.scalars(select(EmailCompany.company_id).where(EmailCompany.email_id == email.id))
    )
    known_contacts = set(
        session.scalars(select(EmailContact.contact_id).where(EmailContact.email_id == email.id))
    )
    for company_id in linked_companies - known_companies:
        session.add(EmailCompany(email_id=email.id, company_id=company_id))
    for contact_id in set(contacts) - known_contacts:
        session.add(EmailContact(email_id=email.id, contact_id=contact_id))
    now = datetime.now(UTC)
    moment = min(email.sent_at, now) if email.sent_at is not None else now
    touch_last(session, linked_companies, [c.id for c in contacts.values()], moment)
    names = [c.name for c in companies.values()] + [c.email for c in contacts.values()]
    record = dict(email.decision or {})
    previous = {key: record.get(key) for key in ("action", "rule", "reason")}
    record.update(
        action="keep",
        rule="assigned",
        reason=f"assigned by {actor.label} to {', '.join(names)}",
        assigned=[
            *list(record.get("assigned", [])),
            {
                "at": now.isoformat(),
                "by": actor.label,
                "companies": sorted(str(c) for c in linked_companies),
                "contacts": sorted(c.email for c in contacts.values()),
                "before": previous,
            },
        ],
    )
    email.decision = record
    email.unassigned = False
    record_audit(
        session,
        actor,
        "email.assign",
        "email",
        email.id,
        {
            "companies": sorted(str(c) for c in linked_companies),
            "contacts": sorted(c.email for c in contacts.values()),
        },
    )
    session.flush()
    return email


def dismiss(session: Session, actor: Actor, email_id: uuid.UUID) -> None:
    """Take an email off the unassigned list for good: it is deleted (nothing links to it), and the
    audit log keeps who dismissed what."""
    actor.require(Permission.EDIT_CUSTOMERS)
    email = emails.get_email(session, actor, email_id)
    if not email.unassigned:
        raise ConflictError("only unassigned emails can be dismissed; this one is linked to customers")
    record_audit(
        session,
        actor,
        "email.dismiss",
        "email",
        email.id,
        {"subject": email.subject[:500], "from": email.from_address, "message_id": email.message_id},
    )
    session.delete(email)
    session.flush()


def _company(session: Session, actor: Actor, company_id: uuid.UUID) -> Company:
    try:
        return workspace_service.get_company(session, actor, company_id)
    except NotFoundError:
        raise InvalidInputError(f"company {company_id} not found") from None


def _contact(session: Session, actor: Actor, contact_id: uuid.UUID) -> Contact:
    try:
        return workspace_service.get_contact(session, actor, contact_id)
    except NotFoundError:
        raise InvalidInputError(f"contact {contact_id} not found") from None


# --- the HTTP channel's secret -------------------------------------------------------------------


def authenticate_inbound(session: Session, box: SecretBox, log_address: str, secret: str) -> uuid.UUID | None:
    """The workspace whose log address and inbound secret these are; None for any mismatch."""
    workspace_id = resolve_log_address(session, log_address)
    if workspace_id is None or not secret:
        return None
    settings = session.get(WorkspaceSettings, workspace_id)
    if settings is None:
        return None
    expected = box.decrypt(settings.inbound_secret_encrypted)
    return workspace_id if hmac.compare_digest(expected.encode(), secret.encode()) else None


def rotate_inbound_secret(session: Session, actor: Actor, box: SecretBox) -> str:
    """A new inbound secret; the old one stops working when the transaction commits."""
    settings = workspace_service.get_settings(session, actor)
    actor.require(Permission.ADMIN_ACCESS)
    secret = new_token("tlin")
    settings.inbound_secret_encrypted = box.encrypt(secret)
    record_audit(session, actor, "inbound.rotate_secret", "workspace", actor.workspace_id)
    session.flush()
    return secret
