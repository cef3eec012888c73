"""The engagement rollup: sums of Email Engagement records per UTC day and month, kept current in the
transaction that changes the records, and read instead of the records when a filter allows.

Freshness: exact. Whenever a session flushes a new, changed or deleted record, the difference between
the record's old and new figures (and keys) is noted; when the session commits, the notes are added to
the rollup rows (INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n) in the same transaction, in
one sorted key order, so two commits touching the same rows wait for each other instead of
deadlocking. A reader in the same session adds the notes first. The analytics therefore show what the
records show, as soon as the records show it. Importing this module installs the session hooks; the
engagement repository (which makes every record) imports it.

What the rollup answers: groups by template, sequence, step, variant, sender, day, week and month, over
a range of UTC days, for the records a member or an admin may see, by one sender, and filtered by the
grouping's own dimension (by template for one template, ...). Anything else (company or enduser groups
and fields, a bulk send, a filter on another dimension) is read from the records themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Table, event, func, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from touchline.models import EmailEngagement, EngagementRollup, User
from touchline.models.engagement import NO_ID
from touchline.outbound.analytics import rules
from touchline.outbound.analytics.rules import Counts

Key = tuple[uuid.UUID, str, str, date, uuid.UUID, uuid.UUID, uuid.UUID, int, str]
# A row's key is the table's primary key, in its declared order (the order of `Key`).
KEY_COLUMNS: Final = tuple(column.name for column in inspect(EngagementRollup).primary_key)
COUNT_COLUMNS: Final = tuple(f.name for f in fields(Counts))
# What a record's contribution depends on: its keys and its figures.
TRACKED: Final = (
    "workspace_id",
    "created_by",
    "sender_user_id",
    "template_id",
    "template_name",
    "sequence_id",
    "sequence_step",
    "variant",
    "sent_at",
    "open_rate",
    "human_open_rate",
    "click_rate",
    "human_click_rate",
    "reply_rate",
    "bounce",
)
_PENDING: Final = "touchline.engagement_rollup"
_ROLLUP: Final = cast(Table, EngagementRollup.__table__)
_RECORDS: Final = cast(Table, EmailEngagement.__table__)


@dataclass(frozen=True)
class _Note:
    within: tuple[SessionTransaction, ...]
    """The transactions (innermost first) open when the change was flushed: a rollback of any of
    them undoes it."""
    key: Key
    counts: Counts
    last_sent_at: datetime | None
    template_name: str | None


def _slices(state: Mapping[str, Any]) -> list[Key]:
    """The ten rollup rows a record counts in: five dimensions, each by day and by month."""
    sent_at: datetime = state["sent_at"]
    day = sent_at.astimezone(UTC).date()
    sequence = state["sequence_id"] or NO_ID
    step = state["sequence_step"]
    keys = {
        "total": (NO_ID, -1, ""),
        "template": (state["template_id"] or NO_ID, -1, ""),
        "sequence": (sequence, -1, ""),
        "step": (sequence, -1 if step is None else step, ""),
        "variant": (NO_ID, -1, state["variant"] or ""),
    }
    return [
        (
            state["workspace_id"],
            dimension,
            grain,
            day if grain == "day" else day.replace(day=1),
            state["created_by"] or NO_ID,
            state["sender_user_id"] or NO_ID,
            key_id,
            key_step,
            key_text,
        )
        for dimension, (key_id, key_step, key_text) in keys.items()
        for grain in ("day", "month")
    ]


def _counts(state: Mapping[str, Any]) -> Counts:
    return rules.counts_of(
        [
            (
                state["open_rate"],
                state["human_open_rate"],
                state["click_rate"],
                state["human_click_rate"],
                state["reply_rate"] or 0,
                state["bounce"] is not None,
            )
        ]
    )


def _within(session: Session) -> tuple[SessionTransaction, ...]:
    chain: list[SessionTransaction] = []
    current = session.get_nested_transaction() or session.get_transaction()
    while current is not None:
        chain.append(current)
        current = current.parent
    return tuple(chain)


def _note(session: Session, state: Mapping[str, Any], sign: int) -> None:
    counts = _counts(state)
    notes: list[_Note] = session.info.setdefault(_PENDING, [])
    within = _within(session)
    for key in _slices(state):
        notes.append(
            _Note(
                within,
                key,
                counts if sign > 0 else -counts,
                state["sent_at"] if sign > 0 else None,
                state["template_name"] if sign > 0 else None,
            )
        )


def _stored(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The records as the database holds them before this flush (read on the session's connection,
    which does not flush)."""
    if not ids:
        return {}
    columns = [_RECORDS.c[name] for name in TRACKED]
    rows = session.connection().execute(select(_RECORDS.c.id, *columns).where(_RECORDS.c.id.in_(ids)))
    return {row[0]: dict(zip(TRACKED, row[1:], strict=True)) for row in rows}


