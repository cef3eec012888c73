"""The event loop answers every request of a process: no endpoint may do its database work on it.

Under `touchline serve` the pages, the API and the tracking endpoint share one event loop per process.
An endpoint defined `async def` runs on that loop, so a transaction it opened there (waiting for a lock,
or a long import) would hold up every other request. Endpoints that read a form take it as a dependency
(`touchline.ui.CheckedForm`) and are plain functions, which FastAPI runs in its thread pool.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team, csrf_of, sign_in_form
from touchline.db import session_scope
from touchline.workspace import service
from touchline.workspace.permissions import Actor

# The endpoints that are coroutines on purpose, each awaiting network or body I/O and handing its
# database work to the thread pool itself (`run_in_threadpool`): read them before adding one.
AWAIT_IO_THEMSELVES = {
    "connect_imap",  # the page and the API: the IMAP login check is awaited
    "import_csv",  # the page: the upload is read, then the import runs in the thread pool
    "import_companies",
    "import_contacts",
    "receive_message",  # the log address's HTTP endpoint: the body is read with a size limit
    "notification_stream",  # an event stream: each poll runs in the thread pool
}


def test_only_reviewed_endpoints_are_coroutines(app: FastAPI) -> None:
    coroutines = {
        route.endpoint.__name__
        for route in app.routes
        if isinstance(route, APIRoute) and inspect.iscoroutinefunction(route.endpoint)
    }
    assert coroutines <= AWAIT_IO_THEMSELVES, coroutines - AWAIT_IO_THEMSELVES


@pytest.fixture
def company_id(sessions: sessionmaker[Session], team: Team) -> str:
    with session_scope(sessions) as session:
        company = service.create_company(session, Actor.operator(team.workspace_id), "Acme")
        return str(company.id)


@pytest.fixture
def held_update(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Saving a company's fields stops inside its transaction until released, as one waiting for a
    lock would."""
    entered, release = threading.Event(), threading.Event()
    update = service.update_company

    def held(*args: object, **kwargs: object) -> object:
        entered.set()
        assert release.wait(30)
        return update(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service, "update_company", held)
    yield entered, release
    release.set()


def test_a_form_waiting_on_the_database_does_not_hold_up_other_requests(
    live_server: str, team: Team, company_id: str, held_update: tuple[threading.Event, threading.Event]
) -> None:
    entered, release = held_update
    with httpx.Client(base_url=live_server, timeout=30) as browser:
        assert sign_in_form(browser, "admin@team-a.example", "admin-password-123").status_code == 303
        token = csrf_of(browser.get(f"/companies/{company_id}").text)
        answers: list[httpx.Response] = []
        saving = threading.Thread(
            target=lambda: answers.append(
                browser.post(f"/companies/{company_id}/custom-fields", data={"csrf_token": token})
            )
        )
        saving.start()
        assert entered.wait(30), "the save never reached the database"
        # While that save is held inside its transaction, the same process still answers.
        with httpx.Client(base_url=live_server, timeout=5) as other:
            assert other.get("/health").status_code == 200
            assert other.get("/login").status_code == 200
        release.set()
        saving.join(30)
    assert [answer.status_code for answer in answers] == [303]
    assert answers[0].headers["location"] == f"/companies/{company_id}"
