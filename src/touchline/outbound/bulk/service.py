"""Bulk sends: plan (who the filters select, who is skipped and why), start, queue in chunks, progress.

One email per enduser (mode `each`, personalised) or one email to all (mode `one`, at most
MAX_RECIPIENTS a message). Every email is made by the outbox's own parts (From rules, route, row
and message checks in touchline.outbound.send.service), decided once per distinct company and
sender instead of once per email, and carries the idempotency key `bulk:<bulk id>:<contact id>`
(`bulk:<bulk id>:chunk<n>` in mode one), so queueing again after a crash makes nothing twice.

Takes a session; may flush, never commits (the queueing job commits each chunk).
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, joinedload

from touchline.config import Settings
from touchline.inbound.store.bulk import DriverRows, table_of
from touchline.kit.addresses import normalise_address
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError, NotFoundError
from touchline.models import (
    BulkSend,
    BulkSkip,
    Company,
    Contact,
    Experiment,
    OutboundEmail,
    OutboundRecipient,
    Template,
    User,
)
from touchline.outbound import bulk as bulk_sends
from touchline.outbound import repository
from touchline.outbound.bulk import rules
from touchline.outbound.bulk.rules import Mode
from touchline.outbound.compose.filters import FieldFilter, matches_all, parse_filters
from touchline.outbound.compose.merge import MergeContext, SenderFields
from touchline.outbound.compose.senders import ACCOUNT_OWNER
from touchline.outbound.compose.templates import CompiledTemplate, RenderFailure, TemplateInvalidError, render
from touchline.outbound.experiments import service as experiments
from touchline.outbound.send import service as outbox
from touchline.outbound.templates import service as templates
from touchline.outbound.unsubscribe.service import UnsubscribeLinks
from touchline.worker import enqueue
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

QUEUE_JOB: Final = bulk_sends.QUEUE_JOB
CHUNK_SIZE: Final = 1000
"""Emails made per transaction: progress shows after each, and a stopped job resumes after the last.
Each commit has a fixed cost (the commit, settling the delivery jobs' outbox rows, the lookup of
what was made before): 1,000 spent about 0.1 s less CPU than 500 for 10,000 emails (bench/bulk)."""
STALLED_AFTER: Final = timedelta(minutes=5)
"""A bulk send still `queueing` with no chunk committed for this long lost its job (the worker or the
command queueing it died): its queueing job is sent again, and goes on after the last chunk."""
QUEUEING, QUEUED, REFUSED = "queueing", "queued", "refused"


class BulkRefused(outbox.SendRefused):
    """Nothing was queued for this bulk send, and this says why."""


@dataclass(frozen=True)
class BulkRequest:
    sender: str
    """An address or `account-owner` (each enduser's company's owner)."""
    template: str | None = None
    """A stored template's name (or give template_id)."""
    template_id: uuid.UUID | None = None
    mode: Mode = "each"
    filters: Sequence[str] = ()
    track_opens: bool | None = None
    """None: the template's switch."""
    track_clicks: bool | None = None
    variants: Sequence[str] = ()
    """Names of further templates to A/B test against `template` (the control, A); mode each only."""
    metric: str = "reply_rate"
    test_share: float = 0.2
    """The share of the audience in the A/B test's first batch; the rest get the winner."""
    test_days: int = 7
    """Days after which an undecided A/B test keeps the control."""
    contact_ids: Sequence[uuid.UUID] | None = None
    """A cohort (who did not reply to a send-out, ...): only these endusers; None: every one the
    filters select."""


@dataclass(frozen=True)
class Skip:
    contact_id: uuid.UUID
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Enduser:
    """What a bulk send reads of a contact besides its merge fields, as plain columns: a bulk send
    reads thousands, and loading each as an ORM entity (with its company) cost more than the rest of
    selecting."""

    id: uuid.UUID
    name: str
    company_id: uuid.UUID | None
    unsubscribed_at: datetime | None
    undeliverable_at: datetime | None
    undeliverable_reason: str | None


@dataclass(frozen=True)
class _Selected:
    contact: _Enduser
    company: Company | None
    context: MergeContext
    address: str


