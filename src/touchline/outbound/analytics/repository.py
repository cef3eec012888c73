"""The grouped sums over Email Engagement records that every average is computed from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any, Final, Literal

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import Session

from touchline.models import EmailEngagement
from touchline.outbound.analytics.rules import Counts

Dimension = Literal[
    "template", "sequence", "step", "variant", "sender", "company", "enduser", "day", "week", "month"
]
DIMENSIONS: Final[tuple[Dimension, ...]] = (
    "template",
    "sequence",
    "step",
    "variant",
    "sender",
    "company",
    "enduser",
    "day",
    "week",
    "month",
)
PERIODS: Final = ("day", "week", "month")

_record = EmailEngagement


def _period(dialect: str, period: str) -> Any:
    """The first day of the UTC day, ISO week (from Monday) or month of sent_at, as YYYY-MM-DD."""
    if dialect == "postgresql":
        utc: Any = literal_column("email_engagements.sent_at AT TIME ZONE 'UTC'")
        return func.to_char(func.date_trunc(period, utc), "YYYY-MM-DD")
    # SQLite keeps UTC datetimes as text; 'weekday 0' moves to the next Sunday (or stays on one).
    if period == "day":
        return func.date(_record.sent_at)
    if period == "week":
        return func.date(_record.sent_at, "weekday 0", "-6 days")
    return func.strftime("%Y-%m-01", _record.sent_at)


def key_columns(dialect: str, by: Dimension) -> list[Any]:
    """What a group is keyed by: ids (and the step's number), the variant, or the period's first day."""
    if by in PERIODS:
        return [_period(dialect, by).label("period")]
    columns: dict[str, list[Any]] = {
        "template": [_record.template_id],
        "sequence": [_record.sequence_id],
        "step": [_record.sequence_id, _record.sequence_step],
        "variant": [_record.variant],
        "sender": [_record.sender_user_id],
        "company": [_record.company_id],
        "enduser": [_record.contact_id],
    }
    return columns[by]


def _known(column: Any) -> Any:
    return func.count(column)


def _hundreds(column: Any) -> Any:
    """How many records have the rate 100 (sums of 0/100 rates over 100; nulls add nothing)."""
    return func.coalesce(func.sum(column), 0) / 100


_SUMS: Final = {
    "sent": func.count(),
    "open_tracked": _known(_record.open_rate),
    "opened": _hundreds(_record.open_rate),
    "human_open_known": _known(_record.human_open_rate),
    "human_opened": _hundreds(_record.human_open_rate),
    "click_tracked": _known(_record.click_rate),
    "clicked": _hundreds(_record.click_rate),
    "human_click_known": _known(_record.human_click_rate),
    "human_clicked": _hundreds(_record.human_click_rate),
    "replied": _hundreds(_record.reply_rate),
    "bounced": _known(_record.bounce),
}
assert list(_SUMS) == [f.name for f in fields(Counts)]


def grouped_counts(
    session: Session, by: Dimension, conditions: Sequence[ColumnElement[bool]]
) -> list[tuple[tuple[Any, ...], Counts, Any, str | None]]:
    """(key, counts, latest sent_at, template name when by template) of each group of the records
    the conditions select."""
    dialect = session.get_bind().dialect.name
    keys = key_columns(dialect, by)
    sums = [expression.label(name) for name, expression in _SUMS.items()]
    # A template's name as sent, for one deleted since (the greatest, if it was renamed between sends).
    label = func.max(_record.template_name) if by == "template" else literal_column("NULL")
    query = select(*keys, *sums, func.max(_record.sent_at).label("last_sent_at"), label.label("label"))
    query = query.where(*conditions)
    rows = session.execute(query.group_by(*keys)).all()
    width = len(keys)
    return [
        (
            tuple(row[:width]),
            Counts(*(int(value) for value in row[width : width + len(sums)])),
            row[-2],
            row[-1],
        )
        for row in rows
    ]
