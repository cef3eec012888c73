"""Store kept (or logged) emails: once per workspace, with holders, links, conversation and Last Touch.

A batch of emails is stored with a few statements per kind of row (one look-up of the emails, the
contacts and the thread keys it needs, then multi-row inserts), not a dozen per email: sync, import
and the log address all store through `store_emails`.

Takes a session and never commits; the caller commits the batch together with its sync checkpoint,
so a crash either stores a batch and its checkpoint or neither.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from touchline.db import after_commit, open_transaction
from touchline.inbound.directory import Directory
from touchline.inbound.match import Decision, match
from touchline.inbound.parse import ParsedEmail, header_block
from touchline.inbound.reading import (
    MAX_BODY_CHARS,
    Read,
    Shown,
    Unreadable,
    read_message,
    reason_of,
    shown_of,
    storable,
)
from touchline.inbound.reports.classify import AutomaticReply, classify_bytes, needs_classifying
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB, DeliveryReport
from touchline.inbound.store.bulk import (
    chunks,
    insert_ignoring_duplicates,
    insert_returning_inserted,
    move_forward,
    table_of,
)
from touchline.inbound.store.conversations import ThreadingContended, ToThread, assign_conversations
from touchline.inbound.store.directory import directories, told_in
from touchline.inbound.store.failsafe import database_failed
from touchline.models import (
    Company,
    Contact,
    Email,
    EmailCompany,
    EmailContact,
    EmailHolder,
    QuarantinedMessage,
    Workspace,
)
from touchline.models.versioning import bump_directory_versions
from touchline.worker import enqueue

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Aside = TypeVar("Aside")

MAX_LOG_ENTRIES = 20
"""How many log events (who logged it, when, how) one email's record keeps."""
# How often a batch is stored again when another worker stored the same email or threaded the same
# conversation at the same moment; each attempt sees what the others committed.
CONTENDED_ATTEMPTS = 3


@dataclass(frozen=True)
class Holding:
    """Who holds this copy and where: a synced folder, the log address, or an import."""

    user_id: uuid.UUID
    via: str  # sync | log | import | send
    folder_id: uuid.UUID | None = None
    folder_name: str = ""
    provider_message_id: str | None = None
    provider_thread_id: str | None = None
    provider: str = "imap"


@dataclass(frozen=True)
class Incoming:
    """One email to store: what it is, what the rules decided, and who holds it where."""

    parsed: ParsedEmail
    decision: Decision
    holding: Holding
    suggested_company_ids: tuple[str, ...] = ()
    # The log address's copies: who logged it and how (kept on the email's decision record, the
    # last MAX_LOG_ENTRIES of them), and the forwarded conversation found in it.
    log_entry: Mapping[str, Any] | None = None
    forwarded: Mapping[str, Any] | None = None
    # What the timeline shows of it, when it was made already (by a reader process during sync).
    shown: Shown | None = None
    # Why it is an automatic reply (an out-of-office, ...), as the classifier said; None: a person wrote it.
    automatic: str | None = None


@dataclass(frozen=True)
class Stored:
    email_id: uuid.UUID
    created: bool
    created_contacts: tuple[str, ...]
    unassigned: bool = False


def _timeline_moment(parsed: ParsedEmail) -> datetime:
    """When the email happened, for Last Touch: its Date, but never in the future."""
    now = datetime.now(UTC)
    if parsed.date is None:
        return now
    return min(parsed.date.astimezone(UTC), now)


def _decision_record(decision: Decision) -> dict[str, object]:
    return {
        "action": decision.action,
        "rule": decision.rule,
        "reason": decision.reason,
        "matches": [
            {
                "address": match.address,
                "roles": list(match.roles),
                "outcome": match.outcome,
                "company": match.company,
                "detail": match.detail,
                "created": match.created,
            }
            for match in decision.matches
        ],
    }


def touch_last(
    session: Session, company_ids: Iterable[uuid.UUID], contact_ids: Iterable[uuid.UUID], moment: datetime
) -> None:
    """Move Last Touch forward (never back) for the companies and contacts an email is linked to."""
    _touch_last(session, dict.fromkeys(company_ids, moment), dict.fromkeys(contact_ids, moment))