@dataclass
class Plan:
    """What a bulk send would do now: the endusers the filters select, those that get an email (with
    its From route and content) and those skipped with the reason."""

    template: Template
    mode: Mode
    filters: tuple[str, ...]
    sender: str
    recipients: int = 0
    emails: list[_Email] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    waiting: int = 0
    """Endusers waiting for the A/B test's winner (outside its first batch)."""

    @property
    def queued(self) -> int:
        return sum(len(email.to) for email in self.emails)


@dataclass(frozen=True)
class _Email:
    key: str
    """What makes its idempotency key unique within the bulk send: a contact id or a chunk index."""
    to: tuple[_Selected, ...]
    route: outbox.Route
    content: outbox.Content
    company: Company | None
    variant: str = ""
    """The A/B test's variant label it was made from, if any."""


# --- reading the request -------------------------------------------------------------------------


def _template(session: Session, actor: Actor, request: BulkRequest) -> Template:
    if request.template_id is not None:
        return templates.get_template(session, actor, request.template_id)
    if not request.template:
        raise BulkRefused("choose a template to send")
    try:
        return templates.template_named(session, actor, request.template)
    except NotFoundError as error:
        raise BulkRefused(str(error)) from None


def _mode(raw: str) -> Mode:
    for mode in rules.MODES:
        if raw == mode:
            return mode
    raise BulkRefused(f"{raw!r} is not a mode: use each (one email per enduser) or one (one email to all)")


def _filters(texts: Sequence[str]) -> tuple[tuple[str, ...], tuple[FieldFilter, ...]]:
    written = tuple(text.strip() for text in texts if text.strip())
    return written, parse_filters(written)  # FilterError says how to write one


def _check_mode(template: Template, mode: Mode, settings: Settings) -> None:
    problem = rules.unsubscribe_link_problem(settings.base_url, mode)
    if problem is not None:
        raise BulkRefused(problem)
    if mode == "one" and rules.reads_enduser_fields(templates.as_email_template(template)):
        raise BulkRefused(
            f"template {template.name!r} reads enduser fields, so it cannot be one email to all; "
            "send it in mode each (one personalised email per enduser) or use a template without enduser.*"
        )


# --- selecting -----------------------------------------------------------------------------------


def _selected(
    session: Session,
    actor: Actor,
    conditions: Sequence[FieldFilter],
    sender: User,
    only: Sequence[uuid.UUID] | None = None,
) -> list[_Selected]:
    """Every contact of the workspace (of `only`, when given) whose merge fields pass all filters,
    ordered by address.
    Read as plain columns; the companies (with their owners, whom Account Owner sends as) are
    loaded once."""
    companies = {
        company.id: company
        for company in session.scalars(
            select(Company)
            .where(Company.workspace_id == actor.workspace_id)
            .options(joinedload(Company.account_owner))
        ).unique()
    }
    rows = session.execute(
        select(
            Contact.id,
            Contact.email,
            Contact.name,
            Contact.custom_fields,
            Contact.company_id,
            Contact.unsubscribed_at,
            Contact.undeliverable_at,
            Contact.undeliverable_reason,
        )
        .where(
            Contact.workspace_id == actor.workspace_id,
            *([Contact.id.in_(list(only))] if only is not None else []),
        )
        .order_by(Contact.email, Contact.id)
    ).all()
    contexts = repository.contexts_of(session, actor, rows, sender)
    selected = []
    for row in rows:
        context = contexts[row.id]
        if matches_all(conditions, context):
            enduser = _Enduser(
                row.id,
                row.name,
                row.company_id,
                row.unsubscribed_at,
                row.undeliverable_at,
                row.undeliverable_reason,
            )
            company = companies.get(row.company_id) if row.company_id is not None else None
            selected.append(_Selected(enduser, company, context, row.email))
    return selected


