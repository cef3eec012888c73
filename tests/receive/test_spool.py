"""The spool between the log address's 250 and the logged email: workers, crashes, notices."""

from __future__ import annotations

import smtplib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from ipaddress import ip_network

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from tests.receive.conftest import LOCAL_RELAY, LOOPBACK, LogWorld, message
from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound.receive import service as receive_service
from touchline.inbound.receive import spool
from touchline.inbound.receive.authentication import NO_EVIDENCE, Evidence
from touchline.inbound.receive.service import Envelope
from touchline.inbound.receive.smtp import InboundServer, SpoolNotifier
from touchline.jobs import declare_all
from touchline.models import Email, QuarantinedMessage, SpooledMessage
from touchline.models.base import utcnow
from touchline.worker import configure_queue
from touchline.workspace import service

SENDER = "member@team-a.example"


def accept(world: LogWorld, raws: list[bytes]) -> list[receive_service.LogResult]:
    envelope = Envelope("smtp", SENDER, "127.0.0.1")
    with session_scope(world.sessions) as session:
        return spool.accept_batch(
            session, [spool.Offered(world.team.workspace_id, raw, envelope) for raw in raws]
        )


def spooled(world: LogWorld) -> list[SpooledMessage]:
    with session_scope(world.sessions) as session:
        rows = list(session.scalars(select(SpooledMessage).order_by(SpooledMessage.created_at)))
        session.expunge_all()
        return rows


def subjects(world: LogWorld) -> list[str]:
    return sorted(str(record["subject"]) for record in world.emails())


def test_accepting_spools_without_logging_and_a_worker_logs_it(world: LogWorld) -> None:
    results = accept(world, [message("First"), message("Second")])
    assert [result.outcome for result in results] == ["accepted", "accepted"]
    assert [row.id for row in spooled(world)] == [result.spool_id for result in results]
    assert world.emails() == []  # nothing is logged before a worker runs
    report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY)
    assert (report.claimed, report.logged, report.left) == (2, 2, 0)
    assert subjects(world) == ["First", "Second"]
    assert spooled(world) == []
    assert spool.log_spooled(world.sessions, checks=LOCAL_RELAY).claimed == 0


def test_who_may_log_is_one_pure_decision_for_the_server_and_the_worker() -> None:
    relayed = Envelope("smtp", SENDER, "127.0.0.1")

    def refusal(
        who: receive_service.Loggers,
        senders: list[str],
        envelope: Envelope = relayed,
        evidence: Evidence | None = NO_EVIDENCE,
    ) -> str:
        result = receive_service.refuse_message(who, senders, envelope, evidence, LOCAL_RELAY)
        return "" if result is None else f"{result.code} {result.reason_code}"

    who = receive_service.Loggers({SENDER: uuid.uuid4()})
    assert refusal(who, [SENDER]) == ""
    assert refusal(who, ["mallory@stranger.example"]) == "550 sender-not-user"
    # Every From address must be a user, and the envelope sender too.
    assert refusal(who, [SENDER, "mallory@stranger.example"]) == "550 sender-not-user"
    assert refusal(who, [SENDER], Envelope("smtp", "mallory@stranger.example", "127.0.0.1")) == (
        "550 envelope-not-user"
    )
    assert refusal(who, [SENDER], Envelope("smtp", "<>", "127.0.0.1")) == "550 null-sender"
    assert refusal(who, []) == "550 no-from"
    # Authentication is decided once what DNS says is known, and left alone until then.
    outsider = Envelope("smtp", SENDER, "203.0.113.5")
    assert refusal(who, [SENDER], outsider, None) == ""
    assert refusal(who, [SENDER], outsider) == "550 not-authenticated"


def test_a_user_deactivated_after_acceptance_is_refused_by_the_worker_and_recorded(world: LogWorld) -> None:
    accept(world, [message("Sent just before leaving")])
    with session_scope(world.sessions) as session:
        service.update_user(session, world.operator, world.team.member_id, active=False)
    report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY)
    assert (report.refused, report.logged) == (1, 0)
    assert world.emails() == []
    assert spooled(world) == []
    assert [(r.stage, r.code) for r in world.refusals()] == [("spool", "sender-not-user")]


