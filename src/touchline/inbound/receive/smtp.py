"""The log address's SMTP server: aiosmtpd in front, a group-committing writer behind.

Replies mean what they say: 250 after DATA is sent only once the transaction that stored the
message has committed. To keep that affordable under load, one writer thread stores every message
that arrived while the previous transaction was committing in the next transaction (a group commit),
decided one by one and stored together (`service.log_batch`), so that one bad message costs only
itself.

- RCPT: only log addresses are accepted (550 5.1.1 otherwise; nothing is relayed), and the envelope
  sender must be an active user of that workspace (550 5.7.1, recorded for admins).
- DATA: larger than `inbound_max_message_bytes` is 552 (aiosmtpd counts while reading); the
  rest goes through `service.log_prepared` for each workspace addressed.
- STARTTLS is offered when `inbound_tls_cert` and `inbound_tls_key` are configured.

`run_inbound_server` blocks until interrupted; `InboundServer` runs the same server on a thread of
its own for `touchline serve` and tests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import signal
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
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import make_engine, make_sessionmaker, session_scope
from touchline.inbound.receive import service
from touchline.inbound.receive.service import Envelope as LogEnvelope
from touchline.inbound.receive.service import LogResult, Prepared
from touchline.inbound.receive.signatures import TxtLookup

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 20
MAX_BATCH = 64
"""Messages stored in one transaction at most; more would hold SQLite's write lock for long."""
CACHE_SECONDS = 30.0
"""How long RCPT-time answers are reused. DATA checks again inside the storing transaction, so a
stale answer can only delay a refusal until DATA, never let a message through."""


# --- the writer ----------------------------------------------------------------------------------


@dataclass
class _Job:
    workspace_id: uuid.UUID
    prepared: Prepared
    envelope: LogEnvelope
    future: concurrent.futures.Future[LogResult]


