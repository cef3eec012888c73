"""Time the grouped engagement analytics over 1,000,000 Email Engagement records, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.analytics.run [--records 1000000] [--runs 20]
        [--database sqlite|postgresql|both]

The database is made for the run (SQLite in a temporary folder on /tmp, or a PostgreSQL database on
loopback created and dropped) and migrated by Alembic up to the revision before the engagement rollup.
It is seeded, untimed, with one workspace, 20 senders, 5,000 companies and the records: sent evenly over
2026 (a year), from 50 templates, each with open tracking on for 90% and click tracking on for 80%,
rates drawn at fixed odds (machine-only opens leave the human open rate unknown). The records are
written with the database driver's bulk path (executemany / COPY) and foreign-key checks off for the
seeding connection only: the queries read email_engagements alone, and 1,000,000 outbound emails behind
them would only slow the seeding. Then the last migration makes the rollup and fills it from the records
(its time is printed).

Timed: `outbound.analytics.service.engagement_groups` as an admin, exactly as the API and the CLI
call it (visibility, filter, grouped sums, labels), grouped by template and grouped by week, each
with the date filter 2026-04-01..2026-06-30 (a quarter) and with the whole year; `--runs` runs each
after one warm-up, p50 and p95 printed (goal: p95 <= 200 ms). Beside each, the same call with
`exact=True` (summing the records, as before the rollup) once, and the ratio of the two.

Freshness: an email is recorded sent as the outbox records it; then a reply event is stored and the
engagement refresh (the refresh job's work) runs in its own transaction, as the worker runs it. The
time from storing the event to the week's group showing the reply is printed, with the refresh alone.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Company, EngagementEvent, OutboundEmail, OutboundRecipient, User
from touchline.outbound.analytics.service import AnalyticsFilter, engagement_groups
from touchline.outbound.engagement import service as engagement
from touchline.outbound.engagement.repository import ensure_record
from touchline.schema import upgrade
from touchline.workspace import service
from touchline.workspace.permissions import Actor

POSTGRES = os.environ.get(
    "TOUCHLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
TEMPLATES = 50
SENDERS = 20
COMPANIES = 5_000
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
QUARTER = AnalyticsFilter(start=date(2026, 4, 1), end=date(2026, 6, 30))
WHOLE_YEAR = AnalyticsFilter(start=date(2026, 1, 1), end=date(2026, 12, 31))
BEFORE_ROLLUP = "analytics0000001"  # the revision before the one that makes the rollup
COLUMNS = (
    "id",
    "workspace_id",
    "outbound_email_id",
    "sender_user_id",
    "created_by",
    "recipient_address",
    "company_id",
    "template_id",
    "template_name",
    "template_version",
    "variant",
    "track_opens",
    "track_clicks",
    "sent_at",
    "open_rate",
    "click_rate",
    "reply_rate",
    "human_open_rate",
    "human_click_rate",
    "opens",
    "clicks",
    "human_opens",
    "human_clicks",
    "replies",
    "auto_replies",
    "bounces",
    "bounce",
    "updated_at",
)


def _records(
    count: int, workspace: uuid.UUID, senders: list[uuid.UUID], companies: list[uuid.UUID]
) -> Iterator[tuple[object, ...]]:
    """The records as column values in COLUMNS' order, at fixed odds from a fixed seed."""
    draw = random.Random(14)
    templates = [uuid.UUID(int=n + 1) for n in range(TEMPLATES)]
    seconds = 365 * 24 * 3600
    for n in range(count):
        sent_at = YEAR_START + timedelta(seconds=n * seconds // count)
        opens_on, clicks_on = draw.random() < 0.9, draw.random() < 0.8
        replied = draw.random() < 0.06
        clicked = clicks_on and (replied or draw.random() < 0.1)
        opened = replied or clicked or draw.random() < 0.45
        human_open = 100 if opened and draw.random() < 0.7 else (None if opened else 0)
        sender = senders[n % SENDERS]
        template = draw.randrange(TEMPLATES)
        yield (
            uuid.uuid4(),
            workspace,
            uuid.uuid4(),
            sender,
            sender,
            f"user{n}@customer.example",
            companies[draw.randrange(COMPANIES)],
            templates[template],
            f"Template {template}",
            1,
            "",
            opens_on,
            clicks_on,
            sent_at,
            (100 if opened else 0) if opens_on else None,
            (100 if clicked else 0) if clicks_on else None,
            100 if replied else 0,
            human_open if opens_on else None,
            (100 if clicked else 0) if clicks_on else None,
            int(opened),
            int(clicked),
            int(human_open == 100),
            int(clicked),
            int(replied),
            0,
            0,
            None,
            sent_at,
        )


def _seed_people(url: str) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        workspace = service.create_workspace(
            session,
            SecretBox([Fernet.generate_key().decode()]),
            "Bench",
            internal_domains=["team.example"],
            inbound_domain="log.bench.example",
        )
        operator = Actor.operator(workspace.id)
        senders: list[User] = [
            service.add_user(session, operator, f"sender{n}@team.example", role="Member")
            for n in range(SENDERS)
        ]
        companies = [Company(workspace_id=workspace.id, name=f"Customer {n}") for n in range(COMPANIES)]
        session.add_all(companies)
        session.flush()
        ids = workspace.id, [user.id for user in senders], [company.id for company in companies]
    engine.dispose()
    return ids


def _sqlite_value(value: object) -> object:
    if isinstance(value, uuid.UUID):
        return value.hex  # SQLAlchemy's Uuid on SQLite: 32 hex digits
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _seed_records(url: str, count: int) -> None:
    workspace, senders, companies = _seed_people(url)
    rows = _records(count, workspace, senders, companies)
    if url.startswith("sqlite"):
        import sqlite3

        connection = sqlite3.connect(make_url(url).database or "")
        connection.execute("PRAGMA foreign_keys=OFF")
        placeholders = ", ".join("?" for _ in COLUMNS)
        connection.executemany(
            f"INSERT INTO email_engagements ({', '.join(COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
            ([_sqlite_value(value) for value in row] for row in rows),
        )
        connection.commit()
        connection.execute("ANALYZE")
        connection.close()
        return
    import psycopg

    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain) as connection:
        connection.execute("SET session_replication_role = replica")  # no foreign-key triggers
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY email_engagements ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        connection.commit()
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE email_engagements")


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    name = f"bench_analytics_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _time(
    url: str, workspace: uuid.UUID, by: str, given: AnalyticsFilter, runs: int, *, exact: bool = False
) -> tuple[float, float, int]:
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    admin = Actor.operator(workspace)
    took = []
    total = 0
    for run in range(runs + 1):
        started = time.perf_counter()
        with session_scope(sessions) as session:
            groups = engagement_groups(session, admin, by, given, exact=exact)
        if run:  # the first run warms caches
            took.append((time.perf_counter() - started) * 1000)
        total = sum(group.counts.sent for group in groups)
    engine.dispose()
    return statistics.median(took), _percentile(took, 0.95), total


