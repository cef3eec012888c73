"""The tracking endpoints, a lean ASGI app of its own: the open pixel and the click redirects.

    GET|HEAD /t/o/{token}.gif   a 1x1 GIF, `Cache-Control: no-store`      (a token of kind open)
    GET|HEAD /t/c/{token}       302 to the URL recorded for the token     (kind click)
                                204, nothing to follow                    (the honeypot)

Any other token, or a token used on the other path, is answered 404, never redirected: a click goes
only to the address recorded when the email was sent, whatever the request adds.

Every hit is stored as one EngagementEvent before its response leaves (a 2xx means it is stored),
labelled with its request-level machine reason (`signals`). Hits from concurrent requests are
written by one writer task in one transaction per batch (group commit): each request waits for its
batch's commit, so the endpoint stays fast without answering before the event is durable. A failed
commit answers 503 to each of its batch's requests, and stores none of them.

The app keeps no state but a cache of tokens (they never change once issued), so several processes
may serve it from one PostgreSQL database. `touchline serve` mounts it at /t; `touchline tracking`
runs it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, cast
from urllib.parse import quote

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.inbound.store.bulk import DriverRows
from touchline.models.base import time_ordered_uuids, utcnow
from touchline.models.engagement import EngagementEvent, TrackedLink
from touchline.outbound.engagement import REFRESH_JOB
from touchline.outbound.track import signals
from touchline.worker import Queue

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Clock = Callable[[], datetime]

PIXEL: Final = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
"""A transparent 1x1 GIF (43 bytes)."""
MAX_BATCH: Final = 500
"""Events written in one transaction at most."""
GATHER_SECONDS: Final = 0.001
"""How long at most a batch smaller than the recent concurrency waits for more hits."""
CONCURRENCY_WINDOW_SECONDS: Final = 1.0
"""How long the most hits seen in flight at once stands as the concurrency a batch waits for."""
CHECKPOINT_EVERY_SECONDS: Final = 1.0
"""On SQLite, how often at most the writer copies the write-ahead log into the database."""
REFRESH_EVERY_SECONDS: Final = 0.25
"""The engagement refresh job is sent at most this often by each writer (for all emails since)."""
MAX_CACHED_TOKENS: Final = 100_000
MAX_CACHED_REASONS: Final = 10_000
_UNKNOWN: Final = object()
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
_OPEN_PATH: Final = re.compile(r"/o/([^/]+)\.gif")
_CLICK_PATH: Final = re.compile(r"/c/([^/]+)")
# What a Location header may carry as written; anything else in a recorded URL is percent-encoded.
_URL_SAFE: Final = "!#$%&'()*+,/:;=?@[]~"
_NO_STORE: Final = (b"cache-control", b"no-store")
BUNDLED_RELAY_RANGES: Final = "apple_relay_ranges.csv"
_EVENTS: Final = cast("Table", EngagementEvent.__table__)


def relay_ranges_of(settings: Settings) -> signals.RelayRanges:
    """The Apple Private Relay ranges the operator's file names, else the sample bundled here."""
    if settings.apple_relay_ranges_file is not None:
        return signals.RelayRanges.from_csv(settings.apple_relay_ranges_file)
    bundled = files("touchline.outbound.track").joinpath(BUNDLED_RELAY_RANGES)
    return signals.RelayRanges.from_csv(Path(str(bundled)))