class GroupCommitter:
    """Stores queued messages on one thread, as many per transaction as are waiting (up to MAX_BATCH)."""

    def __init__(self, sessions: sessionmaker[Session], *, max_batch: int = MAX_BATCH) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="touchline-inbound-writer", daemon=True)
        self.batches = 0
        self.messages = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=60)

    def submit(
        self, workspace_id: uuid.UUID, prepared: Prepared, envelope: LogEnvelope
    ) -> concurrent.futures.Future[LogResult]:
        future: concurrent.futures.Future[LogResult] = concurrent.futures.Future()
        self._queue.put(_Job(workspace_id, prepared, envelope, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        try:
            with session_scope(self._sessions) as session:
                results = service.log_batch(
                    session, [service.LogJob(job.workspace_id, job.prepared, job.envelope) for job in batch]
                )
        except Exception as error:
            if len(batch) > 1:
                # Something failed the whole transaction (most likely its commit): try each message
                # alone, so one cause costs one message.
                for job in batch:
                    self._commit([job])
                return
            results = [self._alone_failed(batch[0], error)]
        self.batches += 1
        self.messages += len(batch)
        for job, result in zip(batch, results, strict=True):
            job.future.set_result(result)

    def _alone_failed(self, job: _Job, error: Exception) -> LogResult:
        if isinstance(error, OperationalError):
            log.warning("database unavailable while logging a message: %s", error)
            return service.DATABASE_UNAVAILABLE
        try:
            with session_scope(self._sessions) as session:
                return service.quarantined(session, job.workspace_id, job.prepared.raw, job.envelope, error)
        except Exception:
            log.exception("could not quarantine a message that failed to log")
            return service.DATABASE_UNAVAILABLE


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
    """aiosmtpd hooks: check RCPT and the envelope sender, then hand DATA to the writer."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        committer: GroupCommitter,
        executor: concurrent.futures.Executor,
        *,
        dkim_lookup: TxtLookup | None = None,
        dkim_timeout: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._committer = committer
        self._executor = executor
        self._dkim_lookup = dkim_lookup
        self._dkim_timeout = dkim_timeout
        self._workspaces = _Cache(CACHE_SECONDS)
        self._senders = _Cache(CACHE_SECONDS)
        self._addressed: WeakKeyDictionary[Envelope, list[uuid.UUID]] = WeakKeyDictionary()

    async def handle_RCPT(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        addressed = self._addressed.setdefault(envelope, [])
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 at most {MAX_RECIPIENTS} recipients per message"
        loop = asyncio.get_running_loop()
        peer = _peer(session)
        try:
            workspace_id, refusal = await loop.run_in_executor(
                self._executor, self._check_recipient, address, envelope.mail_from, peer
            )
        except OperationalError:
            return service.DATABASE_UNAVAILABLE.smtp_reply
        except Exception:
            log.exception("checking recipient %r failed", address)
            return _INTERNAL_ERROR
        if workspace_id is None:
            return f"550 5.1.1 <{_printable(address)}>: no such log address here"
        if refusal is not None:
            return refusal.smtp_reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        if workspace_id not in addressed:
            addressed.append(workspace_id)
        return "250 2.1.5 OK"

    def _check_recipient(
        self, address: str, sender: str | None, peer: str
    ) -> tuple[uuid.UUID | None, LogResult | None]:
        known, workspace_id = self._workspaces.get(address.lower())
        if known and workspace_id is None:
            return None, None
        known_sender, _ = self._senders.get((workspace_id, sender)) if known else (False, None)
        if known and known_sender:
            return workspace_id, None
        with session_scope(self._sessions) as session:
            if not known:
                workspace_id = service.resolve_log_address(session, address)
                self._workspaces.put(address.lower(), workspace_id)
                if workspace_id is None:
                    return None, None
            assert workspace_id is not None
            refusal = service.envelope_refusal(session, workspace_id, sender)
            if refusal is None:
                self._senders.put((workspace_id, sender), True)
                return workspace_id, None
            service.record_refusal(
                session, workspace_id, refusal, LogEnvelope("smtp", sender, peer), stage="rcpt"
            )
            return workspace_id, refusal

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        workspaces = self._addressed.pop(envelope, [])
        if not workspaces:
            return "503 5.5.1 no valid recipients"
        try:
            return await self._log(session, envelope, workspaces)
        except Exception:
            # Whatever went wrong, the sender keeps the message and tries again later.
            log.exception("logging a message from %r failed", envelope.mail_from)
            return _INTERNAL_ERROR

    async def _log(self, session: SmtpSession, envelope: Envelope, workspaces: list[uuid.UUID]) -> str:
        raw = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        prepared = await loop.run_in_executor(
            self._executor,
            lambda: service.prepare(raw, dkim_lookup=self._dkim_lookup, dkim_timeout=self._dkim_timeout),
        )
        sender = envelope.mail_from
        envelope_info = LogEnvelope("smtp", sender, _peer(session))
        futures = [
            asyncio.wrap_future(self._committer.submit(workspace_id, prepared, envelope_info))
            for workspace_id in workspaces
        ]
        results = await asyncio.gather(*futures)
        logged = [result for result in results if result.outcome == "logged"]
        if logged and len(results) > 1:
            return f"250 2.0.0 logged for {len(logged)} of {len(results)} log addresses"
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
        dkim_lookup: TxtLookup | None = None,
    ) -> None:
        self.settings = settings
        self.host = host if host is not None else settings.inbound_smtp_host
        self.port = port if port is not None else settings.inbound_smtp_port
        self._engine: Engine | None = None
        if sessions is None:
            self._engine = make_engine(settings.resolved_database_url)
            sessions = make_sessionmaker(self._engine)
        self.sessions = sessions
        self.committer = GroupCommitter(sessions)
        self._executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="touchline-inbound")
        self.handler = LogHandler(
            sessions,
            self.committer,
            self._executor,
            dkim_lookup=dkim_lookup,
            dkim_timeout=settings.inbound_dkim_dns_timeout,
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
        self._server = await asyncio.get_running_loop().create_server(self._factory, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    def start(self) -> None:
        self.committer.start()
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
        self.committer.stop()
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
    """`touchline inbound`: serve the log address until SIGINT or SIGTERM; blocks."""
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