def test_a_claim_left_by_a_dead_worker_runs_out_and_the_message_is_logged(world: LogWorld) -> None:
    accept(world, [message("Claimed by a worker that died")])
    # A worker claimed it and died: the claim holds the row until it runs out.
    with session_scope(world.sessions) as session:
        session.execute(
            update(SpooledMessage).values(claimed_until=utcnow() + timedelta(minutes=5), attempts=1)
        )
    assert spool.log_spooled(world.sessions, checks=LOCAL_RELAY).claimed == 0
    with session_scope(world.sessions) as session:
        session.execute(update(SpooledMessage).values(claimed_until=utcnow() - timedelta(seconds=1)))
    report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY)
    assert (report.claimed, report.logged) == (1, 1)
    assert subjects(world) == ["Claimed by a worker that died"]


def test_a_message_that_keeps_killing_its_worker_is_quarantined_and_the_rest_go_on(world: LogWorld) -> None:
    accept(world, [message("Kills workers"), message("Harmless")])
    with session_scope(world.sessions) as session:
        killer = session.scalar(select(SpooledMessage.id).order_by(SpooledMessage.created_at).limit(1))
        session.execute(
            update(SpooledMessage).where(SpooledMessage.id == killer).values(attempts=spool.MAX_ATTEMPTS)
        )
    report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY)
    assert (report.logged, report.quarantined) == (1, 1)
    assert subjects(world) == ["Harmless"]
    with session_scope(world.sessions) as session:
        [reason] = session.scalars(select(QuarantinedMessage.reason)).all()
    assert f"not logged after {spool.MAX_ATTEMPTS} attempts" in reason
    assert spooled(world) == []


def test_a_database_failure_while_logging_loses_nothing(
    world: LogWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    accept(world, [message("Survives an outage")])
    original = receive_service.log_batch

    def unavailable(session: Session, jobs: list[receive_service.LogJob]) -> object:
        raise OperationalError("INSERT", {}, Exception("the database went away"))

    monkeypatch.setattr(receive_service, "log_batch", unavailable)
    report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY, lease=timedelta(0))
    assert (report.claimed, report.left, report.logged) == (1, 1, 0)
    assert len(spooled(world)) == 1
    monkeypatch.setattr(receive_service, "log_batch", original)
    assert spool.log_spooled(world.sessions, checks=LOCAL_RELAY).logged == 1
    assert subjects(world) == ["Survives an outage"]


def test_workers_running_at_once_log_each_message_exactly_once(world: LogWorld) -> None:
    raws = [message(f"Busy day {n}", message_id=f"<busy-{n}@team-a.example>") for n in range(120)]
    for start in range(0, len(raws), 30):
        accept(world, raws[start : start + 30])
    reports: list[spool.SpoolReport] = []
    lock = threading.Lock()

    def work() -> None:
        report = spool.log_spooled(world.sessions, checks=LOCAL_RELAY, batch=8)
        with lock:
            reports.append(report)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(report.claimed for report in reports) == 120
    assert sum(report.logged for report in reports) == 120
    assert subjects(world) == sorted(f"Busy day {n}" for n in range(120))
    with session_scope(world.sessions) as session:
        logs = [len(email.decision["log"]) for email in world_emails(session, world)]
    assert logs == [1] * 120  # logged once each, not once per worker that saw it
    assert spooled(world) == []


def world_emails(session: Session, world: LogWorld) -> list[Email]:
    return list(session.scalars(select(Email).where(Email.workspace_id == world.team.workspace_id)))