class _Routes:
    """The From route of each email, decided by the outbox's rules once per distinct company (when
    sent as the account owner) or once for the whole send; a refusal is the reason to skip."""

    def __init__(self, session: Session, actor: Actor, sender: str, settings: Settings) -> None:
        self._session, self._actor, self._sender, self._settings = session, actor, sender, settings
        self._cache: dict[uuid.UUID | None, outbox.Route | str] = {}
        self._senders: dict[uuid.UUID, SenderFields] = {}

    @property
    def per_company(self) -> bool:
        return self._sender.strip().lower() == ACCOUNT_OWNER

    def route(self, company: Company | None) -> outbox.Route | str:
        key = company.id if company is not None and self.per_company else None
        if key not in self._cache:
            try:
                choice = outbox.decide_from(self._session, self._actor, self._sender, company)
                self._cache[key] = outbox.route_for(
                    self._session, self._actor, choice, company, self._settings
                )
            except outbox.SendRefused as error:
                if not self.per_company:
                    raise BulkRefused(str(error)) from None
                self._cache[key] = str(error)
        return self._cache[key]

    def sender_fields(self, user: User) -> SenderFields:
        if user.id not in self._senders:
            self._senders[user.id] = repository.sender_fields(user)
        return self._senders[user.id]


def _compiled(template: Template) -> CompiledTemplate:
    """Compiled once per bulk send; it was checked when saved, so this fails only if fields changed."""
    try:
        return templates.compiled(template)
    except TemplateInvalidError as error:
        raise BulkRefused(f"template {template.name!r} cannot be used: {error}") from None


def _content(template: Template, compiled: CompiledTemplate, context: MergeContext) -> outbox.Content | str:
    outcome = render(compiled, context)
    if isinstance(outcome, RenderFailure):
        return rules.render_skip_reason(outcome.missing_fields, str(outcome))
    try:
        return outbox.rendered_content(template, outcome, context)
    except outbox.SendRefused as error:
        return str(error)


def plan(
    session: Session,
    actor: Actor,
    request: BulkRequest,
    *,
    settings: Settings,
    experiment: Experiment | None = None,
) -> Plan:
    """Who the bulk send selects and what each gets, without storing anything (the dry run). With an
    A/B test, each enduser gets their variant's template, or waits for the winner."""
    composer_id = outbox.composer_of(actor)
    mode = _mode(request.mode)
    written, conditions = _filters(request.filters)
    template = _template(session, actor, request)
    _check_mode(template, mode, settings)
    composer = workspace_service.get_user(session, actor, composer_id)
    selected = _selected(session, actor, conditions, composer, request.contact_ids)
    routes = _routes(session, actor, request.sender, settings, selected)
    result = Plan(template, mode, written, request.sender, recipients=len(selected))
    compiled = _compiled(template)
    sendable: list[tuple[_Selected, outbox.Route]] = []
    for one in selected:
        reason = rules.skip_reason(
            one.address, one.contact.unsubscribed_at, outbox.undeliverable_reason(one.contact)
        )
        route = routes.route(one.company) if reason is None else reason
        if isinstance(route, str):
            result.skipped.append(Skip(one.contact.id, one.address, reason or route))
            continue
        # Made directly, not by dataclasses.replace: its look at every field, per enduser, showed.
        sendable.append(
            (_Selected(one.contact, one.company, one.context, normalise_address(one.address)), route)
        )
    if mode == "each":
        variants = _Variants(session, experiment, template, compiled)
        for one, route in sendable:
            if experiment is not None and experiments.waits(experiment, one.contact.id):
                result.waiting += 1
                continue
            label, chosen, chosen_compiled = variants.of(one.contact.id)
            context = MergeContext(
                enduser=one.context.enduser,
                sender=routes.sender_fields(route.user),
                company=one.context.company,
            )
            content = _content(chosen, chosen_compiled, context)
            if isinstance(content, str):
                result.skipped.append(Skip(one.contact.id, one.address, content))
                continue
            result.emails.append(_Email(one.contact.id.hex, (one,), route, content, one.company, label))
        return result
    for index, group in enumerate(rules.chunks(sendable, outbox.MAX_RECIPIENTS)):
        # One email to all: its company (and so Account Owner) is its first recipient's, as for any email.
        first, route = group[0]
        content = _content(
            template, compiled, replace(first.context, sender=routes.sender_fields(route.user))
        )
        if isinstance(content, str):
            result.skipped.extend(Skip(one.contact.id, one.address, content) for one, _ in group)
            continue
        result.emails.append(
            _Email(f"chunk{index}", tuple(one for one, _ in group), route, content, first.company)
        )
    return result


