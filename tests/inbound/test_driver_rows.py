"""Rows written straight through the driver (`DriverRows`) are stored exactly as SQLAlchemy's own
insert stores the same values: UUIDs, time-zone-aware datetimes, JSON (a list, a mapping, and None,
which a JSON column stores as JSON null), booleans, NULLs and text."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from sqlalchemy import Column, Engine, Integer, MetaData, Table, insert, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from tests.conftest import Team
from touchline.db import session_scope
from touchline.inbound.store.bulk import DriverRows, table_of
from touchline.models import OutboundEmail
from touchline.models.base import UTCDateTime

TEMPLATE, BULK = uuid.uuid4(), uuid.uuid4()
MOMENT = datetime(2026, 12, 6, 9, 30, 15, 123456, tzinfo=UTC)


def _email(team: Team, key: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "workspace_id": team.workspace_id,
        "created_by": team.member_id,
        "sender_choice": "member@team-a.example",
        "sender_user_id": team.member_id,
        "from_address": "member@team-a.example",
        "from_name": "Mem Ber",
        "mailbox_id": None,
        "via": "relay",
        "kind": "bulk",
        "unsubscribe_url": "https://touchline.example/u/abc",
        "company_id": None,
        "subject": "Your renewal, Pat \u00e9",
        "html_body": "<p>Hello</p>",
        "text_body": "Hello",
        "in_reply_to": None,
        "references": ["<a@b.example>"],
        "template_id": TEMPLATE,
        "template_name": "renewal",
        "template_version": 3,
        "bulk_id": BULK,
        "sequence_id": None,
        "sequence_step": None,
        "variant": "B",
        "track_opens": True,
        "track_clicks": False,
        "utm": None,
        "idempotency_key": key,
        "message_id": f"<{key}@team-a.example>",
        "status": "queued",
        "attempts": 0,
        "scheduled_for": None,
        "next_attempt_at": MOMENT + timedelta(minutes=5),
        "created_at": MOMENT,
        "updated_at": MOMENT,
    }
    values.update(changes)
    return values


def _stored(sessions: sessionmaker[Session], key: str) -> dict[str, Any]:
    """The row as the database holds it, read back without SQLAlchemy's result processing."""
    with sessions() as session:
        connection = session.connection()
        mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
        row = connection.exec_driver_sql(
            f"SELECT * FROM outbound_emails WHERE idempotency_key = {mark}",  # noqa: S608 -- fixed text
            (key,),
        ).one()
        return dict(row._mapping)


def test_driver_rows_store_what_sqlalchemy_stores(sessions: sessionmaker[Session], team: Team) -> None:
    given = [
        _email(team, "core"),
        _email(team, "driver"),
        _email(team, "driver-utm", utm={"utm_source": "touchline", "n": 1}, references=[], track_opens=False),
        _email(team, "core-utm", utm={"utm_source": "touchline", "n": 1}, references=[], track_opens=False),
    ]
    by_key = {values["idempotency_key"]: values for values in given}
    with session_scope(sessions) as session:
        connection = session.connection()
        connection.execute(insert(table_of(OutboundEmail)), [by_key["core"], by_key["core-utm"]])
        writer = DriverRows(table_of(OutboundEmail), tuple(given[0]), connection.dialect)
        rows = [tuple(by_key[key][column] for column in writer.columns) for key in ("driver", "driver-utm")]
        writer.write(connection, writer.encoded(rows))

    for core, driver in (("core", "driver"), ("core-utm", "driver-utm")):
        expected, stored = _stored(sessions, core), _stored(sessions, driver)
        for column in ("id", "idempotency_key", "message_id"):
            expected.pop(column), stored.pop(column)
        assert stored == expected, driver

    with sessions() as session:
        read = session.scalar(select(OutboundEmail).where(OutboundEmail.idempotency_key == "driver-utm"))
        assert read is not None
        assert read.utm == {"utm_source": "touchline", "n": 1}
        assert read.references == []
        assert read.next_attempt_at == MOMENT + timedelta(minutes=5)
        assert read.track_opens is False
        assert read.track_clicks is False
        assert read.bulk_id == BULK


class _CountedMoment(TypeDecorator[datetime]):
    """A datetime column that records each value it is asked to convert."""

    impl = UTCDateTime
    cache_ok = True
    converted: ClassVar[list[datetime | None]] = []

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        self.converted.append(value)
        return value


def test_a_value_repeated_from_the_row_before_is_converted_once_and_stored_alike(engine: Engine) -> None:
    probe = Table(
        "driver_rows_probe",
        MetaData(),
        Column("n", Integer, primary_key=True),
        Column("moment", _CountedMoment),
    )
    probe.create(engine)
    try:
        later = MOMENT + timedelta(seconds=1)
        moments = [MOMENT, MOMENT, later, MOMENT, None, None]
        _CountedMoment.converted.clear()
        with engine.begin() as connection:
            writer = DriverRows(probe, ("n", "moment"), connection.dialect)
            writer.write(connection, writer.encoded(list(enumerate(moments))))
        assert _CountedMoment.converted == [MOMENT, later, MOMENT, None]
        with engine.connect() as connection:
            stored = connection.execute(select(probe.c.n, probe.c.moment).order_by(probe.c.n)).all()
        assert [moment for _, moment in stored] == moments
    finally:
        probe.drop(engine)


def test_a_remembered_column_converts_each_value_once_across_rows_and_calls(engine: Engine) -> None:
    probe = Table(
        "driver_rows_remembered",
        MetaData(),
        Column("n", Integer, primary_key=True),
        Column("moment", _CountedMoment),
    )
    probe.create(engine)
    try:
        later = MOMENT + timedelta(seconds=1)
        _CountedMoment.converted.clear()
        with engine.begin() as connection:
            writer = DriverRows(probe, ("n", "moment"), connection.dialect, remember=("moment",))
            writer.write(connection, writer.encoded(list(enumerate([MOMENT, later, MOMENT, later]))))
            # Equal values, not the same objects: remembered by value.
            again = [MOMENT + timedelta(0), later + timedelta(0)]
            writer.write(connection, writer.encoded([(4 + n, moment) for n, moment in enumerate(again)]))
        assert _CountedMoment.converted == [MOMENT, later]
        with engine.connect() as connection:
            stored = connection.execute(select(probe.c.moment).order_by(probe.c.n)).scalars().all()
        assert stored == [MOMENT, later, MOMENT, later, MOMENT, later]
    finally:
        probe.drop(engine)