def _replies(session: Session, admin: Actor) -> int:
    return sum(group.counts.replied for group in engagement_groups(session, admin, "week", QUARTER))


def _freshness(url: str, workspace: uuid.UUID) -> tuple[float, float]:
    """(ms from storing a reply event to the analytics showing it, ms of the refresh alone)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    admin = Actor.operator(workspace)
    sent_at = datetime(2026, 5, 12, 10, tzinfo=UTC)
    with session_scope(sessions) as session:
        sender = session.scalars(select(User).where(User.workspace_id == workspace)).first()
        assert sender is not None
        row = OutboundEmail(
            workspace_id=workspace,
            created_by=sender.id,
            sender_choice=sender.email,
            sender_user_id=sender.id,
            from_address=sender.email,
            via="relay",
            subject="Renewal",
            html_body="<p>hi</p>",
            text_body="hi",
            idempotency_key=uuid.uuid4().hex,
            message_id=f"<{uuid.uuid4().hex}@team.example>",
            status="sent",
            sent_at=sent_at,
            track_opens=True,
            track_clicks=True,
        )
        row.recipients.append(
            OutboundRecipient(workspace_id=workspace, position=0, kind="to", address="new@customer.example")
        )
        session.add(row)
        session.flush()
        ensure_record(session, row, sent_at)  # as the outbox records a delivered email
        outbound = row.id
    with session_scope(sessions) as session:
        before = _replies(session, admin)
    started = time.perf_counter()
    with session_scope(sessions) as session:  # as inbound stores a reply it attributes
        session.add(
            EngagementEvent(
                workspace_id=workspace,
                outbound_email_id=outbound,
                kind="reply",
                occurred_at=sent_at + timedelta(hours=3),
                detail={},
            )
        )
    refreshing = time.perf_counter()
    with session_scope(sessions) as session:  # the refresh job's transaction
        engagement.refresh(session, [outbound])
    refreshed = time.perf_counter()
    with session_scope(sessions) as session:
        shown = _replies(session, admin)
    done = time.perf_counter()
    engine.dispose()
    if shown != before + 1:
        raise AssertionError(f"the reply is not shown: {before} replies before, {shown} after")
    return (done - started) * 1000, (refreshed - refreshing) * 1000


def run(kind: str, count: int, runs: int) -> None:
    with tempfile.TemporaryDirectory(dir="/tmp") as folder, _database(kind, Path(folder)) as url:
        upgrade(url, BEFORE_ROLLUP)
        started = time.perf_counter()
        _seed_records(url, count)
        print(f"{kind}: seeded {count:,} records in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        upgrade(url)
        print(f"{kind}: the migration filled the rollup in {time.perf_counter() - started:.1f} s", flush=True)
        engine = make_engine(url)
        with engine.connect() as connection:
            workspace = connection.execute(text("SELECT id FROM workspaces")).scalar_one()
        engine.dispose()
        workspace_id = workspace if isinstance(workspace, uuid.UUID) else uuid.UUID(str(workspace))
        for by in ("template", "week"):
            for name, given in (("quarter", QUARTER), ("year", WHOLE_YEAR)):
                p50, p95, total = _time(url, workspace_id, by, given, runs)
                scanned, _, same = _time(url, workspace_id, by, given, 1, exact=True)
                if same != total:
                    raise AssertionError(f"the rollup counts {total} records, the records {same}")
                verdict = "ok" if p95 <= 200 else "over 200 ms"
                print(
                    f"{kind}: by {by:<8} {name:<7} {total:>9,} records"
                    f"  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {verdict}"
                    f"  (summing the records: {scanned:,.0f} ms, {p50 / scanned:.3f} of it)",
                    flush=True,
                )
        shown, refresh = _freshness(url, workspace_id)
        print(
            f"{kind}: a stored reply event was shown {shown:.1f} ms later"
            f" (its refresh took {refresh:.1f} ms)",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    arguments = parser.parse_args()
    for kind in ("sqlite", "postgresql") if arguments.database == "both" else (arguments.database,):
        run(kind, arguments.records, arguments.runs)


if __name__ == "__main__":
    main()