class _Variants:
    """The template each enduser gets: the bulk send's own, or their A/B test variant's (compiled once)."""

    def __init__(
        self, session: Session, experiment: Experiment | None, template: Template, compiled: CompiledTemplate
    ) -> None:
        self._session = session
        self._experiment = experiment
        self._default = ("", template, compiled)
        self._compiled: dict[uuid.UUID, tuple[Template, CompiledTemplate]] = {}

    def of(self, contact_id: uuid.UUID) -> tuple[str, Template, CompiledTemplate]:
        if self._experiment is None:
            return self._default
        variant = experiments.variant_for(self._experiment, contact_id)
        if variant.template_id not in self._compiled:
            template = self._session.get(Template, variant.template_id)
            if template is None:
                raise BulkRefused(f"the A/B test's template {variant.template_name!r} was deleted")
            self._compiled[variant.template_id] = (template, _compiled(template))
        template, compiled = self._compiled[variant.template_id]
        return variant.label, template, compiled


def _routes(
    session: Session, actor: Actor, sender: str, settings: Settings, selected: Sequence[_Selected]
) -> _Routes:
    routes = _Routes(session, actor, sender, settings)
    if not routes.per_company:
        # The From is the same for everyone: a refusal refuses the bulk send before anything is made.
        routes.route(next((one.company for one in selected if one.company), None))
    return routes


def count(session: Session, actor: Actor, filters: Sequence[str]) -> tuple[int, int]:
    """How many endusers the filters select, and how many of them are skipped for their address or
    their unsubscribe (the page's live count; missing fields show in the dry run)."""
    outbox.composer_of(actor)
    _, conditions = _filters(filters)
    assert actor.user_id is not None
    composer = workspace_service.get_user(session, actor, actor.user_id)
    selected = _selected(session, actor, conditions, composer)
    skipped = sum(
        1
        for one in selected
        if rules.skip_reason(
            one.address, one.contact.unsubscribed_at, outbox.undeliverable_reason(one.contact)
        )
    )
    return len(selected), skipped


# --- starting and queueing -----------------------------------------------------------------------


def start(
    session: Session, actor: Actor, request: BulkRequest, *, settings: Settings, run_job: bool = True
) -> BulkSend:
    """Record the bulk send after checking it (refusals raise BulkRefused and store nothing); its
    emails are made by the queueing job (`run_job`), or by the caller through queue_chunks."""
    checked = plan_header(session, actor, request, settings=settings)
    bulk = BulkSend(
        workspace_id=actor.workspace_id,
        created_by=actor.user_id,
        sender_choice=request.sender.strip(),
        template_id=checked.id,
        template_name=checked.name,
        template_version=checked.version,
        mode=_mode(request.mode),
        filters=list(_filters(request.filters)[0]),
        contact_ids=[str(one) for one in request.contact_ids] if request.contact_ids is not None else None,
        status=QUEUEING,
        track_opens=request.track_opens,
        track_clicks=request.track_clicks,
        recipients=0,
        queued=0,
        skipped=0,
    )
    session.add(bulk)
    session.flush()
    if request.variants:
        _start_test(session, actor, request, bulk, checked)
    workspace_service.record_audit(
        session,
        actor,
        "bulk.start",
        "bulk_send",
        bulk.id,
        {"template": checked.name, "mode": bulk.mode, "filters": bulk.filters, "cohort": bulk.contact_ids},
    )
    if run_job:
        enqueue(session, QUEUE_JOB, bulk_id=str(bulk.id))
    return bulk


def _start_test(
    session: Session, actor: Actor, request: BulkRequest, bulk: BulkSend, control: Template
) -> Experiment:
    if bulk.mode != "each":
        raise InvalidInputError("an A/B test needs one email per enduser (mode each)")
    others = [_template(session, actor, BulkRequest(request.sender, name)) for name in request.variants]
    return experiments.create(
        session,
        actor,
        [control, *others],
        name=f"{control.name}: bulk send of {bulk.created_at:%Y-%m-%d %H:%M}",
        metric=request.metric,
        bulk_id=bulk.id,
        test_share=request.test_share,
        ends_at=bulk.created_at + timedelta(days=request.test_days),
    )


