"""Render and queue 10,000 personalised emails as a bulk send, beside bare Jinja2 in the same run.

    .venv/bin/python -m bench.bulk.run [--endusers 10000] [--rounds 3] [--database sqlite|postgresql|both]
        [--profile]

touchline's side is the real bulk send: `outbound.bulk.service.start` records it, and the queueing
job's function (`outbound.bulk.tasks.queue_bulk`) selects the endusers by a filter over a company
custom field, decides each company's From route once, renders the template for each enduser in the
sandbox, checks each message (`mime.validate_outgoing`), stores the outbound emails with their
recipient rows and unsubscribe links in committed chunks of 1,000 (one statement per table and chunk
through `DriverRows`: COPY on PostgreSQL, the driver's executemany on SQLite), and sends one
delivery job per 100 emails to the job queue (Huey on SQLite in the run's folder). Nothing is
delivered. The database is made for each round (SQLite in a temporary folder on /tmp, or a
PostgreSQL database on loopback created and dropped), seeded with 10,000 endusers at 97 companies
with custom fields; seeding is not timed.

The reference renders the same subject, HTML and text for the same 10,000 value sets with bare
Jinja2 (autoescaped HTML, no sandbox, no database). The process runs with the garbage collector
set as `touchline worker` (where the queueing job runs) and `touchline bulk send` set it
(`kit.runtime.tune_garbage_collector`), for both sides. Rounds alternate touchline and the reference;
the ratio is touchline's rate over the reference's from each side's fastest round (goal: >= 0.5).
`--profile` runs one more touchline round under cProfile and prints where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import io
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jinja2
from bench.send.run import HTML, SUBJECT, TEXT
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.jobs import declare_all
from touchline.kit.crypto import SecretBox
from touchline.kit.runtime import tune_garbage_collector
from touchline.models import Base, Company, CompanyDomain, Contact, CustomFieldDefinition, Mailbox, Template
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks
from touchline.outbound.send import service as outbox
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

SECRET = Fernet.generate_key().decode()
POSTGRES = os.environ.get(
    "TOUCHLINE_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
COMPANIES = 97
MEMBER = "sam@team.example"


def _seed(sessions: sessionmaker[Session], box: SecretBox, endusers: int) -> uuid.UUID:
    with session_scope(sessions) as session:
        workspace = service.create_workspace(
            session, box, "Bench", internal_domains=["team.example"], inbound_domain="log.bench.example"
        )
        operator = Actor.operator(workspace.id)
        member = service.add_user(session, operator, MEMBER, name="Sam Seller", role="Member")
        session.add(
            Mailbox(
                workspace_id=workspace.id,
                user_id=member.id,
                provider="imap",
                address=MEMBER,
                connection={"host": "127.0.0.1", "port": 993, "security": "tls", "username": MEMBER},
                credentials_encrypted=box.encrypt("{}"),
                status="connected",
            )
        )
        for key, field_type in (("renewal_date", "date"), ("seats", "number"), ("tier", "text")):
            session.add(
                CustomFieldDefinition(
                    workspace_id=workspace.id, kind="company", key=key, label=key, type=field_type
                )
            )
        companies = []
        for n in range(COMPANIES):
            company = Company(
                workspace_id=workspace.id,
                name=f"Customer {n} <Ltd & Co>",
                account_owner_id=member.id,
                custom_fields={
                    "renewal_date": dt.date(2027, 1 + n % 12, 1 + n % 28).isoformat(),
                    "seats": 10 + n % 40,
                    "tier": "gold" if n % 3 == 0 else "silver",
                },
            )
            session.add(company)
            companies.append(company)
        session.flush()
        session.add_all(
            CompanyDomain(workspace_id=workspace.id, company_id=c.id, domain=f"customer{n}.example")
            for n, c in enumerate(companies)
        )
        session.add_all(
            Contact(
                workspace_id=workspace.id,
                email=f"user{n}@customer{n % COMPANIES}.example",
                name=f"Pat{n} Lee",
                company_id=companies[n % COMPANIES].id,
            )
            for n in range(endusers)
        )
        session.add(
            Template(
                workspace_id=workspace.id,
                name="renewal",
                subject=SUBJECT,
                html=HTML,
                text=TEXT,
                version=1,
                track_opens=True,
                track_clicks=True,
            )
        )
        return workspace.id


@contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    name = f"bench_bulk_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def touchline_round(kind: str, endusers: int, profile: cProfile.Profile | None = None) -> float:
    """Seconds to start the bulk send and queue its emails (seeding not counted)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder, _database(kind, Path(folder)) as url:
        settings = Settings(
            data_dir=Path(folder) / "data",
            database_url=url,
            secret_key=SECRET,
            base_url="https://touchline.example",
            in_process_worker=False,
            inbound_domain="log.bench.example",
        )
        settings.ensure_data_dir()
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        sessions = make_sessionmaker(engine)
        box = SecretBox(settings.secret_keys)
        declare_all()  # as in the worker that queues a bulk send: the delivery job among them
        queue = configure_queue(settings)
        workspace_id = _seed(sessions, box, endusers)
        request = bulk.BulkRequest(MEMBER, "renewal", None, "each", ("company.custom.seats>=10",))
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        with session_scope(sessions) as session:
            actor = service.actor_for(
                service.find_user_by_email(session, Actor.operator(workspace_id), MEMBER)
            )
            bulk_id = bulk.start(session, actor, request, settings=settings, run_job=False).id
        status = tasks.queue_bulk(sessions, box, settings, bulk_id)
        elapsed = time.perf_counter() - started
        if profile is not None:
            profile.disable()
        assert status == "queued", status
        with session_scope(sessions) as session:
            made = session.get(bulk.BulkSend, bulk_id)
            assert made is not None
            assert (made.recipients, made.queued, made.skipped) == (endusers, endusers, 0), made
        # One delivery job per batch of emails (outbox.DELIVERY_BATCH).
        assert queue.pending_count() == -(-endusers // outbox.DELIVERY_BATCH)
        queue.close()
        engine.dispose()
        return elapsed


def _values(endusers: int) -> list[dict[str, Any]]:
    return [
        {
            "enduser": {"first_name": f"Pat{n}", "email": f"user{n}@customer{n % COMPANIES}.example"},
            "company": {
                "name": f"Customer {n % COMPANIES} <Ltd & Co>",
                "custom": {
                    "renewal_date": dt.date(2027, 1 + n % 12, 1 + n % 28),
                    "seats": 10 + n % 40,
                    "tier": "gold" if n % 3 == 0 else "silver",
                },
            },
            "sender": {"name": "Sam Seller"},
        }
        for n in range(endusers)
    ]


def bare_round(values: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    html_env = jinja2.Environment(autoescape=True)
    text_env = jinja2.Environment(autoescape=False)  # noqa: S701 -- subject and text are not HTML
    subject, html, plain = (
        text_env.from_string(SUBJECT),
        html_env.from_string(HTML),
        text_env.from_string(TEXT),
    )
    for item in values:
        subject.render(item)
        html.render(item)
        plain.render(item)
    return time.perf_counter() - started


WHERE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("selecting (contacts, merge contexts, filter)", ("_selected",)),
    ("rendering in the sandbox", ("render",)),
    ("checking each message (validate_outgoing)", ("checked_message_id",)),
    ("storing rows (one statement per table)", ("_store",)),
    ("committing (and sending jobs to the queue)", ("commit",)),
    ("unsubscribe links (signing)", ("url",)),
)


def _where(profile: cProfile.Profile, total: float) -> None:
    stats = pstats.Stats(profile, stream=io.StringIO())
    found: dict[str, float] = {}
    for (filename, _, function), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, names in WHERE:
            if function in names and ("touchline" in filename or "sqlalchemy/orm/session" in filename):
                if function == "url" and "unsubscribe" not in filename:
                    continue
                found[label] = max(found.get(label, 0.0), cumulative)
    print(f"where the time of one profiled round goes ({total:.2f} s under cProfile):")
    for label, _ in WHERE:
        print(f"  {label}: {found.get(label, 0.0):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endusers", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    tune_garbage_collector()
    kinds = ("sqlite", "postgresql") if options.database == "both" else (options.database,)
    values = _values(options.endusers)
    bare: list[float] = []
    ours: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(options.rounds):
        for kind in kinds:
            bare.append(bare_round(values))
            ours[kind].append(touchline_round(kind, options.endusers))
    reference = min(bare)
    n = options.endusers
    print(f"bare Jinja2, render {n:,}: fastest {reference:.2f} s ({n / reference:,.0f}/s)")
    for kind in kinds:
        fastest = min(ours[kind])
        print(
            f"touchline {kind}, render and queue {n:,}: fastest {fastest:.2f} s ({n / fastest:,.0f}/s); "
            f"rounds {', '.join(f'{t:.2f}' for t in ours[kind])}; "
            f"ratio {reference / fastest:.2f} (goal >= 0.5)"
        )
    if options.profile:
        profile = cProfile.Profile()
        total = touchline_round(kinds[0], options.endusers, profile)
        _where(profile, total)


if __name__ == "__main__":
    main()