def _touch_last(
    session: Session, companies: dict[uuid.UUID, datetime], contacts: dict[uuid.UUID, datetime]
) -> None:
    for model, moments in ((Company, companies), (Contact, contacts)):
        move_forward(session, model, "last_touch_at", moments)
        _expire_loaded(session, model, set(moments), ["last_touch_at"])


def _expire_loaded(session: Session, model: type[Any], ids: set[uuid.UUID], attributes: list[str]) -> None:
    """Objects of `ids` this session already holds, which a statement written without the ORM leaves
    stale, are read again on their next use."""
    for instance in list(session.identity_map.values()):
        if isinstance(instance, model) and instance.id in ids:
            session.expire(instance, attributes)


def store_email(
    session: Session,
    workspace_id: uuid.UUID,
    parsed: ParsedEmail,
    decision: Decision,
    holding: Holding,
    *,
    suggested_company_ids: Iterable[str] = (),
) -> Stored:
    """Store `parsed` as `decision` says (keep, or unassigned for the log address) for `holding`."""
    incoming = Incoming(parsed, decision, holding, tuple(suggested_company_ids))
    return store_emails(session, workspace_id, [incoming])[0]


def store_emails(
    session: Session, workspace_id: uuid.UUID, batch: Sequence[Incoming], *, told: Directory | None = None
) -> list[Stored]:
    """Store a batch of kept or logged emails; returns what became of each, in order.

    `told` is the cached directory the batch was decided with, once told about the contacts the
    batch creates: after the commit it stays current instead of being read again.

    Each email is stored once per workspace (by dedup key, within the batch too); every other copy
    adds its holder and links. Runs in a savepoint: when another worker stores the same email or
    threads the same conversation at the same moment, the batch is stored again from what that
    worker committed, so nothing is lost or doubled. The emails stored for the first time are named
    in one `STORED_JOB`, sent when the caller commits.
    """
    for incoming in batch:
        if incoming.decision.action not in {"keep", "unassigned"}:
            raise ValueError(f"only kept or logged mail is stored, not {incoming.decision.action!r}")
    if not batch:
        return []
    for attempt in range(1, CONTENDED_ATTEMPTS + 1):
        try:
            with session.no_autoflush:
                session.flush()  # the caller's pending rows go first, outside the savepoint
                open_transaction(session)  # so that the batch commits with the caller's transaction
                with session.begin_nested():
                    stored = _BatchWriter(session, workspace_id, batch, told).write()
                    new_ids = list(dict.fromkeys(str(one.email_id) for one in stored if one.created))
                    if new_ids:
                        # Engagement finds replies among newly stored mail; it runs once this batch
                        # commits. Named inside the savepoint: should that fail, nothing of the
                        # batch stays behind to be stored again one by one, or set aside though kept.
                        enqueue(session, STORED_JOB, workspace_id=str(workspace_id), email_ids=new_ids)
            return stored
        except (_EmailContended, ThreadingContended) as contended:
            if attempt == CONTENDED_ATTEMPTS:
                raise
            log.info("storing the batch again: %s", contended)
    raise AssertionError("unreachable")


class _EmailContended(Exception):
    """Another worker inserted one of this batch's emails between the look-up and the insert."""


def _key(parsed: ParsedEmail) -> str:
    return parsed.dedup_key[:998]


@dataclass
class _Email:
    """One distinct email of the batch and every copy of it the batch holds."""

    copies: list[int]
    stored_id: uuid.UUID | None = None  # set when it was stored before this batch
    unassigned: bool = False
    logged: bool = False
    new_id: uuid.UUID | None = None

    @property
    def id(self) -> uuid.UUID:
        found = self.stored_id or self.new_id
        assert found is not None
        return found


@dataclass
class _Links:
    companies: set[uuid.UUID] = field(default_factory=set)
    contacts: set[uuid.UUID] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.companies or self.contacts)