class JobSender(Protocol):
    """Where the refresh job goes after each commit: the process's queue."""

    def send(self, name: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class _Link:
    id: uuid.UUID
    workspace_id: uuid.UUID
    outbound_id: uuid.UUID
    kind: str
    answer: _Answer
    """What a hit of it is answered once stored: the pixel, the redirect to the recorded URL, or 204."""


Hit = tuple[uuid.UUID, uuid.UUID, str, datetime, uuid.UUID, str, str | None, str | None]
"""One tracking hit as a request leaves it for the writer: (workspace_id, outbound_email_id, kind,
occurred_at, link_id, method, user_agent, machine_reason). A plain tuple: it is made on every hit."""
EVENT_COLUMNS: Final = (
    "id",
    "workspace_id",
    "outbound_email_id",
    "kind",
    "occurred_at",
    "link_id",
    "method",
    "user_agent",
    "machine_reason",
    "detail",
)
"""The columns a hit fills, in the order of the rows the writer stores (`Hit` between an id and an
empty detail)."""
LINK_COLUMNS: Final = frozenset({"workspace_id", "outbound_email_id", "link_id"})
"""The columns whose values come from the link hit: a few values, repeated by every hit of it."""
_EMPTY_DETAIL: Final[dict[str, object]] = {}
"""The detail of every hit (one object, so each batch encodes it once; never changed)."""


class EventWriter:
    """Writes the hits of concurrent requests in one transaction per batch; `record` returns once
    its event is committed, and raises when its batch could not be.

    The writer keeps one connection of its own and hands each batch to the driver (COPY on
    PostgreSQL, executemany elsewhere) as rows of values already in the database's form (the
    columns' own bind processors, looked up once; a link's values encoded once): per hit it does no
    SQLAlchemy work. Event ids are time-ordered, so a batch appends to the primary key's index.

    A commit's cost is mostly fixed, so the writer shares it by as many hits as it can: when fewer
    hits wait than the most that were in flight at once during the last `concurrency_window`
    seconds, it waits at most `gather` seconds for the rest before committing. Under a steady load
    of N concurrent clients each batch then holds about N hits instead of splitting into cohorts
    (the hits that arrived during the previous commit, and those it answered); a lone hit after a
    quiet spell is committed at once. The engagement refresh job is sent at most every
    `refresh_every` seconds, for every email whose events were stored since the last one: the first
    batch after a quiet spell sends it at once, after its commit and before its requests are
    answered; a burst sends one more when the interval is up."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        jobs: JobSender | None,
        *,
        refresh_every: float = REFRESH_EVERY_SECONDS,
        gather: float = GATHER_SECONDS,
        concurrency_window: float = CONCURRENCY_WINDOW_SECONDS,
        checkpoint_every: float = CHECKPOINT_EVERY_SECONDS,
    ) -> None:
        bind = sessions.kw.get("bind")
        if not isinstance(bind, Engine):
            raise TypeError("the tracking writer needs sessions bound to an engine")
        self._engine = bind
        self.jobs = jobs
        self.refresh_every = refresh_every
        self.gather = gather
        self.concurrency_window = concurrency_window
        self.checkpoint_every = checkpoint_every
        self._last_checkpoint = -math.inf
        self._checkpointing: asyncio.Task[None] | None = None
        self._uncheckpointed = False
        self._connection: Connection | None = None
        self._events: DriverRows | None = None
        self._waiting: list[tuple[Hit, asyncio.Future[None]]] = []
        self._wake: asyncio.Future[None] | None = None
        self._wanted = 1
        self._in_flight = 0
        self._concurrency = 0
        self._concurrency_since = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: set[uuid.UUID] = set()
        self._last_refresh = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    async def record(self, hit: Hit) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # Started by the first hit of each event loop: a mounted app gets no lifespan of its own.
            self._loop = loop
            self._waiting = []
            self._wake = None
            self._task = loop.create_task(self._drain())
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((hit, done))
        self._in_flight += 1
        self._concurrency = max(self._concurrency, self._in_flight)
        wake = self._wake
        if wake is not None and not wake.done() and len(self._waiting) >= self._wanted:
            wake.set_result(None)
        try:
            await done
        finally:
            self._in_flight -= 1

    def waiting(self) -> int:
        """The hits waiting for the next batch."""
        return len(self._waiting)

    async def _until_waiting(
        self, loop: asyncio.AbstractEventLoop, wanted: int, timeout: float | None
    ) -> None:
        """Returns once `wanted` hits wait, or after `timeout` seconds."""
        self._wanted = wanted
        wake = self._wake = loop.create_future()
        timer = loop.call_later(timeout, _settle, wake) if timeout is not None else None
        await wake
        if timer is not None:
            timer.cancel()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                await self._until_waiting(loop, 1, None)
            # Hits come in cohorts: those that arrived during the last commit, and those answered by
            # it, whose clients come back a round trip later. A batch smaller than the concurrency
            # seen lately waits a little for the rest, so one commit serves them all.
            wanted = min(self._concurrency, MAX_BATCH)
            if len(self._waiting) < wanted and self.gather > 0:
                await self._until_waiting(loop, wanted, self.gather)
            now = loop.time()
            if now - self._concurrency_since >= self.concurrency_window:
                self._concurrency, self._concurrency_since = self._in_flight, now
            batch = self._waiting[:MAX_BATCH]
            del self._waiting[:MAX_BATCH]
            hits = [hit for hit, _ in batch]
            emails = {hit[1] for hit in hits}
            refresh: list[uuid.UUID] = []
            carried, last_refresh = self._due, self._last_refresh
            if self._timer is None and time.monotonic() - last_refresh >= self.refresh_every:
                refresh, self._due = sorted(carried | emails), set()
                self._last_refresh = time.monotonic()
            try:
                await asyncio.to_thread(self._commit, hits, refresh)
            except Exception as error:
                log.exception("storing %d tracking events failed", len(hits))
                self._due |= carried
                if refresh:
                    self._last_refresh = last_refresh
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)
            self._uncheckpointed = True
            self._checkpoint_later(loop)
            if not refresh:
                self._due |= emails
                self._refresh_later(loop)

    def _checkpoint_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if (
            self._engine.dialect.name != "sqlite"
            or time.monotonic() - self._last_checkpoint < self.checkpoint_every
        ):
            return
        if self._checkpointing is not None and not self._checkpointing.done():
            return
        self._last_checkpoint, self._uncheckpointed = time.monotonic(), False
        self._checkpointing = loop.create_task(asyncio.to_thread(self.checkpoint))

    def checkpoint(self) -> None:
        """Copies the committed write-ahead log into the database file (SQLite), on a connection of
        its own: the writer's connection leaves this to it, as a checkpoint inside a commit (SQLite's
        default, every 1,000 pages) holds that batch's answers for the checkpoint's two fsyncs."""
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
            cursor.close()
        except Exception:
            log.exception("checkpointing the tracking events failed")
        finally:
            connection.close()

    def _refresh_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None or not self._due:
            return
        wait = max(0.0, self._last_refresh + self.refresh_every - time.monotonic())
        self._timer = loop.call_later(wait, self._refresh_due, loop)

    def _refresh_due(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._due:
            return
        emails, self._due = sorted(self._due), set()
        self._last_refresh = time.monotonic()
        task = loop.create_task(asyncio.to_thread(self._refresh, emails))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _commit(self, hits: list[Hit], refresh: list[uuid.UUID]) -> None:
        connection = self._connection or self._connect()
        rows = self._rows(hits)
        try:
            with connection.begin():
                self.store(connection, rows)
        except Exception:
            # A broken connection is not reused; the next batch opens another.
            self._connection = None
            with contextlib.suppress(Exception):
                connection.invalidate()
            raise
        if refresh:
            self._refresh(refresh)

    def _connect(self) -> Connection:
        connection = self._engine.connect()
        if self._engine.dialect.name == "sqlite":
            # Checkpoints are `checkpoint`'s; the connection is closed with the writer, not pooled
            # with this setting.
            connection.detach()
            setting = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            setting.execute("PRAGMA wal_autocheckpoint=0")
            setting.close()
        if self._engine.dialect.name == "postgresql":
            # One COPY is one atomic statement: run as its own transaction it needs no BEGIN and
            # COMMIT, two round trips a batch fewer, and its success still means the batch is durable.
            connection.execution_options(isolation_level="AUTOCOMMIT")
        if self._events is None:
            self._events = DriverRows(_EVENTS, EVENT_COLUMNS, self._engine.dialect, remember=LINK_COLUMNS)
        self._connection = connection
        return connection

    def _rows(self, hits: list[Hit]) -> list[list[object]]:
        assert self._events is not None, "rows are made once connected"
        ids = time_ordered_uuids(len(hits))
        return self._events.encoded(
            [(event_id, *hit, _EMPTY_DETAIL) for event_id, hit in zip(ids, hits, strict=True)]
        )

    def store(self, connection: Connection, rows: list[list[object]]) -> None:
        """Stores one batch's rows, all or none: on PostgreSQL one COPY, its own transaction (a third
        less CPU than executemany for a batch of 16); elsewhere the driver's executemany in the
        batch's transaction."""
        assert self._events is not None, "rows are stored once connected"
        self._events.write(connection, rows)

    def _refresh(self, outbound_ids: list[uuid.UUID]) -> None:
        if self.jobs is None:
            return
        try:
            self.jobs.send(REFRESH_JOB, outbound_ids=[str(outbound_id) for outbound_id in outbound_ids])
        except Exception:
            # The events are stored; the engagement records catch up with them on their next refresh.
            log.exception("sending %s for %d emails failed", REFRESH_JOB, len(outbound_ids))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._checkpointing is not None:
            running, self._checkpointing = self._checkpointing, None
            # A request served on a loop of its own (a test client's) leaves its task behind.
            if running.get_loop() is asyncio.get_running_loop() and not running.done():
                await asyncio.wait({running})
        if self._uncheckpointed:
            self._uncheckpointed = False
            await asyncio.to_thread(self.checkpoint)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._due:
            emails, self._due = sorted(self._due), set()
            await asyncio.to_thread(self._refresh, emails)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await asyncio.to_thread(connection.close)


