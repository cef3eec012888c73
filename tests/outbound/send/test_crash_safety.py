"""A `touchline worker` killed (SIGKILL) in the middle of a 500-recipient bulk send, and started again:
no recipient gets an email twice.

The kill comes while the worker waits for the provider's answer to the email it handed over halfway:
the SMTP sink (or the Gmail fake) has taken that message and holds its answer back until the worker
is dead. The worker started again takes that claim over at once (its holder is gone, so no lease is
waited out), looks the email up in Sent, and sends the rest. Through SMTP the copy in Sent is
appended only after the server's answer, so that email ends `unknown` and its recipient got it once;
through Gmail the copy is in Sent as part of the send, so it ends `sent`.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.browser import serve
from tests.conftest import touchline_environment
from tests.fakes.gmail import FakeGmail
from tests.fakes.graph import FakeGraph
from tests.outbound.send.conftest import World
from tests.sync.conftest import CUSTOMER, INTERNAL
from tests.sync.oauth_world import OAuthWorld, oauth_settings
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.mailboxes.oauth_connect import GOOGLE
from touchline.models import Contact, OutboundEmail, User
from touchline.outbound.bulk import service as bulk
from touchline.outbound.bulk import tasks as bulk_tasks
from touchline.outbound.send import service as outbox
from touchline.outbound.templates.service import TemplateText, create_template
from touchline.worker import configure_queue
from touchline.workspace import service
from touchline.workspace.permissions import Actor

pytestmark = pytest.mark.dovecot

RECIPIENTS = 500
KILL_AT = RECIPIENTS // 2
WAIT_SECONDS = 600.0
"""The bound of each wait: a whole run takes 1 to 4 minutes on a busy machine."""
UNFINISHED = (outbox.SCHEDULED, outbox.QUEUED, outbox.SENDING)
PROVIDER_SETTINGS = (
    "google_client_id",
    "google_client_secret",
    "google_authorization_url",
    "google_token_url",
    "google_revocation_url",
    "gmail_api_base_url",
    "gmail_quota_units_per_minute",
)
# A project whose per-user Gmail quota was raised: 500 sends cost 50,000 units, which the default
# 15,000 a minute would spread over more than three minutes of pacing; this test is about crashes.
RAISED_GMAIL_QUOTA = 1_000_000


def queue_bulk(
    sessions: sessionmaker[Session],
    box: SecretBox,
    settings: Settings,
    sender_id: uuid.UUID,
    count: int,
    *,
    domain: str,
    company_id: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """`count` new endusers at `domain`, and a bulk send of a stored template to them from the
    sender's own address, queued as `touchline bulk send` queues it; its delivery jobs go to the
    queue as each chunk commits. Returns the bulk send's outbound emails."""
    name = f"bulk {uuid.uuid4().hex[:8]}"
    queueing = settings.model_copy(update={"base_url": "https://touchline.example"})
    with session_scope(sessions) as session:
        sender = session.get_one(User, sender_id)
        actor = service.actor_for(sender)
        template = create_template(
            session,
            actor,
            name,
            TemplateText(subject="News for {{ enduser.email }}", html="<p>Hello {{ enduser.email }}</p>"),
        )
        session.add_all(
            Contact(
                workspace_id=actor.workspace_id,
                email=f"enduser{number:03}@{domain}",
                name=f"Enduser {number}",
                company_id=company_id,
            )
            for number in range(count)
        )
        session.flush()
        request = bulk.BulkRequest(
            sender.email,
            template_id=template.id,
            filters=("enduser.email~enduser", f"enduser.email~@{domain}"),
        )
        bulk_id = bulk.start(session, actor, request, settings=queueing, run_job=False).id
    assert bulk_tasks.queue_bulk(sessions, box, queueing, bulk_id) == bulk.QUEUED
    with session_scope(sessions) as session:
        ids = list(
            session.scalars(
                select(OutboundEmail.id)
                .where(OutboundEmail.bulk_id == bulk_id)
                .order_by(OutboundEmail.created_at)
            )
        )
    assert len(ids) == count
    return ids


class HeldAnswer:
    """Called by the provider's side with each message's number once it took the message: at the
    `at`-th it says so (`reached`) and holds the answer back until `released` (bounded)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.reached = threading.Event()
        self.released = threading.Event()

    def __call__(self, number: int) -> None:
        if number == self.at and not self.reached.is_set():
            self.reached.set()
            self.released.wait(WAIT_SECONDS)


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A `touchline worker` with one job thread, so one email is in flight at a time; it reads no
    mail here, so it starts no mail reader processes."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "touchline.cli", "worker", "--threads", "1"],
            env={**env, "TOUCHLINE_SYNC_READER_PROCESSES": "0"},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


def statuses(sessions: sessionmaker[Session], ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    with session_scope(sessions) as session:
        rows = session.execute(
            select(OutboundEmail.id, OutboundEmail.status).where(OutboundEmail.id.in_(ids))
        )
        return {row.id: row.status for row in rows}


def wait_until(condition: Callable[[], bool], what: str, log: Path) -> None:
    """A deadline-bounded wait for a condition on the database, which no event announces."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what} did not happen in {WAIT_SECONDS:g} s; worker log:\n{log.read_text()}"
            )
        time.sleep(0.2)


def kill_when_reached(process: subprocess.Popen[bytes], held: HeldAnswer, log: Path) -> None:
    try:
        assert held.reached.wait(WAIT_SECONDS), log.read_text()
        process.kill()  # SIGKILL: nothing of the worker runs after this
        process.wait(timeout=60)
    finally:
        held.released.set()