class _BatchWriter:
    def __init__(
        self,
        session: Session,
        workspace_id: uuid.UUID,
        batch: Sequence[Incoming],
        told: Directory | None = None,
    ) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.batch = batch
        self.told = told
        self.emails: dict[str, _Email] = {}
        for index, incoming in enumerate(batch):
            self.emails.setdefault(_key(incoming.parsed), _Email([])).copies.append(index)

    def write(self) -> list[Stored]:
        self._find_stored()
        live = self._live_companies(
            {
                company
                for incoming in self.batch
                for company in (
                    *incoming.decision.companies,
                    *(new.company for new in incoming.decision.created_contacts),
                )
            }
        )
        contacts, created_contacts = self._contacts(live)
        links = self._links(contacts, live)
        self._insert_new(links)
        self._update_stored(links)
        self._add_holders()
        self._add_links(links)
        self._touch_last(links)

        claimed: set[str] = set()
        stored = []
        for index, incoming in enumerate(self.batch):
            email = self.emails[_key(incoming.parsed)]
            mine = tuple(
                new.email
                for new in incoming.decision.created_contacts
                if new.email in created_contacts and new.email not in claimed
            )
            claimed.update(mine)
            created = email.new_id is not None and email.copies[0] == index
            stored.append(Stored(email.id, created, mine, unassigned=email.unassigned))
        return stored

    # --- look-ups --------------------------------------------------------------------------------

    def _stored_emails(self, keys: Iterable[str]) -> dict[str, tuple[uuid.UUID, bool, bool]]:
        found: dict[str, tuple[uuid.UUID, bool, bool]] = {}
        for part in chunks(sorted(keys)):
            for email_id, key, unassigned, logged in self.session.execute(
                select(Email.id, Email.dedup_key, Email.unassigned, Email.logged).where(
                    Email.workspace_id == self.workspace_id, Email.dedup_key.in_(part)
                )
            ).all():
                found[key] = (email_id, unassigned, logged)
        return found

    def _find_stored(self) -> None:
        for key, (email_id, unassigned, logged) in self._stored_emails(self.emails).items():
            email = self.emails[key]
            email.stored_id, email.unassigned, email.logged = email_id, unassigned, logged

    def _live_companies(self, ids: Iterable[str]) -> set[uuid.UUID]:
        live: set[uuid.UUID] = set()
        for part in chunks(sorted({uuid.UUID(value) for value in ids})):
            live.update(
                self.session.scalars(
                    select(Company.id).where(Company.workspace_id == self.workspace_id, Company.id.in_(part))
                )
            )
        return live

    def _contact_rows(self, addresses: Iterable[str]) -> dict[str, tuple[uuid.UUID, uuid.UUID | None]]:
        rows: dict[str, tuple[uuid.UUID, uuid.UUID | None]] = {}
        for part in chunks(sorted(addresses)):
            for contact_id, email, company_id in self.session.execute(
                select(Contact.id, Contact.email, Contact.company_id).where(
                    Contact.workspace_id == self.workspace_id, Contact.email.in_(part)
                )
            ).all():
                rows[email] = (contact_id, company_id)
        return rows

    def _contacts(
        self, live: set[uuid.UUID]
    ) -> tuple[dict[str, tuple[uuid.UUID, uuid.UUID | None]], set[str]]:
        """Every contact the batch links to, as (id, company id) by address, creating the new ones
        (rule 5); and the addresses this batch created."""
        addresses = {
            address
            for incoming in self.batch
            for address in (
                *incoming.decision.contacts,
                *(new.email for new in incoming.decision.created_contacts),
            )
        }
        rows = self._contact_rows(addresses)
        new_contacts = {
            new.email: new
            for incoming in self.batch
            for new in incoming.decision.created_contacts
            if new.email not in rows
        }
        if not new_contacts:
            return rows, set()
        planned: dict[str, dict[str, Any]] = {
            address: {
                "id": uuid.uuid4(),
                "workspace_id": self.workspace_id,
                "email": address,
                "name": storable(new.name)[:200],
                "company_id": company if (company := uuid.UUID(new.company)) in live else None,
                "custom_fields": {},
            }
            for address, new in new_contacts.items()
        }
        # Another worker may create the same contact at the same moment: theirs is used then.
        created = insert_returning_inserted(self.session, Contact, list(planned.values()), "email")
        rows.update(
            (address, (row["id"], row["company_id"]))
            for address, row in planned.items()
            if address in created
        )
        rows.update(self._contact_rows([address for address in planned if address not in created]))
        if created:
            bump_directory_versions(self.session, {self.workspace_id})
            if self.told is not None:
                version = self.session.scalar(
                    select(Workspace.directory_version).where(Workspace.id == self.workspace_id)
                )
                if version is not None:
                    after_commit(
                        self.session, partial(directories.advanced, self.workspace_id, version, self.told)
                    )
        return rows, created

    def _links(
        self, contacts: dict[str, tuple[uuid.UUID, uuid.UUID | None]], live: set[uuid.UUID]
    ) -> list[_Links]:
        """Each copy's companies and contacts; a contact's company counts as linked too."""
        links = []
        for incoming in self.batch:
            decision = incoming.decision
            linked = _Links(companies={uuid.UUID(company) for company in decision.companies} & live)
            for address in (*decision.contacts, *(new.email for new in decision.created_contacts)):
                if address in contacts:
                    contact_id, company_id = contacts[address]
                    linked.contacts.add(contact_id)
                    if company_id is not None:
                        linked.companies.add(company_id)
            links.append(linked)
        return links

    # --- writes ----------------------------------------------------------------------------------

    def _insert_new(self, links: list[_Links]) -> None:
        new = {key: email for key, email in self.emails.items() if email.stored_id is None}
        if not new:
            return
        # Logged mail is "not shown in chains" (SPEC §4); synced and imported mail is threaded.
        threaded = [email for email in new.values() if self.batch[email.copies[0]].holding.via != "log"]
        placed = assign_conversations(
            self.session,
            self.workspace_id,
            [
                ToThread(
                    self.batch[email.copies[0]].parsed,
                    self.batch[email.copies[0]].holding.provider_thread_id,
                    self.batch[email.copies[0]].holding.provider,
                )
                for email in threaded
            ],
        )
        conversations = {
            id(email): conversation for email, conversation in zip(threaded, placed, strict=True)
        }
        rows = []
        for key, email in new.items():
            first = self.batch[email.copies[0]]
            email.new_id = uuid.uuid4()
            # The first copy creates the email; the batch's other copies count as if they came after.
            email.logged = any(self.batch[index].holding.via == "log" for index in email.copies)
            email.unassigned = first.holding.via == "log" and not any(links[i] for i in email.copies)
            copies = [self.batch[index] for index in email.copies]
            rows.append(
                _email_row(self.workspace_id, key, email, first, conversations.get(id(email)), copies)
            )
        inserted = insert_returning_inserted(self.session, Email, rows, "id")
        if len(inserted) != len(rows):
            raise _EmailContended("another worker stored the same email at the same moment")

    def _update_stored(self, links: list[_Links]) -> None:
        """Copies of emails stored before: now logged, no longer unassigned once linked, and the log
        events of this batch's copies added to their records."""
        now_logged: set[uuid.UUID] = set()
        now_assigned: set[uuid.UUID] = set()
        logged_again: dict[uuid.UUID, list[Incoming]] = {}
        for email in self.emails.values():
            if email.stored_id is None:
                continue
            if not email.logged and any(self.batch[i].holding.via == "log" for i in email.copies):
                now_logged.add(email.stored_id)
            if email.unassigned and any(links[i] for i in email.copies):
                now_assigned.add(email.stored_id)
                email.unassigned = False
            copies = [self.batch[i] for i in email.copies if self.batch[i].log_entry is not None]
            if copies:
                logged_again[email.stored_id] = copies
        for ids, column, value in ((now_logged, "logged", True), (now_assigned, "unassigned", False)):
            if ids:
                self.session.execute(
                    update(Email)
                    .where(Email.workspace_id == self.workspace_id, Email.id.in_(ids))
                    .values({column: value})
                    .execution_options(synchronize_session=False)
                )
                _expire_loaded(self.session, Email, ids, [column])
        if logged_again:
            self._add_log_entries(logged_again)

    def _add_log_entries(self, copies: dict[uuid.UUID, list[Incoming]]) -> None:
        records: dict[uuid.UUID, dict[str, Any] | None] = dict(
            self.session.execute(select(Email.id, Email.decision).where(Email.id.in_(copies))).all()
        )
        table = table_of(Email)
        self.session.execute(
            update(table).where(table.c.id == bindparam("email_id")).values(decision=bindparam("record")),
            [
                {"email_id": email_id, "record": _with_log(dict(records.get(email_id) or {}), incoming)}
                for email_id, incoming in copies.items()
            ],
        )
        _expire_loaded(self.session, Email, set(copies), ["decision"])

    def _add_holders(self) -> None:
        stored_ids = [email.stored_id for email in self.emails.values() if email.stored_id is not None]
        held: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None, str], tuple[uuid.UUID, str | None]] = {}
        for part in chunks(stored_ids):
            for holder_id, email_id, user_id, folder_id, via, provider_id in self.session.execute(
                select(
                    EmailHolder.id,
                    EmailHolder.email_id,
                    EmailHolder.user_id,
                    EmailHolder.folder_id,
                    EmailHolder.via,
                    EmailHolder.provider_message_id,
                ).where(EmailHolder.email_id.in_(part))
            ).all():
                held[(email_id, user_id, folder_id, via)] = (holder_id, provider_id)
        rows: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None, str], dict[str, Any]] = {}
        moved: dict[uuid.UUID, str] = {}
        for incoming in self.batch:
            holding = incoming.holding
            email_id = self.emails[_key(incoming.parsed)].id
            place = (email_id, holding.user_id, holding.folder_id, holding.via)
            if place in held:
                holder_id, provider_id = held[place]
                if holding.provider_message_id and provider_id != holding.provider_message_id:
                    moved[holder_id] = holding.provider_message_id
                continue
            if place in rows:
                if holding.provider_message_id:
                    rows[place]["provider_message_id"] = holding.provider_message_id
                continue
            rows[place] = {
                "id": uuid.uuid4(),
                "workspace_id": self.workspace_id,
                "email_id": email_id,
                "user_id": holding.user_id,
                "via": holding.via,
                "folder_id": holding.folder_id,
                "folder_name": holding.folder_name,
                "provider_message_id": holding.provider_message_id,
            }
        insert_ignoring_duplicates(self.session, EmailHolder, list(rows.values()))
        if moved:
            table = table_of(EmailHolder)
            self.session.execute(
                update(table)
                .where(table.c.id == bindparam("holder_id"))
                .values(provider_message_id=bindparam("provider_id")),
                [{"holder_id": holder, "provider_id": provider_id} for holder, provider_id in moved.items()],
            )
            _expire_loaded(self.session, EmailHolder, set(moved), ["provider_message_id"])
        _expire_loaded(self.session, Email, set(stored_ids), ["holders"])

    def _add_links(self, links: list[_Links]) -> None:
        stored_ids = [email.stored_id for email in self.emails.values() if email.stored_id is not None]
        known_companies: set[tuple[uuid.UUID, uuid.UUID]] = set()
        known_contacts: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for part in chunks(stored_ids):
            known_companies.update(
                self.session.execute(
                    select(EmailCompany.email_id, EmailCompany.company_id).where(
                        EmailCompany.email_id.in_(part)
                    )
                ).all()
            )
            known_contacts.update(
                self.session.execute(
                    select(EmailContact.email_id, EmailContact.contact_id).where(
                        EmailContact.email_id.in_(part)
                    )
                ).all()
            )
        companies: set[tuple[uuid.UUID, uuid.UUID]] = set()
        contacts: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for incoming, linked in zip(self.batch, links, strict=True):
            email_id = self.emails[_key(incoming.parsed)].id
            companies.update((email_id, company) for company in linked.companies)
            contacts.update((email_id, contact) for contact in linked.contacts)
        insert_ignoring_duplicates(
            self.session,
            EmailCompany,
            [{"email_id": e, "company_id": c} for e, c in sorted(companies - known_companies)],
        )
        insert_ignoring_duplicates(
            self.session,
            EmailContact,
            [{"email_id": e, "contact_id": c} for e, c in sorted(contacts - known_contacts)],
        )

    def _touch_last(self, links: list[_Links]) -> None:
        companies: dict[uuid.UUID, datetime] = {}
        contacts: dict[uuid.UUID, datetime] = {}
        for incoming, linked in zip(self.batch, links, strict=True):
            moment = _timeline_moment(incoming.parsed)
            for moments, ids in ((companies, linked.companies), (contacts, linked.contacts)):
                for row_id in ids:
                    if row_id not in moments or moments[row_id] < moment:
                        moments[row_id] = moment
        _touch_last(self.session, companies, contacts)