def plan_header(session: Session, actor: Actor, request: BulkRequest, *, settings: Settings) -> Template:
    """The checks that refuse a bulk send as a whole (permission, mode, filters, template, From)."""
    composer_id = outbox.composer_of(actor)
    mode = _mode(request.mode)
    _filters(request.filters)
    template = _template(session, actor, request)
    _check_mode(template, mode, settings)
    if request.sender.strip().lower() != ACCOUNT_OWNER:
        choice = outbox.decide_from(session, actor, request.sender, None)
        outbox.route_for(session, actor, choice, None, settings)
    workspace_service.get_user(session, actor, composer_id)
    return template


@dataclass
class Queueing:
    """A bulk send being queued: its plan, and the emails still to make, in chunks."""

    bulk: BulkSend
    actor: Actor
    plan: Plan
    links: UnsubscribeLinks | None = None
    """Signs the emails' unsubscribe links; made with the first chunk."""
    reached: int | None = None
    """Endusers its stored emails reach: counted once, with the first chunk (after a restart, what
    the stopped job had made), then added to as chunks are stored."""
    writers: tuple[DriverRows, DriverRows] | None = None
    """Write the outbound emails' rows and their recipients' rows; made with the first chunk."""


def prepare(session: Session, bulk_id: uuid.UUID, *, settings: Settings) -> Queueing | None:
    """The queueing of a recorded bulk send, acting as the user who started it; None when there is
    nothing to do (already queued or refused). A refusal now (the user lost send_email, the From is
    no longer theirs) marks the bulk send refused with the reason."""
    bulk = session.get(BulkSend, bulk_id)
    if bulk is None or bulk.status != QUEUEING:
        return None
    user = session.get(User, bulk.created_by) if bulk.created_by is not None else None
    if user is None or not user.active:
        bulk.status, bulk.error = REFUSED, "the user who started it is no longer active"
        return None
    actor = workspace_service.actor_for(user)
    request = BulkRequest(
        bulk.sender_choice,
        None,
        bulk.template_id,
        _mode(bulk.mode),
        tuple(bulk.filters),
        bulk.track_opens,
        bulk.track_clicks,
        contact_ids=[uuid.UUID(one) for one in bulk.contact_ids] if bulk.contact_ids is not None else None,
    )
    try:
        planned = plan(
            session, actor, request, settings=settings, experiment=experiments.of_bulk(session, bulk.id)
        )
    except (InvalidInputError, NotFoundError) as error:
        bulk.status, bulk.error = REFUSED, str(error)
        return None
    bulk.recipients = planned.recipients
    _record_skips(session, bulk, planned.skipped)
    return Queueing(bulk, actor, planned)


def _record_skips(session: Session, bulk: BulkSend, skipped: Sequence[Skip]) -> None:
    recorded = set(session.scalars(select(BulkSkip.contact_id).where(BulkSkip.bulk_id == bulk.id)))
    session.add_all(
        BulkSkip(
            workspace_id=bulk.workspace_id,
            bulk_id=bulk.id,
            contact_id=skip.contact_id,
            address=skip.address[:320],
            reason=skip.reason,
        )
        for skip in skipped
        if skip.contact_id not in recorded
    )
    bulk.skipped = len(skipped)
    session.flush()


def email_chunks(queueing: Queueing, size: int = CHUNK_SIZE) -> list[Sequence[_Email]]:
    return list(rules.chunks(queueing.plan.emails, size))