@pytest.fixture
def served(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[InboundServer]:
    """The server as `touchline serve` runs it: the logging job goes through the queue to a worker."""
    declare_all()  # the worker must know the logging job

    # The operator's own relay (this machine) hands the mail over: the worker trusts it too.
    relayed = settings.model_copy(update={"inbound_trusted_networks": [ip_network(one) for one in LOOPBACK]})
    queue = configure_queue(relayed)
    queue.start_in_process(2, periodic=False)
    try:
        with InboundServer(relayed, host="127.0.0.1", port=0, sessions=sessions) as server:
            yield server
    finally:
        queue.close()


def test_served_for_real_a_worker_logs_accepted_mail_within_seconds(
    world: LogWorld, served: InboundServer
) -> None:
    with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as client:
        for n in range(5):
            client.sendmail(SENDER, [world.log_address], message(f"Through the queue {n}"))
    deadline = time.monotonic() + 20
    while len(world.emails()) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subjects(world) == [f"Through the queue {n}" for n in range(5)]
    assert spooled(world) == []


class _Timers:
    """A clock that moves only when the test moves it, and the timers set against it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None], list[bool]]] = []

    def clock(self) -> float:
        return self.now

    def later(self, seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
        cancelled = [False]
        self.pending.append((self.now + seconds, callback, cancelled))
        return lambda: cancelled.__setitem__(0, True)

    def move_to(self, moment: float) -> None:
        """Move the clock, firing each timer due by then at its own moment, in order."""
        while due := sorted(
            (entry for entry in self.pending if entry[0] <= moment + 1e-9), key=lambda entry: entry[0]
        ):
            at, callback, cancelled = due[0]
            self.pending.remove(due[0])
            self.now = max(self.now, at)
            if not cancelled[0]:
                callback()
        self.now = moment


def test_the_notifier_follows_every_commit_with_a_send_and_coalesces_bursts() -> None:
    timers = _Timers()
    sends: list[float] = []
    notifier = SpoolNotifier(
        lambda: sends.append(timers.now), interval=0.05, clock=timers.clock, later=timers.later
    )
    commits = [number * 0.005 for number in range(40)]  # a burst: 40 commits over 0.2 s
    for commit in commits:
        timers.move_to(commit)
        notifier()
    timers.move_to(0.35)
    # The first commit at once, then one send per interval while commits keep coming: not 40.
    assert sends == pytest.approx([0.0, 0.05, 0.10, 0.15, 0.20])
    for commit in commits:
        assert any(send >= commit - 1e-9 for send in sends)
    notifier()  # long after the last send: at once
    assert sends[-1] == pytest.approx(0.35)
    notifier()  # within the interval: left to a timer
    assert len(sends) == 6
    notifier.close()  # what is due is sent now, not left to a timer that may not outlive the process
    assert len(sends) == 7
    timers.move_to(1.0)
    assert len(sends) == 7  # the cancelled timer sends nothing more
    assert len(sends) >= 3


def test_the_operators_health_check_shows_what_waits_in_the_spool(
    world: LogWorld, settings: Settings
) -> None:
    from fastapi.testclient import TestClient

    from touchline.app import create_app
    from touchline.worker import Queue

    accept(world, [message("Waiting")])
    with TestClient(create_app(settings, queue=Queue(settings))) as client:
        waiting = client.get("/health").json()["database"]["log_spool"]
        assert waiting["waiting"] == 1
        assert waiting["oldest_seconds"] >= 0
        spool.log_spooled(world.sessions, checks=LOCAL_RELAY)
        assert client.get("/health").json()["database"]["log_spool"] == {"waiting": 0, "oldest_seconds": 0.0}


def test_touchline_inbound_with_the_embedded_defaults_logs_what_it_accepts(
    world: LogWorld, settings: Settings
) -> None:
    import socket
    import subprocess
    import sys

    from tests.conftest import touchline_environment

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    environment = {
        **touchline_environment(settings),
        "TOUCHLINE_IN_PROCESS_WORKER": "true",
        "TOUCHLINE_INBOUND_TRUSTED_NETWORKS": ",".join(LOOPBACK),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "touchline.cli", "inbound", "--host", "127.0.0.1", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=30)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "touchline inbound did not start listening"
                time.sleep(0.1)
        with client:
            client.sendmail(SENDER, [world.log_address], message("Through touchline inbound"))
        while not world.emails() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert subjects(world) == ["Through touchline inbound"]
    finally:
        server.terminate()
        server.wait(timeout=30)