def _with_log(record: dict[str, Any], copies: Sequence[Incoming]) -> dict[str, Any]:
    """A decision record with the log events of `copies` added, and the forwarded conversation."""
    entries = [dict(incoming.log_entry) for incoming in copies if incoming.log_entry is not None]
    if entries:
        record["log"] = [*list(record.get("log", [])), *entries][-MAX_LOG_ENTRIES:]
    for incoming in copies:
        if incoming.forwarded:
            record["forwarded"] = dict(incoming.forwarded)
    return record


def _email_row(
    workspace_id: uuid.UUID,
    key: str,
    email: _Email,
    first: Incoming,
    conversation_id: uuid.UUID | None,
    logged_copies: Sequence[Incoming],
) -> dict[str, Any]:
    parsed = first.parsed
    shown = first.shown or shown_of(parsed)
    return {
        "id": email.new_id,
        "workspace_id": workspace_id,
        "dedup_key": key,
        "message_id": parsed.message_id[:998] if parsed.message_id else None,
        "subject": storable(parsed.subject),
        "sent_at": parsed.date,
        "from_address": parsed.sender,
        "from_name": storable(parsed.from_[0].name[:500]) if parsed.from_ else "",
        "to_addresses": [a.address for a in parsed.to],
        "cc_addresses": [a.address for a in parsed.cc],
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "snippet": shown.snippet,
        "text_body": storable(parsed.text_body[:MAX_BODY_CHARS]) if parsed.text_body else None,
        "html_body": shown.html_body,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size, "inline": a.inline}
            for a in parsed.attachments
        ],
        "defects": list(parsed.defects),
        "conversation_id": conversation_id,
        "provider_thread_id": first.holding.provider_thread_id,
        "source": first.holding.via,
        "logged": email.logged,
        "unassigned": email.unassigned,
        "suggested_company_ids": list(first.suggested_company_ids),
        "decision": _with_log(_decision_record(first.decision), logged_copies),
        "automatic": first.automatic[:200] if first.automatic else None,
    }


