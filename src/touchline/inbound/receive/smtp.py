"""The log address's SMTP server: aiosmtpd, checks against the workspace's users, a spool.

Replies mean what they say: 250 after DATA is sent only once the transaction that put the message
in the spool has committed (`spool.accept_batch`); a worker logs it from there (`spool.log_spooled`,
sent as a job after each commit by `SpoolNotifier`). Everything the reply depends on is decided
before the 250: who may log, and whether the message is authenticated for its From domain. The
messages whose DATA ended in the same round of the event loop are spooled in one transaction
(`GroupCommitter`).

- RCPT: only log addresses are accepted (550 5.1.1 otherwise; nothing is relayed), and the envelope
  sender must be an active user of that workspace (550 5.7.1, recorded for admins).
- DATA: larger than `inbound_max_message_bytes` is 552 (aiosmtpd counts while reading); every From
  address must be an active user of each workspace addressed (550 5.7.1, recorded), the message
  must be authenticated for its From domain (DKIM, SPF, a trusted ARC seal or relay, or a domain
  the workspace relaxed: 550 5.7.26, recorded; 451 4.7.5 when DNS failed for now), and the rest is
  spooled for each of them.
- STARTTLS is offered when `inbound_tls_cert` and `inbound_tls_key` are configured.

`run_inbound_server` blocks until interrupted; `InboundServer` runs the same server on a thread of
its own for `touchline serve` and tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.inbound.parse import header_block, parse_headers
from touchline.inbound.receive import service, spool
from touchline.inbound.receive.authentication import NO_EVIDENCE, SenderChecks
from touchline.inbound.receive.service import Envelope as LogEnvelope
from touchline.inbound.receive.service import LogResult
from touchline.inbound.store.failsafe import database_failed

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_BATCH = 64
"""Messages spooled in one transaction at most; more would hold SQLite's write lock for long."""
CACHE_SECONDS = 30.0
"""How long what was read of a workspace (its log address, its users, whether it requires DKIM) is
reused to answer RCPT and DATA. The worker that logs a message checks again in its own transaction,
so a stale answer can only move a refusal from the sender's reply to the admins' list (stage
"spool"), never let a message into the workspace."""
HEADERS_READ_INLINE = 64 * 1024
"""Header blocks up to this size are read on the event loop; larger ones on a worker thread."""
NOTIFY_INTERVAL = 0.05


# --- the writer ----------------------------------------------------------------------------------


@dataclass
class _Job:
    offer: spool.Offered
    future: asyncio.Future[LogResult]


class GroupCommitter:
    """Spools the messages whose DATA ended in the same round of the event loop in one transaction
    (up to MAX_BATCH), committed on the loop's own thread once that round's callbacks have run, and
    calls `on_spooled` after each commit that spooled any.

    Why on the loop's thread: the transaction is one multi-row INSERT and a commit, shorter than
    handing the batch to a writer thread and back, where the two threads take turns on the GIL (the
    thread version accepted about a third fewer messages a second under load). While it commits, no
    other session is served; a database that waits on a lock delays every session as it would have
    delayed every reply.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        on_spooled: Callable[[], None],
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._sessions = sessions
        self._on_spooled = on_spooled
        self._max_batch = max_batch
        self._pending: list[_Job] = []
        self.batches = 0
        self.messages = 0

    def submit(self, offer: spool.Offered) -> asyncio.Future[LogResult]:
        """Queue a message for this round's commit; the future gets its reply once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LogResult] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        self._pending.append(_Job(offer, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with session_scope(self._sessions) as session:
                results = spool.accept_batch(session, [job.offer for job in batch])
        except Exception as error:
            if len(batch) > 1:
                # Something failed the whole transaction (most likely its commit): try each message
                # alone, so one cause costs one message.
                for job in batch:
                    self._commit([job])
                return
            results = [self._alone_failed(error)]
        else:
            try:
                self._on_spooled()
            except Exception:
                # The messages are safely spooled; the workers' every-minute run logs them regardless.
                log.exception("could not ask a worker to log spooled messages")
        self.batches += 1
        self.messages += len(batch)
        for job, result in zip(batch, results, strict=True):
            if not job.future.done():  # a session that ended meanwhile has its wait cancelled
                job.future.set_result(result)

    @staticmethod
    def _alone_failed(error: Exception) -> LogResult:
        # Nothing was written: the sender keeps the message and tries again.
        if database_failed(error):
            log.warning("database unavailable while spooling a message: %s", error)
        else:
            log.error("spooling a message failed", exc_info=error)
        return service.DATABASE_UNAVAILABLE