def _current(record: EmailEngagement) -> dict[str, Any]:
    return {name: getattr(record, name) for name in TRACKED}


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _context: object, _instances: object) -> None:
    added = [item for item in session.new if isinstance(item, EmailEngagement)]
    changed = [
        item
        for item in session.dirty
        if isinstance(item, EmailEngagement) and session.is_modified(item, include_collections=False)
    ]
    removed = [item for item in session.deleted if isinstance(item, EmailEngagement)]
    if not (added or changed or removed):
        return
    before = _stored(session, [item.id for item in (*changed, *removed)])
    for record in added:
        _note(session, _current(record), +1)
    for record in changed:
        now = _current(record)
        then = before.get(record.id)
        if then == now:
            continue
        if then is not None:
            _note(session, then, -1)
        _note(session, now, +1)
    for record in removed:
        if record.id in before:
            _note(session, before[record.id], -1)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    notes: list[_Note] | None = session.info.get(_PENDING)
    if notes:
        session.info[_PENDING] = [note for note in notes if previous not in note.within]


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    # The whole transaction is over: a commit added its notes already, a rollback undid them.
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    session.flush()
    apply_pending(session)


def _merged(notes: Iterable[_Note]) -> dict[Key, tuple[Counts, datetime | None, str | None]]:
    merged: dict[Key, tuple[Counts, datetime | None, str | None]] = {}
    for note in notes:
        counts, last, name = merged.get(note.key, (Counts(), None, None))
        merged[note.key] = (
            counts + note.counts,
            max((moment for moment in (last, note.last_sent_at) if moment is not None), default=None),
            max((text for text in (name, note.template_name) if text is not None), default=None),
        )
    return merged


def _sort_key(key: Key) -> tuple[str, ...]:
    return tuple(str(part) for part in key)


def apply_pending(session: Session) -> None:
    """Add what this session changed in the records to the rollup rows, in one sorted order."""
    notes: list[_Note] = session.info.pop(_PENDING, [])
    if not notes:
        return
    merged = _merged(notes)
    rows = []
    for key in sorted(merged, key=_sort_key):
        counts, last, name = merged[key]
        if counts == Counts() and last is None:
            continue
        row: dict[str, Any] = dict(zip(KEY_COLUMNS, key, strict=True))
        row.update({name_: getattr(counts, name_) for name_ in COUNT_COLUMNS})
        row.update(last_sent_at=last, template_name=name)
        rows.append(row)
    if not rows:
        return
    table = _ROLLUP
    postgres = session.get_bind().dialect.name == "postgresql"
    statement = (postgresql.insert if postgres else sqlite.insert)(table)
    greater = func.greatest if postgres else func.max  # SQLite's max of two arguments is scalar
    stored, given = table.c, statement.excluded

    def later(name: str) -> Any:
        return greater(func.coalesce(stored[name], given[name]), func.coalesce(given[name], stored[name]))

    updates: dict[str, Any] = {name: stored[name] + given[name] for name in COUNT_COLUMNS}
    updates.update(last_sent_at=later("last_sent_at"), template_name=later("template_name"))
    # executemany keeps the rows' order: every writer takes the row locks in the same order.
    session.connection().execute(
        statement.on_conflict_do_update(index_elements=list(KEY_COLUMNS), set_=updates), rows
    )


# --- reading -----------------------------------------------------------------------------------------

