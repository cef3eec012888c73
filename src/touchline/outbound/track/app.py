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
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Final, Protocol, cast
from urllib.parse import quote

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from touchline.config import Settings
from touchline.db import session_scope
from touchline.models.base import utcnow
from touchline.models.engagement import EngagementEvent, TrackedLink
from touchline.outbound.engagement import REFRESH_JOB
from touchline.outbound.track import signals
from touchline.worker import Queue

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
MAX_CACHED_TOKENS: Final = 100_000
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
    url: str | None


class EventWriter:
    """Writes the hits of concurrent requests in one transaction per batch; `record` returns once
    its event is committed, and raises when its batch could not be."""

    def __init__(self, sessions: sessionmaker[Session], jobs: JobSender | None) -> None:
        self._sessions = sessions
        self.jobs = jobs
        self._pending: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def record(self, event: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            # Started by the first hit of each event loop: a mounted app gets no lifespan of its own.
            self._loop = loop
            self._pending = asyncio.Queue()
            self._task = loop.create_task(self._drain(self._pending))
        assert self._pending is not None
        done: asyncio.Future[None] = loop.create_future()
        self._pending.put_nowait((event, done))
        await done

    async def _drain(self, pending: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[None]]]) -> None:
        while True:
            batch = [await pending.get()]
            while len(batch) < MAX_BATCH and not pending.empty():
                batch.append(pending.get_nowait())
            events = [event for event, _ in batch]
            try:
                await asyncio.to_thread(self._commit, events)
            except Exception as error:
                log.exception("storing %d tracking events failed", len(events))
                for _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)

    def _commit(self, events: list[dict[str, Any]]) -> None:
        with session_scope(self._sessions) as session:
            self.store(session, events)
        self._refresh(sorted({str(event["outbound_email_id"]) for event in events}))

    def store(self, session: Session, events: list[dict[str, Any]]) -> None:
        """Adds one batch's events to the transaction that commits them."""
        # Core's executemany: the ORM's bulk insert costs several times as much per row here.
        session.connection().execute(insert(_EVENTS), events)

    def _refresh(self, outbound_ids: list[str]) -> None:
        if self.jobs is None:
            return
        try:
            self.jobs.send(REFRESH_JOB, outbound_ids=outbound_ids)
        except Exception:
            # The events are stored; the engagement records catch up with them on their next refresh.
            log.exception("sending %s for %d emails failed", REFRESH_JOB, len(outbound_ids))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


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
                await _respond(send, scope, 404)
                return
            path = path[len(self.prefix) :]
        method: str = scope["method"]
        if method not in ("GET", "HEAD"):
            await _respond(send, scope, 405, [(b"allow", b"GET, HEAD")])
            return
        opened = _OPEN_PATH.fullmatch(path)
        matched = opened or _CLICK_PATH.fullmatch(path)
        link = await self._link(matched.group(1)) if matched else None
        wanted = ("open",) if opened else ("click", "honeypot")
        if link is None or link.kind not in wanted:
            await _respond(send, scope, 404)
            return
        try:
            await self.writer.record(self._event(scope, link, method))
        except Exception:
            await _respond(send, scope, 503, [(b"retry-after", b"1")])
            return
        if link.kind == "open":
            await _respond(send, scope, 200, [(b"content-type", b"image/gif")], PIXEL)
        elif link.kind == "click" and link.url:
            location = quote(link.url, safe=_URL_SAFE).encode("ascii")
            await _respond(send, scope, 302, [(b"location", location), (b"referrer-policy", b"no-referrer")])
        else:
            await _respond(send, scope, 204)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.writer.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _event(self, scope: Scope, link: _Link, method: str) -> dict[str, Any]:
        user_agent = ""
        for name, value in scope.get("headers", ()):
            if name == b"user-agent":
                user_agent = value.decode("latin-1")[: signals.MAX_USER_AGENT_CHARS]
                break
        client = scope.get("client")
        request = signals.Request(method, user_agent, client[0] if client else None)
        return {
            "id": uuid.uuid4(),
            "workspace_id": link.workspace_id,
            "outbound_email_id": link.outbound_id,
            "kind": link.kind,
            "occurred_at": self.clock(),
            "link_id": link.id,
            "method": method,
            "user_agent": user_agent or None,
            "machine_reason": signals.machine_reason(request, self.relay_ranges),
            "detail": {},
        }

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
        return _Link(row.id, row.workspace_id, row.outbound_email_id, row.kind, row.url)


async def _respond(
    send: Send,
    scope: Scope,
    status: int,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> None:
    all_headers = [_NO_STORE, (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


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