Cancel = Callable[[], None]
Later = Callable[[float, Callable[[], None]], Cancel]
"""Runs a callback after so many seconds, on another thread; returns what cancels it."""


def _timer(seconds: float, callback: Callable[[], None]) -> Cancel:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer.cancel


class SpoolNotifier:
    """Sends the job that logs spooled messages after spool commits, at most once per `interval`.

    A commit inside the interval is covered by a send at the interval's end, so every commit is
    followed by a job sent after it, while a busy server sends a few jobs a second, not one a commit.
    `clock` and `later` are the monotonic clock and the timer; tests pass ones they move themselves.
    """

    def __init__(
        self,
        send: Callable[[], None],
        interval: float = NOTIFY_INTERVAL,
        *,
        clock: Callable[[], float] = time.monotonic,
        later: Later = _timer,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._later = later
        self._last = float("-inf")
        self._cancel: Cancel | None = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._cancel is not None:
                return  # a send is already due, later than this commit
            wait = self._last + self._interval - self._clock()
            if wait > 0:
                self._cancel = self._later(wait, self._fire)
                return
            self._last = self._clock()
        self._send_safely()

    def _fire(self) -> None:
        with self._lock:
            self._cancel = None
            self._last = self._clock()
        self._send_safely()

    def _send_safely(self) -> None:
        try:
            self._send()
        except Exception:
            log.exception("could not send the logging job; workers pick spooled messages up within a minute")

    def close(self) -> None:
        """Send what is due now rather than leave it to a timer that may not outlive the process."""
        with self._lock:
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()
            self._send_safely()


def send_log_spooled_job() -> None:
    from touchline.worker import current_queue

    current_queue().send(spool.LOG_SPOOLED_JOB)


# --- the SMTP handler ----------------------------------------------------------------------------


class _Cache:
    """A small time-limited memo for RCPT-time look-ups."""

    def __init__(self, seconds: float, size: int = 10_000) -> None:
        self._seconds = seconds
        self._size = size
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any) -> tuple[bool, Any]:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + self._seconds, value)