def _settle(wake: asyncio.Future[None]) -> None:
    if not wake.done():
        wake.set_result(None)


class TrackingApp:
    """The ASGI app. `prefix`: the path it answers under when it runs alone ("/t"); mounted, the
    mount's root path is taken off instead."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        jobs: JobSender | None,
        relay_ranges: signals.RelayRanges,
        clock: Clock = utcnow,
        prefix: str = "",
        writer: EventWriter | None = None,
    ) -> None:
        self.sessions = sessions
        self.relay_ranges = relay_ranges
        self.clock = clock
        self.prefix = prefix
        self.writer = writer or EventWriter(sessions, jobs)
        self._links: dict[str, _Link] = {}
        # The machine reason of each (method, user agent, address) seen lately: a pure function of them.
        self._reasons: dict[tuple[str, str, str | None], object] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                await _respond(send, scope, _NOT_FOUND)
                return
            path = path[len(self.prefix) :]
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, scope, _NOT_ALLOWED)
            return
        opened = _OPEN_PATH.fullmatch(path)
        matched = opened or _CLICK_PATH.fullmatch(path)
        link = await self._link(matched.group(1)) if matched else None
        wanted = ("open",) if opened else ("click", "honeypot")
        if link is None or link.kind not in wanted:
            await _respond(send, scope, _NOT_FOUND)
            return
        try:
            await self.writer.record(self._hit(scope, link, method))
        except Exception:
            await _respond(send, scope, _UNAVAILABLE)
            return
        await _respond(send, scope, link.answer)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hit(self, scope: Scope, link: _Link, method: str) -> Hit:
        user_agent = ""
        for name, value in scope["headers"]:
            if name == b"user-agent":
                user_agent = value.decode("latin-1")[: signals.MAX_USER_AGENT_CHARS]
                break
        client = scope.get("client")
        address = client[0] if client else None
        key = (method, user_agent, address)
        reason = self._reasons.get(key, _UNKNOWN)
        if reason is _UNKNOWN:
            reason = signals.machine_reason(signals.Request(method, user_agent, address), self.relay_ranges)
            if len(self._reasons) >= MAX_CACHED_REASONS:
                self._reasons.clear()
            self._reasons[key] = reason
        return (
            link.workspace_id,
            link.outbound_id,
            link.kind,
            self.clock(),
            link.id,
            method,
            user_agent or None,
            cast("str | None", reason),
        )

    async def _link(self, token: str) -> _Link | None:
        if not _TOKEN.fullmatch(token):
            return None
        cached = self._links.get(token)
        if cached is not None:
            return cached
        found = await asyncio.to_thread(self._lookup, token)
        if found is not None:
            if len(self._links) >= MAX_CACHED_TOKENS:
                self._links.clear()
            self._links[token] = found
        return found

    def _lookup(self, token: str) -> _Link | None:
        with self.sessions() as session:
            row = session.execute(
                select(
                    TrackedLink.id,
                    TrackedLink.workspace_id,
                    TrackedLink.outbound_email_id,
                    TrackedLink.kind,
                    TrackedLink.url,
                ).where(TrackedLink.token == token)
            ).one_or_none()
        if row is None:
            return None
        if row.kind == "open":
            answer = _PIXEL_ANSWER
        elif row.kind == "click" and row.url:
            answer = _redirect_to(row.url)
        else:
            answer = _NO_CONTENT
        return _Link(row.id, row.workspace_id, row.outbound_email_id, row.kind, answer)


@dataclass(frozen=True)
class _Answer:
    """A response, its headers made once: most answers are the same every time (the pixel, 404,
    204), and a click's redirect the same for every hit of its link."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    @classmethod
    def of(cls, status: int, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> _Answer:
        return cls(status, [_NO_STORE, (b"content-length", str(len(body)).encode()), *(headers or [])], body)


_PIXEL_ANSWER: Final = _Answer.of(200, [(b"content-type", b"image/gif")], PIXEL)
_NO_CONTENT: Final = _Answer.of(204)
_NOT_FOUND: Final = _Answer.of(404)
_NOT_ALLOWED: Final = _Answer.of(405, [(b"allow", b"GET, HEAD")])
_UNAVAILABLE: Final = _Answer.of(503, [(b"retry-after", b"1")])


def _redirect_to(url: str) -> _Answer:
    location = quote(url, safe=_URL_SAFE).encode("ascii")
    return _Answer.of(302, [(b"location", location), (b"referrer-policy", b"no-referrer")])


async def _respond(send: Send, scope: Scope, answer: _Answer) -> None:
    # The header list is shared by every response of its kind: servers only read it.
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else answer.body})


def create_tracking_app(
    settings: Settings,
    sessions: sessionmaker[Session],
    jobs: JobSender | None,
    *,
    clock: Clock = utcnow,
    prefix: str = "",
) -> TrackingApp:
    if isinstance(jobs, Queue):
        try:
            jobs.task(REFRESH_JOB)
        except KeyError:
            log.warning("no job named %s in this process: engagement records are not refreshed", REFRESH_JOB)
            jobs = None
    return TrackingApp(
        sessions, jobs=jobs, relay_ranges=relay_ranges_of(settings), clock=clock, prefix=prefix
    )
