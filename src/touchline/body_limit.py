"""Request bodies larger than their route allows are refused with 413 before they fill memory or disk.

A declared Content-Length over the limit is refused before a byte is read. A body sent without one
(chunked) is counted as it arrives: the read that crosses the limit raises ``HTTPException(413)``,
which the application's error handler turns into the usual JSON or HTML answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi import HTTPException
from starlette.status import HTTP_413_CONTENT_TOO_LARGE
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from touchline.api_errors import PROBLEM_MEDIA_TYPE, problem_bytes
from touchline.config import Settings
from touchline.workspace.importing import MAX_IMPORT_BYTES

# Room for a multipart upload's boundaries and part headers around the CSV file itself.
_MULTIPART_ALLOWANCE = 64 * 1024


def route_limits(settings: Settings) -> list[tuple[re.Pattern[str], int]]:
    """The routes that take more than the default: CSV imports and raw messages for the log address."""
    return [
        (re.compile(r"^(/api/v1)?/imports/"), MAX_IMPORT_BYTES + _MULTIPART_ALLOWANCE),
        (re.compile(r"^/api/v1/inbound/[^/]+/messages$"), settings.inbound_max_message_bytes),
    ]


def too_large(limit: int) -> str:
    return f"the request body is larger than this address accepts ({limit} bytes)"


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, default_limit: int, route_limits: Sequence[tuple[re.Pattern[str], int]] = ()
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.route_limits = tuple(route_limits)

    def limit_for(self, path: str) -> int:
        limits = (limit for pattern, limit in self.route_limits if pattern.match(path))
        return next(limits, self.default_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await _refuse(send, limit)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(HTTP_413_CONTENT_TOO_LARGE, too_large(limit))
            return message

        await self.app(scope, counted, send)


async def _refuse(send: Send, limit: int) -> None:
    body = problem_bytes(HTTP_413_CONTENT_TOO_LARGE, too_large(limit))
    await send(
        {
            "type": "http.response.start",
            "status": HTTP_413_CONTENT_TOO_LARGE,
            # The unread body stays on the connection: it must not carry another request.
            "headers": [
                (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