def in_flight(sessions: sessionmaker[Session], ids: list[uuid.UUID]) -> OutboundEmail:
    """The one email the killed worker held: claimed and handed over, its outcome never recorded."""
    with session_scope(sessions) as session:
        [row] = session.scalars(
            select(OutboundEmail).where(OutboundEmail.id.in_(ids), OutboundEmail.status == outbox.SENDING)
        ).all()
        session.expunge(row)
    assert row.handed_over_at is not None
    return row


def finish_after_restart(
    sessions: sessionmaker[Session], ids: list[uuid.UUID], env: dict[str, str], log: Path
) -> None:
    with worker(env, log):
        wait_until(
            lambda: not any(status in UNFINISHED for status in statuses(sessions, ids).values()),
            "every email ending sent, failed or unknown",
            log,
        )


def recovered_before_the_lease(sessions: sessionmaker[Session], interrupted: OutboundEmail) -> bool:
    """Whether the email the killed worker held was settled before its claim's lease ran out."""
    with session_scope(sessions) as session:
        row = session.get_one(OutboundEmail, interrupted.id)
        assert interrupted.claimed_at is not None
        return row.updated_at < interrupted.claimed_at + outbox.SENDING_LEASE


@pytest.mark.parametrize("queue_kind", ["embedded", "redis"])
def test_a_worker_killed_mid_bulk_send_through_smtp_sends_no_email_twice(
    world: World, tmp_path: Path, queue_kind: str, request: pytest.FixtureRequest
) -> None:
    settings = world.settings
    if queue_kind == "redis":
        settings = settings.model_copy(update={"queue_url": request.getfixturevalue("redis_url")})
        request.addfinalizer(configure_queue(settings).close)
    held = HeldAnswer(KILL_AT)
    world.sink.after_message = held
    ids = queue_bulk(
        world.sessions,
        world.box,
        settings,
        world.team.member_id,
        RECIPIENTS,
        domain="acme.example",
        company_id=world.company_id,
    )
    env, log = touchline_environment(settings), tmp_path / "worker.log"

    with worker(env, log) as first:
        kill_when_reached(first, held, log)
    interrupted = in_flight(world.sessions, ids)
    [interrupted_to] = [r.address for r in interrupted.recipients]
    assert world.sink.received[KILL_AT - 1].recipients == (interrupted_to,)

    finish_after_restart(world.sessions, ids, env, log)

    received = Counter(address for message in world.sink.received for address in message.recipients)
    assert max(received.values()) == 1, [address for address, times in received.items() if times > 1]
    assert set(received) == {f"enduser{number:03}@acme.example" for number in range(RECIPIENTS)}
    final = statuses(world.sessions, ids)
    assert final.pop(interrupted.id) == outbox.UNKNOWN
    assert set(final.values()) == {outbox.SENT}
    assert recovered_before_the_lease(world.sessions, interrupted)
    assert "mail server's log" in (world.outbound(interrupted.id).error or "")
    # Sent shows what left through this mailbox, the interrupted email aside.
    assert not world.sent_folder_holds(interrupted.message_id)


def _holding_sends(fake: FakeGmail, held: HeldAnswer) -> ASGIApp:
    """The fake Gmail, whose answers to `messages.send` pass through `held` once Gmail took the message."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).endswith("/messages/send"):
            await fake.app(scope, receive, send)
            return

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.get_running_loop().run_in_executor(None, held, len(fake.state.sent))
            await send(message)

        await fake.app(scope, receive, answer)

    return app


def test_a_worker_killed_mid_bulk_send_through_gmail_sends_every_email_once(
    settings: Settings,
    sessions: sessionmaker[Session],
    box: SecretBox,
    fake_graph: FakeGraph,
    graph_url: str,
    tmp_path: Path,
) -> None:
    gmail, held = FakeGmail(), HeldAnswer(KILL_AT)
    gmail.state.quota_units_per_minute = RAISED_GMAIL_QUOTA
    with serve(_holding_sends(gmail, held), lifespan="off") as gmail_url:
        provider_settings = oauth_settings(
            settings, gmail_url, graph_url, gmail_quota_units_per_minute=RAISED_GMAIL_QUOTA
        )
        queue = configure_queue(provider_settings)  # connecting a mailbox queues its first sync
        try:
            with session_scope(sessions) as session:
                workspace = service.create_workspace(
                    session, box, "Bulk Co", internal_domains=[INTERNAL], inbound_domain="log.test.example"
                )
                company = service.create_company(
                    session, Actor.operator(workspace.id), "Customer", domains=[CUSTOMER]
                )
                ids = workspace.id, company.id
            world = OAuthWorld(provider_settings, sessions, box, ids[0], ids[1], gmail, fake_graph)
            sam = world.add_user("sam")
            world.connect(sam, GOOGLE, sending=True)
            bulk = queue_bulk(
                sessions, box, provider_settings, sam, RECIPIENTS, domain=CUSTOMER, company_id=ids[1]
            )
            env, log = touchline_environment(provider_settings), tmp_path / "worker.log"
            env.update(
                {
                    f"TOUCHLINE_{name.upper()}": str(getattr(provider_settings, name))
                    for name in PROVIDER_SETTINGS
                }
            )

            with worker(env, log) as first:
                kill_when_reached(first, held, log)
            interrupted = in_flight(sessions, bulk)
            finish_after_restart(sessions, bulk, env, log)
        finally:
            queue.close()

    received = Counter(address for record in gmail.state.sent for address in record.recipients)
    assert max(received.values()) == 1, [address for address, times in received.items() if times > 1]
    assert set(received) == {f"enduser{number:03}@{CUSTOMER}" for number in range(RECIPIENTS)}
    final = statuses(sessions, bulk)
    assert set(final.values()) == {outbox.SENT}, Counter(final.values())
    assert recovered_before_the_lease(sessions, interrupted)
