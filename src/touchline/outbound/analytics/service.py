"""Engagement analytics: the average rates of the Email Engagement records a person may see, grouped
by template, sequence, step, variant, sender, company, enduser or period, and filtered.

The figures are as fresh as the records the engagement refresh leaves: groups the rollup can answer
(see `rollup`) are summed from its day and month rows, which change in the same transaction as the
records; the others are summed from the records themselves. Both give the same numbers. Takes a
session; never commits.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from touchline.kit.addresses import domain_of
from touchline.kit.errors import InvalidInputError
from touchline.models import (
    Company,
    Contact,
    Email,
    EmailCompany,
    EmailContact,
    EmailEngagement,
    Template,
    User,
)
from touchline.models import Sequence as SequenceRow
from touchline.outbound import repository as outbound_repository
from touchline.outbound.analytics import repository, rollup, rules
from touchline.outbound.analytics.repository import DIMENSIONS, Dimension
from touchline.outbound.compose.filters import FieldFilter, matches_all, parse_filters
from touchline.outbound.engagement.service import EngagementFilter, filtered, visible_records
from touchline.workspace.permissions import Actor, Permission
from touchline.workspace.service import internal_domains_of

_CONTACT_CHUNK = 500


@dataclass(frozen=True)
class AnalyticsFilter:
    """Which records count: sent on or after `start` and on or before `end` (UTC days), by a sender,
    from a template, in a sequence or a bulk send, to endusers whose (or whose company's) merge fields
    pass every `where` filter (the bulk send's filter language)."""

    start: date | None = None
    end: date | None = None
    sender: uuid.UUID | None = None
    template: uuid.UUID | None = None
    sequence: uuid.UUID | None = None
    step: int | None = None
    bulk_id: uuid.UUID | None = None
    variant: str | None = None
    where: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    key: str
    """The group's stable id: a UUID, `sequence:step`, the variant, the period's first day, or "" for
    records without one (no template, no sequence, ...)."""
    label: str
    """What people read: the template's, sequence's, company's name, the sender's or enduser's address."""
    counts: rules.Counts
    rates: rules.Rates
    last_sent_at: datetime | None
    last_touch_at: datetime | None = None
    """Companies and endusers: the last email to or from them touchline knows of."""
    emails_in: int | None = None
    """Companies and endusers: the emails on their timeline from outside the team, sent in the date
    range."""
    emails_out: int | None = None
    """Companies and endusers: the emails on their timeline from the team (an address at one of the
    workspace's internal domains: sent through touchline or from a synced mailbox), sent in the date
    range."""
    extra: dict[str, Any] = field(default_factory=dict)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _matching_contacts(
    session: Session, actor: Actor, conditions: tuple[FieldFilter, ...]
) -> list[uuid.UUID]:
    """The workspace's contacts whose enduser and company merge fields pass every filter, read as a
    bulk send reads them."""
    ids = list(session.scalars(select(Contact.id).where(Contact.workspace_id == actor.workspace_id)))
    # Filters name enduser and company fields only, so the sender's fields are never read.
    nobody = User(email="", name="")
    found: list[uuid.UUID] = []
    for start in range(0, len(ids), _CONTACT_CHUNK):
        contexts = outbound_repository.merge_contexts(
            session, actor, ids[start : start + _CONTACT_CHUNK], nobody
        )
        found.extend(
            contact_id for contact_id, context in contexts.items() if matches_all(conditions, context)
        )
    return found


def conditions_of(session: Session, actor: Actor, given: AnalyticsFilter) -> list[ColumnElement[bool]]:
    """The records the actor may see (their own sends; every one for admins) that the filter selects."""
    if given.start is not None and given.end is not None and given.end < given.start:
        raise InvalidInputError("the date range ends before it starts")
    selected = EngagementFilter(
        sender=given.sender,
        template=given.template,
        sequence=given.sequence,
        step=given.step,
        bulk_id=given.bulk_id,
        variant=given.variant,
        sent_after=_day_start(given.start) if given.start is not None else None,
        sent_before=_day_start(given.end + timedelta(days=1)) if given.end is not None else None,
    )
    conditions = [*visible_records(actor), *filtered(selected)]
    written = tuple(text.strip() for text in given.where if text.strip())
    if written:
        conditions.append(
            EmailEngagement.contact_id.in_(_matching_contacts(session, actor, parse_filters(written)))
        )
    return conditions


def _labels(session: Session, actor: Actor, by: Dimension, keys: list[tuple[Any, ...]]) -> dict[Any, str]:
    ids = [key[0] for key in keys if key[0] is not None]
    workspace = actor.workspace_id
    if not ids:
        return {}
    table: Any = {
        "template": Template,
        "sequence": SequenceRow,
        "step": SequenceRow,
        "sender": User,
        "company": Company,
        "enduser": Contact,
    }.get(by)
    if table is None:
        return {}
    name = {
        Template: Template.name,
        SequenceRow: SequenceRow.name,
        User: User.email,
        Company: Company.name,
        Contact: Contact.email,
    }[table]
    rows = session.execute(select(table.id, name).where(table.workspace_id == workspace, table.id.in_(ids)))
    return {row[0]: row[1] or "" for row in rows}


def _last_touches(
    session: Session, actor: Actor, by: Dimension, ids: list[Any]
) -> dict[Any, datetime | None]:
    table: Any = {"company": Company, "enduser": Contact}.get(by)
    if table is None or not ids:
        return {}
    rows = session.execute(
        select(table.id, table.last_touch_at).where(
            table.workspace_id == actor.workspace_id, table.id.in_(ids)
        )
    )
    return {row[0]: row[1] for row in rows}


def _key_text(by: Dimension, key: tuple[Any, ...]) -> str:
    if by == "step":
        sequence, step = key
        return f"{sequence}:{step}" if sequence is not None else ""
    return "" if key[0] is None else str(key[0])


def _rollup_keys(session: Session, actor: Actor, by: str, given: AnalyticsFilter) -> dict[str, Any] | None:
    """The rollup columns that answer the filter's dimension fields when grouped `by`, or None when
    the rollup cannot answer: company or enduser groups or fields, a bulk send, a filter on another
    dimension than the grouping's, or a sender who is no longer a user."""
    if by not in rollup.GROUPINGS or given.bulk_id is not None or any(text.strip() for text in given.where):
        return None
    values = {
        "template": given.template,
        "sequence": given.sequence,
        "step": given.step,
        "variant": given.variant,
    }
    own = {"template": {"template"}, "sequence": {"sequence"}, "step": {"sequence", "step"}}.get(by, {by})
    asked = {name for name, value in values.items() if value is not None}
    if not asked <= own or (given.step is not None and given.step < 0):
        return None
    if given.sender is not None and not rollup.knows_user(session, actor.workspace_id, given.sender):
        return None
    return {rollup.FILTERED[name]: values[name] for name in sorted(asked)}


def _counted(
    session: Session, actor: Actor, by: Dimension, given: AnalyticsFilter, *, exact: bool
) -> list[tuple[tuple[Any, ...], rules.Counts, Any, str | None]]:
    admin = actor.can(Permission.ADMIN_ACCESS)
    keys = None if exact or (not admin and actor.user_id is None) else _rollup_keys(session, actor, by, given)
    if keys is None:
        return repository.grouped_counts(session, by, conditions_of(session, actor, given))
    if given.start is not None and given.end is not None and given.end < given.start:
        raise InvalidInputError("the date range ends before it starts")
    return rollup.grouped_counts(
        session,
        actor.workspace_id,
        by,
        start=given.start,
        end=given.end,
        created_by=None if admin else actor.user_id,
        sender=given.sender,
        keys=keys,
    )


def engagement_groups(
    session: Session,
    actor: Actor,
    by: str,
    given: AnalyticsFilter = AnalyticsFilter(),
    *,
    exact: bool = False,
) -> list[Group]:
    """Average open, click and reply rates, raw and human-only, with the counts behind them, of each
    group of the records the actor may see that the filter selects; periods in time order, other
    groups by the most sent first. Read from the rollup when it can answer, from the records when it
    cannot or when `exact` asks for them (the same numbers either way)."""
    actor.require(Permission.SEND_EMAIL)
    if by not in DIMENSIONS:
        raise InvalidInputError(f"group by one of {', '.join(DIMENSIONS)}")
    dimension: Dimension = by
    found = _counted(session, actor, dimension, given, exact=exact)
    labels = _labels(session, actor, dimension, [key for key, _, _, _ in found])
    ids = [key[0] for key, _, _, _ in found if key[0] is not None]
    touches = _last_touches(session, actor, dimension, ids)
    mail = _timeline_mail(session, actor, dimension, ids, given)
    per_party = dimension in ("company", "enduser")
    groups = []
    for key, counts, last_sent, sent_name in found:
        text = _key_text(dimension, key)
        if dimension in repository.PERIODS:
            label = text
        elif dimension == "variant":
            label = text or "(no variant)"
        else:
            # A template deleted since keeps the name it was sent with.
            label = labels.get(key[0], sent_name or "") if key[0] is not None else f"(no {dimension})"
            if dimension == "step" and key[0] is not None:
                label = f"{label} step {key[1]}"
        groups.append(
            Group(
                key=text,
                label=label,
                counts=counts,
                rates=rules.rates(counts),
                last_sent_at=last_sent,
                last_touch_at=touches.get(key[0]),
                emails_in=mail.get(key[0], Mail()).emails_in if per_party else None,
                emails_out=mail.get(key[0], Mail()).emails_out if per_party else None,
            )
        )
    if dimension in repository.PERIODS:
        return sorted(groups, key=lambda group: group.key)
    return sorted(groups, key=lambda group: (-group.counts.sent, group.label, group.key))


@dataclass(frozen=True)
class Mail:
    """The emails on a company's or enduser's timeline: from outside the team, and from the team."""

    emails_in: int = 0
    emails_out: int = 0


def _timeline_mail(
    session: Session, actor: Actor, by: Dimension, ids: list[Any], given: AnalyticsFilter
) -> dict[Any, Mail]:
    """Companies and endusers: how many emails on each one's timeline, sent in the date range, came
    from outside the team (from an address at none of the workspace's internal domains) and how many
    from the team (at one of them). An email without a From address is neither."""
    link: Any = {"company": EmailCompany, "enduser": EmailContact}.get(by)
    if link is None or not ids:
        return {}
    owner = link.company_id if by == "company" else link.contact_id
    conditions = [Email.workspace_id == actor.workspace_id, owner.in_(ids)]
    if given.start is not None:
        conditions.append(Email.sent_at >= _day_start(given.start))
    if given.end is not None:
        conditions.append(Email.sent_at < _day_start(given.end + timedelta(days=1)))
    rows = session.execute(
        select(owner, Email.from_address, func.count())
        .join(Email, Email.id == link.email_id)
        .where(*conditions)
        .group_by(owner, Email.from_address)
    )
    internal = {domain.lower() for domain in internal_domains_of(session, actor.workspace_id)}
    found: dict[Any, Mail] = {}
    for owner_id, address, count in rows:
        if not address:
            continue
        so_far = found.get(owner_id, Mail())
        if domain_of(address.lower()) in internal:
            found[owner_id] = Mail(so_far.emails_in, so_far.emails_out + int(count))
        else:
            found[owner_id] = Mail(so_far.emails_in + int(count), so_far.emails_out)
    return found


# --- cohorts -----------------------------------------------------------------------------------------

OUTCOMES = ("open", "click", "reply")


@dataclass(frozen=True)
class SendOut:
    """The emails of one send-out: a bulk send, a sequence (or one of its steps), or a template over a
    period (`start`..`end`, UTC days, both included)."""

    bulk_id: uuid.UUID | None = None
    sequence: uuid.UUID | None = None
    step: int | None = None
    template: uuid.UUID | None = None
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True)
class CohortMember:
    contact_id: uuid.UUID | None
    address: str
    """The first enduser in To: the one every outcome of the email is credited to."""
    company: str
    emails: int
    last_sent_at: datetime


def cohort(
    session: Session, actor: Actor, send_out: SendOut, outcome: str, *, did: bool, human: bool = False
) -> list[CohortMember]:
    """The recipients of a send-out who opened, clicked or replied (`did`) or did not, by the raw or
    the human-only rate. A recipient of several of its emails did when any of them did. Emails whose
    rate is unknown (that tracking off; for human rates also opens only machines made) are in neither
    list: nobody knows whether they opened."""
    actor.require(Permission.SEND_EMAIL)
    if outcome not in OUTCOMES:
        raise InvalidInputError(f"outcome is one of {', '.join(OUTCOMES)}")
    if send_out.bulk_id is None and send_out.sequence is None and send_out.template is None:
        raise InvalidInputError("name the send-out: a bulk send, a sequence (and step) or a template")
    given = AnalyticsFilter(
        start=send_out.start,
        end=send_out.end,
        template=send_out.template,
        sequence=send_out.sequence,
        step=send_out.step,
        bulk_id=send_out.bulk_id,
    )
    record = EmailEngagement
    rate = {
        "open": record.human_open_rate if human else record.open_rate,
        "click": record.human_click_rate if human else record.click_rate,
        "reply": record.reply_rate,
    }[outcome]
    best = func.max(rate)
    rows = session.execute(
        select(
            record.contact_id,
            record.recipient_address,
            func.max(Company.name),
            func.count(),
            func.max(record.sent_at),
        )
        .outerjoin(Company, Company.id == record.company_id)
        .where(*conditions_of(session, actor, given), rate.is_not(None))
        .group_by(record.contact_id, record.recipient_address)
        .having(best == 100 if did else best == 0)
        .order_by(record.recipient_address)
    ).all()
    return [CohortMember(row[0], row[1], row[2] or "", int(row[3]), row[4]) for row in rows]


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def cohort_csv(members: Sequence[CohortMember]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["address", "company", "emails", "last_sent_at", "contact_id"])
    for member in members:
        writer.writerow(
            [
                csv_safe(member.address),
                csv_safe(member.company),
                member.emails,
                member.last_sent_at.isoformat(),
                str(member.contact_id or ""),
            ]
        )
    return out.getvalue()
