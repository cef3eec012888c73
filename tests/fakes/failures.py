"""Failures a test queues up for a fake API to answer with, in order, before answering normally."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


@dataclass(frozen=True)
class InjectedFailure:
    status: int
    body: dict[str, Any]
    path_contains: str = ""
    retry_after: str | None = None


@dataclass
class FailureQueue:
    pending: list[InjectedFailure] = field(default_factory=list)

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
