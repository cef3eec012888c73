"""Declarative base, naming convention and column helpers shared by every table."""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def time_ordered_uuids(count: int) -> list[uuid.UUID]:
    """Version 7 UUIDs (RFC 9562): the Unix time in milliseconds, then 74 random bits. Ids made one
    after another sort together, so a table that receives many of them appends to the end of its
    primary key's index instead of touching a random page of it for every row. The random bits of
    all `count` come from one read of the system's generator."""
    milliseconds = time.time_ns() // 1_000_000 << 80 | 0x7 << 76 | 0b10 << 62
    randomness = os.urandom(10 * count)
    made = []
    for start in range(0, 10 * count, 10):
        bits = int.from_bytes(randomness[start : start + 10], "big")
        made.append(uuid.UUID(int=milliseconds | (bits >> 62 & 0xFFF) << 64 | bits & ((1 << 62) - 1)))
    return made


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; attach a timezone")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


class CreatedMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
