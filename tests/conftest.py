"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, migrated by Alembic."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.dependencies import models as fastapi_dependency_models
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests import jobs_seam  # noqa: F401 -- the jobs storing sends are known before any test stores
from tests.browser import browser, live_server, page, stall_report
from tests.services import POSTGRES_ADMIN_URL, emptied_redis, unavailable
from touchline.app import create_app
from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.kit.crypto import SecretBox
from touchline.models import Base
from touchline.schema import upgrade
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

__all__ = ["browser", "live_server", "page"]  # one definition of the browser fixtures for every folder

TEST_SECRET_KEY = Fernet.generate_key().decode()


def _postgres_database() -> Iterator[str]:
    name = f"touchline_test_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        unavailable("PostgreSQL", f"{error}; start it or set TOUCHLINE_TEST_POSTGRES_URL")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        # The suite's database need not outlive a crash of the server: commits that do not wait for
        # the WAL to reach the disk keep its thousands of small transactions, and the live servers of
        # page tests, from stalling behind the disk when a checkpoint is writing.
        admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A page test that fails while its live server runs reports what the server was doing."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed and call.when == "call" and "live_server" in getattr(item, "fixturenames", ()):
        database_url = getattr(item, "funcargs", {}).get("database_url")
        report.sections.append(("live server at the failure", stall_report(database_url)))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database; the suite creates the PostgreSQL one and drops it at the end."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'touchline.db'}"
        upgrade(url)
        yield url
        return
    for url in _postgres_database():
        upgrade(url)
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The suite's Redis database, emptied before and after the test."""
    with emptied_redis() as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> Iterator[sessionmaker[Session]]:
    yield make_sessionmaker(engine)
    # Each test starts from empty tables; the schema stays.
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key=TEST_SECRET_KEY,
        in_process_worker=False,
        inbound_domain="log.test.example",
        allow_private_mail_hosts=True,  # Dovecot and the fake servers listen on 127.0.0.1
    )


def touchline_environment(settings: Settings) -> dict[str, str]:
    """The environment a `touchline` subprocess needs to act on the same data as `settings`."""
    env = dict(os.environ)
    env.update(
        TOUCHLINE_DATA_DIR=str(settings.data_dir),
        TOUCHLINE_DATABASE_URL=settings.resolved_database_url,
        TOUCHLINE_QUEUE_URL=settings.queue_url,
        TOUCHLINE_SECRET_KEY=settings.secret_key,
        TOUCHLINE_INBOUND_DOMAIN=settings.inbound_domain,
        TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS=str(settings.allow_private_mail_hosts).lower(),
        TOUCHLINE_BASE_URL=settings.base_url,
        COLUMNS="200",  # Rich tables wide enough for the assertions on their lines
    )
    return env


def run_touchline(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The `touchline` command run as an operator runs it, on the same data as `settings`."""
    return subprocess.run(
        [sys.executable, "-m", "touchline.cli", *args],
        env=touchline_environment(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# FastAPI remembers, for each endpoint and dependency function it has seen, whether it is a
# coroutine or a generator: module-level caches of 4,096 entries each. A process of touchline builds
# its app once; the suite builds one a test, and those caches kept the apps of earlier tests alive
# with all they reference (at the middle of a full run the test process held more than 3.5 GB).
# The garbage collector's full passes over such a heap stop every thread of the process, the page
# tests' live servers too, for longer than a page waits for its answer.
_FASTAPI_CALLABLE_CACHES = (
    "_is_gen_callable_cached",
    "_is_async_gen_callable_cached",
    "_is_coroutine_callable_cached",
)


@pytest.fixture(autouse=True)
def _forget_earlier_apps() -> Iterator[None]:
    yield
    for name in _FASTAPI_CALLABLE_CACHES:
        getattr(fastapi_dependency_models, name).cache_clear()


@pytest.fixture(autouse=True)
def _job_queue(request: pytest.FixtureRequest) -> Iterator[None]:
    """Storing mail sends jobs after the commit: every database test has a queue to send them to
    (fixtures that need a queue of their own configure it after this one)."""
    if "sessions" not in request.fixturenames:
        yield
        return
    queue = configure_queue(request.getfixturevalue("settings"))
    yield
    queue.close()


@pytest.fixture
def box() -> SecretBox:
    return SecretBox([TEST_SECRET_KEY])


@pytest.fixture
def app(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[FastAPI]:
    queue = configure_queue(settings)
    application = create_app(settings, queue=queue)
    yield application
    queue.close()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Team:
    """A workspace with an admin, a member and a viewer, each with an API token."""

    workspace_id: uuid.UUID
    admin_id: uuid.UUID
    member_id: uuid.UUID
    viewer_id: uuid.UUID
    admin_token: str
    member_token: str
    viewer_token: str

    def headers(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, f'{who}_token')}"}


def make_team(sessions: sessionmaker[Session], box: SecretBox, name: str, domain: str) -> Team:
    with session_scope(sessions) as session:
        workspace = service.create_workspace(
            session, box, name, internal_domains=[domain], inbound_domain="log.test.example"
        )
        operator = Actor.operator(workspace.id)
        users = {}
        tokens = {}
        for who, role in (("admin", "Admin"), ("member", "Member"), ("viewer", "Viewer")):
            # Only the admin logs in to pages; hashing a password costs tens of milliseconds.
            password = "admin-password-123" if who == "admin" else None
            user = service.add_user(session, operator, f"{who}@{domain}", role=role, password=password)
            users[who] = user.id
            tokens[who], _ = service.create_api_token(session, service.actor_for(user), "tests")
        return Team(
            workspace.id,
            users["admin"],
            users["member"],
            users["viewer"],
            tokens["admin"],
            tokens["member"],
            tokens["viewer"],
        )


@pytest.fixture
def team(sessions: sessionmaker[Session], box: SecretBox) -> Team:
    return make_team(sessions, box, "Team A", "team-a.example")


@pytest.fixture
def other_team(sessions: sessionmaker[Session], box: SecretBox) -> Team:
    return make_team(sessions, box, "Team B", "team-b.example")


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def sign_in_form(client: httpx.Client, email: str, password: str, next_path: str = "/companies") -> Response:
    """Signs in through the login form as a browser does: the form (and its token) first."""
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"csrf_token": token, "email": email, "password": password, "next": next_path},
        follow_redirects=False,
    )


class FakeClock:
    """The app's clock in tests: moved forward by hand, so expiry and backoff need no waiting."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def app_clock(app: FastAPI) -> FakeClock:
    app.state.clock = clock = FakeClock()
    return clock