_GROUPED: Final[dict[str, tuple[str, tuple[str, ...]]]] = {
    "template": ("template", ("key_id",)),
    "sequence": ("sequence", ("key_id",)),
    "step": ("step", ("key_id", "key_step")),
    "variant": ("variant", ("key_text",)),
    "sender": ("total", ("sender_user_id",)),
    "day": ("total", ("period_start",)),
    "week": ("total", ("period_start",)),
    "month": ("total", ("period_start",)),
}
GROUPINGS: Final = tuple(_GROUPED)
FILTERED: Final = {"template": "key_id", "sequence": "key_id", "step": "key_step", "variant": "key_text"}
"""Which rollup column answers a filter on the grouping's own dimension."""


def _between(column: Any, low: date | None, high: date | None) -> list[ColumnElement[bool]]:
    return [
        *([column >= low] if low is not None else []),
        *([column <= high] if high is not None else []),
    ]


def _plain(value: Any) -> Any:
    return None if value in (NO_ID, -1) else value


def grouped_counts(
    session: Session,
    workspace_id: uuid.UUID,
    by: str,
    *,
    start: date | None,
    end: date | None,
    created_by: uuid.UUID | None = None,
    sender: uuid.UUID | None = None,
    keys: Mapping[str, Any] | None = None,
) -> list[tuple[tuple[Any, ...], Counts, datetime | None, str | None]]:
    """What `repository.grouped_counts` gives for the same records, read from the rollup: (key,
    counts, latest sent_at, template name) of each group of the records sent `start`..`end` (UTC
    days), created by `created_by` and sent by `sender` when given, whose `keys` (FILTERED columns of
    the grouping's own dimension) match."""
    apply_pending(session)
    dimension, grouped = _GROUPED[by]
    table = _ROLLUP.c
    conditions: list[ColumnElement[bool]] = [table.workspace_id == workspace_id, table.dimension == dimension]
    if created_by is not None:
        conditions.append(table.created_by == created_by)
    if sender is not None:
        conditions.append(table.sender_user_id == sender)
    conditions.extend(table[column] == value for column, value in (keys or {}).items())
    periods = by in ("day", "week", "month")
    # One query per part of the range, each a range of the primary key (an OR of the parts would
    # make SQLite read every row of the dimension).
    parts: list[list[ColumnElement[bool]]] = []
    if periods:
        parts.append([table.grain == "day", *_between(table.period_start, start, end)])
    else:
        plan = rules.span(start, end)
        parts.extend([table.grain == "day", *_between(table.period_start, *days)] for days in plan.days)
        if plan.months is not None:
            parts.append([table.grain == "month", *_between(table.period_start, *plan.months)])
    columns = [table[name] for name in grouped]
    sums = [func.sum(table[name]) for name in COUNT_COLUMNS]
    queries = [
        select(*columns, *sums, func.max(table.last_sent_at), func.max(table.template_name))
        .where(*conditions, *part)
        .group_by(*columns)
        .having(func.sum(table.sent) > 0)
        for part in parts
    ]
    width = len(columns)
    found: dict[tuple[Any, ...], tuple[Counts, datetime | None, str | None]] = {}
    known_users = _users(session, workspace_id) if by == "sender" else None
    for row in (row for query in queries for row in session.execute(query)):
        key = tuple(_plain(value) for value in row[:width])
        if periods:
            key = (rules.period_of(key[0], by).isoformat(),)
        elif known_users is not None and key[0] not in known_users:
            key = (None,)  # a deleted user's records have no sender any more
        counts = Counts(*(int(value) for value in row[width : width + len(sums)]))
        last, name = row[-2], row[-1] if by == "template" else None
        if key in found:
            before, before_last, before_name = found[key]
            counts = before + counts
            last = max((moment for moment in (last, before_last) if moment is not None), default=None)
            name = max((text for text in (name, before_name) if text), default=None)
        found[key] = (counts, last, name)
    return [(key, counts, last, name) for key, (counts, last, name) in found.items()]


def _users(session: Session, workspace_id: uuid.UUID) -> set[uuid.UUID]:
    return set(session.scalars(select(User.id).where(User.workspace_id == workspace_id)))


def knows_user(session: Session, workspace_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    return user_id in _users(session, workspace_id)