# --- raw messages in, stored or quarantined out -----------------------------------------------------


@dataclass(frozen=True)
class RawIncoming:
    """A raw message with who holds it; `label`, if any, names it in a quarantine reason."""

    raw: bytes
    holding: Holding
    label: str
    # The raw message already read (by a reader process during sync); read here when None.
    read: Read | None = None


@dataclass
class BatchOutcome:
    kept: int = 0
    stored_new: int = 0
    ignored: int = 0
    quarantined: int = 0
    reports: int = 0
    """Delivery reports: not stored; each one that names a returned Message-ID is sent on."""
    unlinked_reports: int = 0
    """Delivery reports that name no returned Message-ID: nothing to link them to."""


def store_raw_messages(
    session: Session,
    workspace_id: uuid.UUID,
    directory: Directory,
    messages: Sequence[RawIncoming],
    *,
    source: str,
    mailbox_id: uuid.UUID | None = None,
) -> BatchOutcome:
    """Parse, decide and store a batch of raw messages; what cannot be stored is quarantined with why.

    Each message is decided on the whole message, with the contacts the earlier ones create already
    known, as if they were stored one by one; then the batch is stored at once. Should that fail,
    each message is stored alone, so one bad message costs only itself.
    """
    outcome = BatchOutcome()
    pending: list[tuple[RawIncoming, Incoming]] = []
    for message in messages:
        read = message.read if message.read is not None else read_message(message.raw)
        if isinstance(read, Unreadable):
            _quarantine_one(session, workspace_id, message, read.reason, source=source, mailbox_id=mailbox_id)
            outcome.quarantined += 1
            continue
        verdict = _verdict(message.raw, read.parsed)
        if isinstance(verdict, DeliveryReport):
            _report(session, workspace_id, verdict, mailbox_id, outcome)
            continue
        try:
            decision = match(read.parsed, directory)
        except Exception as error:
            _quarantine_one(
                session, workspace_id, message, reason_of(error), source=source, mailbox_id=mailbox_id
            )
            outcome.quarantined += 1
            continue
        if not decision.kept:
            outcome.ignored += 1
            continue
        if decision.created_contacts:
            told_in(session, workspace_id)
        for new in decision.created_contacts:
            directory.add_contact(new.email, new.company)
        automatic = verdict.reason if isinstance(verdict, AutomaticReply) else None
        pending.append(
            (message, Incoming(read.parsed, decision, message.holding, shown=read.shown, automatic=automatic))
        )
    if not pending:
        return outcome

    def set_aside(message: RawIncoming, error: Exception) -> None:
        _quarantine_one(
            session, workspace_id, message, reason_of(error), source=source, mailbox_id=mailbox_id
        )
        outcome.quarantined += 1

    results = store_or_set_aside(session, workspace_id, pending, set_aside, told=directory)
    stored = [result for result in results if isinstance(result, Stored)]
    outcome.kept += len(stored)
    outcome.stored_new += sum(result.created for result in stored)
    return outcome