def queue_chunk(
    session: Session,
    queueing: Queueing,
    chunk: Sequence[_Email],
    *,
    box: SecretBox,
    settings: Settings,
    now: datetime,
) -> int:
    """Make the chunk's emails that were not made before (by their idempotency key) and enqueue
    their delivery; returns how many endusers the chunk's emails reach. The rows are written with
    one executemany per table, not one ORM object each."""
    bulk = queueing.bulk
    keys = {email.key: _idempotency_key(bulk.id, email.key) for email in chunk}
    made = set(
        session.scalars(
            select(OutboundEmail.idempotency_key).where(
                OutboundEmail.workspace_id == bulk.workspace_id,
                OutboundEmail.idempotency_key.in_(list(keys.values())),
            )
        )
    )
    if queueing.links is None:
        queueing.links = UnsubscribeLinks(settings.base_url, box, bulk.workspace_id)
    emails: list[dict[str, Any]] = []
    recipients: list[dict[str, Any]] = []
    for email in chunk:
        if keys[email.key] in made:
            continue
        columns, its_recipients = _outbound(queueing, email, keys[email.key], queueing.links, now=now)
        emails.append(columns)
        recipients.extend(its_recipients)
    if queueing.reached is None:
        queueing.reached = _reached(session, bulk.id)
    _store(session, queueing, emails, recipients)
    outbox.enqueue_deliveries(session, [columns["id"] for columns in emails])
    queueing.reached += len(recipients)
    bulk.queued = queueing.reached
    return sum(len(email.to) for email in chunk)


def _store(
    session: Session, queueing: Queueing, emails: list[dict[str, Any]], recipients: list[dict[str, Any]]
) -> None:
    """One statement per table (COPY on PostgreSQL, the driver's executemany elsewhere) on the
    session's connection, in its transaction: SQLAlchemy's conversion of each value through its
    type cost more than the database's own work, so each value is converted once for the dialect
    (`DriverRows`). The rows give every column, created_at and updated_at included."""
    if not emails:
        return
    connection = session.connection()
    if queueing.writers is None:
        queueing.writers = (
            DriverRows(table_of(OutboundEmail), tuple(emails[0]), connection.dialect),
            DriverRows(table_of(OutboundRecipient), tuple(recipients[0]), connection.dialect),
        )
    for writer, rows in zip(queueing.writers, (emails, recipients), strict=True):
        values = operator.itemgetter(*writer.columns)
        writer.write(connection, writer.encoded(map(values, rows)))


def _idempotency_key(bulk_id: uuid.UUID, key: str) -> str:
    return f"bulk:{bulk_id}:{key}"