class LogHandler:
    """aiosmtpd hooks: RCPT and DATA are checked against the workspace's users as read lately (see
    CACHE_SECONDS), refusals are recorded for admins, and accepted messages go to the writer."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        committer: GroupCommitter,
        executor: concurrent.futures.Executor,
        *,
        checks: SenderChecks,
    ) -> None:
        self._sessions = sessions
        self._committer = committer
        self._executor = executor
        self._checks = checks
        self._workspaces = _Cache(CACHE_SECONDS)
        self._loggers = _Cache(CACHE_SECONDS)
        self._addressed: WeakKeyDictionary[Envelope, list[uuid.UUID]] = WeakKeyDictionary()

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        addressed = self._addressed.setdefault(envelope, [])
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 at most {MAX_RECIPIENTS} recipients per message"
        loop = asyncio.get_running_loop()
        try:
            known, workspace_id = self._workspaces.get(address.lower())
            if not known:
                workspace_id = await loop.run_in_executor(self._executor, self._resolve, address)
            if workspace_id is None:
                return f"550 5.1.1 <{_printable(address)}>: no such log address here"
            who = await self._loggers_of([workspace_id])
            whose = who[workspace_id]
            refusal = (
                service.NO_WORKSPACE if whose is None else service.refuse_envelope(whose, envelope.mail_from)
            )
            if refusal is not None:
                info = LogEnvelope("smtp", envelope.mail_from, _peer(session))
                await loop.run_in_executor(
                    self._executor, self._record, [(workspace_id, refusal)], info, "rcpt", None
                )
                return refusal.smtp_reply
        except Exception as error:
            if database_failed(error):
                return service.DATABASE_UNAVAILABLE.smtp_reply
            log.exception("checking recipient %r failed", address)
            return _INTERNAL_ERROR
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        if workspace_id not in addressed:
            addressed.append(workspace_id)
        return "250 2.1.5 OK"

    def _resolve(self, address: str) -> uuid.UUID | None:
        with session_scope(self._sessions) as session:
            workspace_id = service.resolve_log_address(session, address)
        self._workspaces.put(address.lower(), workspace_id)
        return workspace_id

    async def _loggers_of(self, workspaces: list[uuid.UUID]) -> dict[uuid.UUID, service.Loggers | None]:
        """Who may log into each workspace, as read within CACHE_SECONDS; read now where not."""
        found: dict[uuid.UUID, service.Loggers | None] = {}
        for workspace_id in workspaces:
            known, who = self._loggers.get(workspace_id)
            if not known:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(self._executor, self._read_loggers, workspaces)
            found[workspace_id] = who
        return found

    def _read_loggers(self, workspaces: list[uuid.UUID]) -> dict[uuid.UUID, service.Loggers | None]:
        with session_scope(self._sessions) as session:
            found = {workspace_id: service.loggers(session, workspace_id) for workspace_id in workspaces}
        for workspace_id, who in found.items():
            self._loggers.put(workspace_id, who)
        return found

    def _record(
        self,
        refusals: list[tuple[uuid.UUID, LogResult]],
        envelope: LogEnvelope,
        stage: str,
        prepared: service.Prepared | None,
    ) -> None:
        with session_scope(self._sessions) as session:
            for workspace_id, refusal in refusals:
                if refusal.outcome == "refused" and refusal is not service.NO_WORKSPACE:
                    service.record_refusal(
                        session, workspace_id, refusal, envelope, stage=stage, prepared=prepared
                    )

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        workspaces = self._addressed.pop(envelope, [])
        if not workspaces:
            return "503 5.5.1 no valid recipients"
        try:
            return await self._log(session, envelope, workspaces)
        except Exception as error:
            if database_failed(error):
                return service.DATABASE_UNAVAILABLE.smtp_reply
            # Whatever went wrong, the sender keeps the message and tries again later.
            log.exception("logging a message from %r failed", envelope.mail_from)
            return _INTERNAL_ERROR

    async def _log(self, session: SmtpSession, envelope: Envelope, workspaces: list[uuid.UUID]) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        head = header_block(raw)
        if len(head) <= HEADERS_READ_INLINE:
            headers = parse_headers(raw)
        else:
            headers = await loop.run_in_executor(self._executor, parse_headers, raw)
        who = await self._loggers_of(workspaces)
        info = LogEnvelope("smtp", envelope.mail_from, _peer(session))
        from_addresses = [address.address for address in headers.from_]
        evidence = NO_EVIDENCE
        # DNS is asked only when something depends on it: not for the operator's own relays, nor
        # when every workspace addressed lets the From domains in unauthenticated.
        if (
            from_addresses
            and not self._checks.trusts_client(info.peer)
            and any(
                whose is not None and not set(service.from_domains(from_addresses)) <= whose.relaxed_domains
                for whose in who.values()
            )
        ):
            evidence = await loop.run_in_executor(
                self._executor, service.authenticate, raw, head, headers, info, self._checks
            )
        refused: list[tuple[uuid.UUID, LogResult]] = []
        accepted: list[uuid.UUID] = []
        for workspace_id in workspaces:
            whose = who[workspace_id]
            refusal = (
                service.NO_WORKSPACE
                if whose is None
                else service.refuse_message(whose, from_addresses, info, evidence, self._checks)
            )
            if refusal is None:
                accepted.append(workspace_id)
            else:
                refused.append((workspace_id, refusal))
        if refused:
            prepared = service.Prepared(raw, head, headers, evidence)
            await loop.run_in_executor(self._executor, self._record, refused, info, "data", prepared)
        results = [refusal for _, refusal in refused]
        waits = [self._committer.submit(spool.Offered(workspace_id, raw, info)) for workspace_id in accepted]
        for wait in waits:
            results.append(await wait)
        logged = [result for result in results if result.outcome == "accepted"]
        if logged and len(results) > 1:
            return f"250 2.0.0 accepted for {len(logged)} of {len(results)} log addresses"
        return (logged[0] if logged else results[0]).smtp_reply


_INTERNAL_ERROR = "451 4.3.0 the message could not be processed just now; try again later"


def _peer(session: SmtpSession) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")


def _printable(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:320]


# --- the server ----------------------------------------------------------------------------------


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """A server context for STARTTLS when a certificate and key are configured, else None."""
    if settings.inbound_tls_cert is None or settings.inbound_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.inbound_tls_cert), str(settings.inbound_tls_key))
    return context


class InboundServer:
    """The log address's SMTP server on a thread of its own: `start()` returns once it listens.

    Port 0 picks a free port (see `port`). `stop()` closes the listener, lets the writer finish what
    it has queued, and disposes of the engine it created.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        host: str | None = None,
        port: int | None = None,
        sessions: sessionmaker[Session] | None = None,
        checks: SenderChecks | None = None,
        on_spooled: Callable[[], None] | None = None,
    ) -> None:
        """`on_spooled` runs on the event loop's thread after each commit that spooled messages,
        before their replies are sent; by default it sends the logging job through the queue."""
        self.settings = settings
        self.host = host if host is not None else settings.inbound_smtp_host
        self.port = port if port is not None else settings.inbound_smtp_port
        self._engine: Engine | None = None
        if sessions is None:
            self._engine = make_engine(settings.resolved_database_url)
            sessions = make_sessionmaker(self._engine)
        self.sessions = sessions
        self._notifier = SpoolNotifier(send_log_spooled_job) if on_spooled is None else None
        self.committer = GroupCommitter(sessions, on_spooled or self._notifier or send_log_spooled_job)
        self._executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="touchline-inbound")
        self.handler = LogHandler(
            sessions,
            self.committer,
            self._executor,
            checks=checks or SenderChecks.of(settings),
        )
        self._tls = tls_context(settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None

    def _factory(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=self.settings.inbound_max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=self.settings.inbound_domain,
            ident="touchline log address",
            tls_context=self._tls,
            loop=self._loop,
        )

    async def _listen(self) -> None:
        # Several `serve` processes on one machine share the port (SO_REUSEPORT, where the system has
        # it): the kernel spreads connections over them, and any of them stopping leaves the others on.
        self._server = await asyncio.get_running_loop().create_server(
            self._factory, self.host, self.port, reuse_port=hasattr(socket, "SO_REUSEPORT")
        )
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def start(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._listen())
            except BaseException as error:
                failure.append(error)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="touchline-inbound-smtp", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._shutdown_workers()
            raise failure[0]
        log.info("log address SMTP server listening on %s:%s", self.host, self.port)

    def stop(self) -> None:
        loop, server = self._loop, self._server
        if loop is not None and server is not None and loop.is_running():

            async def close() -> None:
                server.close()
                # Open sessions end here; a client in the middle of DATA gets no reply and retries.
                current = asyncio.current_task()
                pending = [task for task in asyncio.all_tasks() if task is not current]
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await server.wait_closed()

            try:
                asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=10)
            except (TimeoutError, concurrent.futures.TimeoutError):
                log.warning("open SMTP connections did not close in time")
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._shutdown_workers()

    def _shutdown_workers(self) -> None:
        if self._notifier is not None:
            self._notifier.close()
        self._executor.shutdown(wait=True)
        if self._engine is not None:
            self._engine.dispose()

    def __enter__(self) -> InboundServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def run_inbound_server(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    *,
    on_ready: Callable[[InboundServer], None] | None = None,
) -> None:
    """`touchline inbound`: serve the log address until SIGINT or SIGTERM; blocks. The caller
    configures the job queue the logging job is sent through (and any worker of this process)."""
    stop = threading.Event()
    previous = {
        number: signal.signal(number, lambda *_: stop.set()) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with InboundServer(settings, host=host, port=port) as server:
            if on_ready is not None:
                on_ready(server)
            stop.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