def store_or_set_aside(
    session: Session,
    workspace_id: uuid.UUID,
    items: Sequence[tuple[Item, Incoming]],
    set_aside: Callable[[Item, Exception], Aside],
    *,
    told: Directory | None = None,
) -> list[Stored | Aside]:
    """Store a batch at once; should that fail, each message alone, and one that still fails is set
    aside by `set_aside` (quarantined, with why), so that it costs only itself. The one way sync,
    import and the log address store what they decided to keep. Returns what became of each item.

    A failure of the database itself (`failsafe.database_failed`: a lost connection, a deadlock, a
    lock not granted) says nothing about the messages: it is raised at once with nothing set aside,
    and the caller's transaction rolls back with its checkpoint, to be tried again later.
    """
    if told is not None:
        told_in(session, workspace_id)
    try:
        return list(store_emails(session, workspace_id, [incoming for _, incoming in items], told=told))
    except Exception as error:
        if database_failed(error):
            raise
        log.warning("storing %d messages one by one: %s", len(items), reason_of(error))
    # The directory was told about contacts that may now not be stored: have it read again.
    bump_directory_versions(session, {workspace_id})
    results: list[Stored | Aside] = []
    for item, incoming in items:
        try:
            results.append(store_emails(session, workspace_id, [incoming])[0])
        except Exception as error:
            if database_failed(error):
                raise
            results.append(set_aside(item, error))
    return results


