"""Failures a test queues up for a fake API to answer with, in order, before answering normally.

Besides error answers, a test can queue a dropped connection: the fake reads the request, acts on
it or not, starts its answer and then closes the connection, so the client learns nothing of the
outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send


@dataclass(frozen=True)
class InjectedFailure:
    status: int
    body: dict[str, Any]
    path_contains: str = ""
    retry_after: str | None = None


@dataclass(frozen=True)
class InjectedDrop:
    path_contains: str
    after_handling: bool


class ConnectionDropped(Exception):
    """Raised inside the server once the answer has begun; the server then closes the connection."""


class DroppedConnection(Response):
    """Starts an answer promising a body, then fails: the server can only close the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        raise ConnectionDropped("the fake dropped the connection on purpose")


@dataclass
class FailureQueue:
    pending: list[InjectedFailure] = field(default_factory=list)
    drops: list[InjectedDrop] = field(default_factory=list)

    def drop_connection(self, *, path_contains: str, after_handling: bool = True) -> None:
        """The next request to a matching path loses its connection: after the fake acted on it
        (``after_handling``, the provider did the work and the answer was lost) or before."""
        self.drops.append(InjectedDrop(path_contains, after_handling))

    def take_drop(self, request: Request) -> InjectedDrop | None:
        for index, drop in enumerate(self.drops):
            if drop.path_contains in request.url.path:
                del self.drops[index]
                return drop
        return None

    def add(
        self,
        status: int,
        body: dict[str, Any],
        *,
        path_contains: str = "",
        retry_after: str | None = None,
        times: int = 1,
    ) -> None:
        self.pending.extend([InjectedFailure(status, body, path_contains, retry_after)] * times)

    def take(self, request: Request) -> Response | None:
        """The response for the first queued failure this request matches, if any."""
        for index, failure in enumerate(self.pending):
            if failure.path_contains in request.url.path:
                del self.pending[index]
                headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else None
                return JSONResponse(failure.body, status_code=failure.status, headers=headers)
        return None