def _outbound(
    queueing: Queueing, email: _Email, key: str, links: UnsubscribeLinks, *, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The columns of one email and of its recipient rows, checked as the outbox checks any email."""
    bulk = queueing.bulk
    to = [outbox.Recipient(one.address, one.contact.name) for one in email.to]
    personal = queueing.plan.mode == "each"
    draft = outbox.Draft(
        sender=bulk.sender_choice,
        to=to,
        idempotency_key=key,
        template_id=bulk.template_id,
        # One email to several people cannot carry one enduser's unsubscribe link: mode one is sent
        # as a group email of the bulk send (skipping those who unsubscribed all the same).
        kind="bulk" if personal else "personal",
        unsubscribe_url=links.url(email.to[0].contact.id) if personal else None,
        bulk_id=bulk.id,
        track_opens=bulk.track_opens,
        track_clicks=bulk.track_clicks,
    )
    contacts = {one.address: one.contact for one in email.to}
    columns = outbox.outbound_values(
        queueing.actor, draft, email.content, email.route, email.company, now=now
    )
    recipients = outbox.recipient_values(bulk.workspace_id, to, (), contacts)
    columns["message_id"] = outbox.checked_message_id(columns, recipients, now)
    columns["id"] = uuid.uuid4()
    columns["variant"] = email.variant
    columns["created_at"] = columns["updated_at"] = now
    for recipient in recipients:
        recipient["id"] = uuid.uuid4()
        recipient["outbound_email_id"] = columns["id"]
    return columns, recipients


def _reached(session: Session, bulk_id: uuid.UUID) -> int:
    return int(
        session.scalar(
            select(func.count(OutboundRecipient.id))
            .join(OutboundEmail, OutboundEmail.id == OutboundRecipient.outbound_email_id)
            .where(OutboundEmail.bulk_id == bulk_id)
        )
        or 0
    )


def finish(queueing: Queueing, now: datetime) -> None:
    """All made, or the A/B test's first batch made and the rest waiting for its winner."""
    queueing.bulk.status = bulk_sends.TESTING if queueing.plan.waiting else QUEUED
    queueing.bulk.queued_at = now


# --- reading -------------------------------------------------------------------------------------


def _visible(actor: Actor) -> list[ColumnElement[bool]]:
    actor.require(Permission.SEND_EMAIL)
    conditions: list[ColumnElement[bool]] = [BulkSend.workspace_id == actor.workspace_id]
    if not actor.can(Permission.ADMIN_ACCESS):
        conditions.append(BulkSend.created_by == actor.user_id)
    return conditions


def list_bulk_sends(session: Session, actor: Actor, *, limit: int = 200) -> list[BulkSend]:
    """The actor's bulk sends, newest first (every one of the workspace for admins)."""
    return list(
        session.scalars(
            select(BulkSend).where(*_visible(actor)).order_by(BulkSend.created_at.desc()).limit(limit)
        )
    )


def get_bulk_send(session: Session, actor: Actor, bulk_id: uuid.UUID) -> BulkSend:
    bulk = session.scalar(select(BulkSend).where(BulkSend.id == bulk_id, *_visible(actor)))
    if bulk is None:
        raise NotFoundError("bulk send not found")
    return bulk


def skipped_of(session: Session, actor: Actor, bulk_id: uuid.UUID) -> list[BulkSkip]:
    bulk = get_bulk_send(session, actor, bulk_id)
    return list(
        session.scalars(
            select(BulkSkip)
            .where(BulkSkip.bulk_id == bulk.id, BulkSkip.workspace_id == actor.workspace_id)
            .order_by(BulkSkip.address)
        )
    )


@dataclass(frozen=True)
class Progress:
    """Where a bulk send's endusers are: counted per recipient, so mode one counts each of an
    email's recipients. `waiting` are queued behind a sending budget (or a retry); `continues` says
    when the earliest of them goes on."""

    status: str
    recipients: int
    queued: int
    skipped: int
    sent: int
    failed: int
    unknown: int
    waiting: int
    in_queue: int
    continues: str | None
    waiting_reason: str | None


def progress(session: Session, actor: Actor, bulk_id: uuid.UUID, now: datetime) -> Progress:
    bulk = get_bulk_send(session, actor, bulk_id)
    rows = session.execute(
        select(OutboundEmail.status, OutboundEmail.next_attempt_at, OutboundEmail.error, func.count())
        .join(OutboundRecipient, OutboundRecipient.outbound_email_id == OutboundEmail.id)
        .where(OutboundEmail.workspace_id == actor.workspace_id, OutboundEmail.bulk_id == bulk.id)
        .group_by(OutboundEmail.status, OutboundEmail.next_attempt_at, OutboundEmail.error)
    ).all()
    by_status: dict[str, int] = {}
    waiting, earliest, reason = 0, None, None
    for status, next_attempt_at, error, number in rows:
        by_status[status] = by_status.get(status, 0) + number
        if status == outbox.QUEUED and error and next_attempt_at is not None and next_attempt_at > now:
            waiting += number
            if earliest is None or next_attempt_at < earliest:
                earliest, reason = next_attempt_at, error
    in_flight = by_status.get(outbox.QUEUED, 0) + by_status.get(outbox.SENDING, 0)
    return Progress(
        status=bulk.status,
        recipients=bulk.recipients,
        queued=bulk.queued,
        skipped=bulk.skipped,
        sent=by_status.get(outbox.SENT, 0),
        failed=by_status.get(outbox.FAILED, 0),
        unknown=by_status.get(outbox.UNKNOWN, 0),
        waiting=waiting,
        in_queue=in_flight - waiting,
        continues=(
            rules.continues_message(earliest, now, workspace_service.time_zone(session, actor.workspace_id))
            if earliest is not None
            else None
        ),
        waiting_reason=reason,
    )


def resume_stalled(session: Session, now: datetime) -> list[uuid.UUID]:
    """Send the queueing job again for every bulk send whose queueing stopped (see STALLED_AFTER);
    marking them touched, so the next sweep waits for this job before it tries again."""
    stalled = list(
        session.scalars(
            select(BulkSend.id)
            .where(BulkSend.status == QUEUEING, BulkSend.updated_at < now - STALLED_AFTER)
            .with_for_update(skip_locked=True)
        )
    )
    for bulk_id in stalled:
        bulk = session.get_one(BulkSend, bulk_id)
        bulk.updated_at = now
        enqueue(session, QUEUE_JOB, bulk_id=str(bulk_id))
    return stalled