def _verdict(raw: bytes, parsed: ParsedEmail) -> DeliveryReport | AutomaticReply | None:
    """The classifier's verdict on messages whose headers hint at a report or an automatic reply;
    ordinary mail is not parsed again."""
    if not needs_classifying(header_block(raw), parsed.sender, parsed.subject, parsed.auto_reply):
        return None
    try:
        return classify_bytes(raw)
    except Exception as error:  # an unreadable report is stored or ignored like any other message
        log.warning("could not classify a likely report: %s", reason_of(error))
        return None


def _report(
    session: Session,
    workspace_id: uuid.UUID,
    report: DeliveryReport,
    mailbox_id: uuid.UUID | None,
    outcome: BatchOutcome,
) -> None:
    outcome.reports += 1
    if not pass_report_on(session, workspace_id, report, mailbox_id):
        outcome.unlinked_reports += 1


def pass_report_on(
    session: Session, workspace_id: uuid.UUID, report: DeliveryReport, mailbox_id: uuid.UUID | None
) -> bool:
    """A delivery report is not a conversation: it goes to engagement tracking after the commit.
    False for one that names no returned Message-ID: with nothing to link it to, it is only logged."""
    if not report.returned_message_ids:
        log.info("a %s delivery report names no returned Message-ID; nothing to link it to", report.kind)
        return False
    mine = replace(report, mailbox_id=str(mailbox_id) if mailbox_id is not None else None)
    enqueue(session, DELIVERY_REPORT_JOB, workspace_id=str(workspace_id), report=mine.to_json())
    return True


def _quarantine_one(
    session: Session,
    workspace_id: uuid.UUID,
    message: RawIncoming,
    reason: str,
    *,
    source: str,
    mailbox_id: uuid.UUID | None,
) -> None:
    log.warning("quarantined %s: %s", message.label, reason)
    quarantine(
        session,
        workspace_id,
        source=source,
        mailbox_id=mailbox_id,
        provider_message_id=message.holding.provider_message_id,
        reason=f"{message.label}: {reason}" if message.label else reason,
        raw=message.raw,
    )


def quarantine(
    session: Session,
    workspace_id: uuid.UUID,
    *,
    source: str,
    reason: str,
    mailbox_id: uuid.UUID | None = None,
    provider_message_id: str | None = None,
    raw: bytes = b"",
) -> None:
    """Keep a message that could not be processed, with why, so an admin can see it; sync goes on."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0][:4000]
    session.add(
        QuarantinedMessage(
            workspace_id=workspace_id,
            mailbox_id=mailbox_id,
            source=source,
            reason=reason[:4000],
            provider_message_id=provider_message_id,
            headers_excerpt=head.decode("utf-8", "replace"),
        )
    )
