"""A fake of the Gmail REST API (``gmail/v1``) and Google's OAuth endpoints, served locally.

It follows the documented behaviour the provider depends on: labels; ``messages.list`` newest first
with ``labelIds``, ``q=after:<epoch seconds>`` and ``nextPageToken`` paging (other search terms are
refused, so a provider that starts relying on them fails here first); ``messages.get`` in
``metadata`` (only the ``metadataHeaders`` asked for) and ``raw`` (base64url) formats; ``history.list``
in increasing id order with non-contiguous ids, ``labelId`` and ``historyTypes`` filters and paging,
answering 404 for a start id older than the history kept; ``users.getProfile`` (the grant's address);
bearer tokens checked against the fake authorization server (401 when expired or revoked); and failures
queued by a test (429 with Retry-After, 403 ``userRateLimitExceeded``, 403 ``domainPolicy``, a
connection dropped after the request was read).

History as users.history.list documents it: records "typically only have id and threadId" (a
``messagesAdded`` entry carries no ``labelIds``; a ``labelsAdded`` entry names the labels added), and
the ``labelId`` filter matches a record when any message of its thread carries the label, so other
messages of the same thread come back too. Quota as the Gmail API "Usage limits" page documents it:
each method costs quota units (``messages.get`` and ``messages.list`` 5, ``history.list`` 2,
``labels.list`` and ``getProfile`` 1, ``messages.send`` 100), and a user who spends more than the
per-user limit within a minute (15,000 units, set lower by a test with ``quota_units_per_minute``) is
answered 429 ``userRateLimitExceeded`` until the minute has passed; the minute runs on ``clock``, which
a test replaces with a fake one. Labels can be renamed (the id stays) and deleted (``labelIds`` naming
it are then refused: 400 "Invalid label").

Sending: ``messages.send`` takes the message as base64url ``raw`` in a JSON body (other forms are
refused), needs one of the scopes Google lists for it (else 403 ``insufficientPermissions``), takes
the recipients from the To, Cc and Bcc headers (400 "Recipient address required" when there are
none), keeps the message's own Message-ID, files it under SENT in the given ``threadId`` when that
thread exists, and answers the new message's id, thread id and labels. ``messages.list`` also takes
``rfc822msgid:<Message-ID>`` (brackets optional), the search for one message by its header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import email
import email.policy
import email.utils
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.failures import DroppedConnection, FailureQueue
from tests.fakes.oauth import FakeAuthorizationServer

API_PREFIX = "/gmail/v1/users/me"
SYSTEM_LABELS = ("INBOX", "SENT", "DRAFT", "SPAM", "TRASH", "UNREAD", "STARRED", "IMPORTANT")
# The scopes messages.send accepts, as its reference lists them.
SEND_SCOPES = (
    "https://mail.google.com/",
    "https://www.googleapis.com/auth/gmail.modify",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.send",
)

Handler = Callable[[Request], Awaitable[Response]]

# Gmail API "Usage limits": the per-user limit and each method's cost in quota units.
USER_QUOTA_UNITS_PER_MINUTE = 15_000
METHOD_COSTS = {"messages.get": 5, "messages.list": 5, "history.list": 2, "labels.list": 1, "getProfile": 1}
SEND_COST = 100


@dataclass
class FakeGmailMessage:
    id: str
    thread_id: str
    label_ids: set[str]
    internal_date: dt.datetime
    raw: bytes

    def header_items(self) -> list[tuple[str, str]]:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.compat32)
        # Gmail returns header values unfolded.
        return [(name, " ".join(str(value).split())) for name, value in parsed.items()]

    def rfc822_message_id(self) -> str:
        value = next((value for name, value in self.header_items() if name.lower() == "message-id"), "")
        return value.strip().removeprefix("<").removesuffix(">")


@dataclass(frozen=True)
class SentRecord:
    """A message sent through ``messages.send``, with the recipients Gmail read from its headers."""

    message_id: str
    recipients: tuple[str, ...]


@dataclass
class _HistoryRecord:
    id: int
    kind: str  # messageAdded or labelAdded
    message_id: str
    thread_id: str
    # The labels of the message's whole thread just after the change: the labelId filter matches on
    # them, so a record of one message also answers for a label only its thread carries.
    thread_labels_after: tuple[str, ...]
    labels_added: tuple[str, ...]


@dataclass
class GmailState:
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    messages: dict[str, FakeGmailMessage] = field(default_factory=dict)
    history: list[_HistoryRecord] = field(default_factory=list)
    history_id: int = 4000
    # Start ids below this are answered with 404, as Gmail does once it has dropped older history.
    oldest_kept_history_id: int = 0
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    failures: FailureQueue = field(default_factory=FailureQueue)
    # Slowing answers down lets a test see how many requests a client keeps in flight at once.
    response_delay_seconds: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    sent: list[SentRecord] = field(default_factory=list)
    quota_units_per_minute: int = USER_QUOTA_UNITS_PER_MINUTE
    clock: Callable[[], float] = time.monotonic
    # (moment, units) of the requests answered within the last minute, and all units ever spent.
    quota_spent: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    units_spent: int = 0
    throttled_requests: int = 0
    message_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(0x18C0_0000_0000))


class FakeGmail:
    """Holds the state; ``app`` serves it. ``reset()`` starts an empty mailbox for the next test."""

    def __init__(self) -> None:
        self.oauth = FakeAuthorizationServer("Google", rotates_refresh_tokens=False)
        self.state = GmailState()
        self.reset()
        routes = [
            Route(f"{API_PREFIX}/profile", self._guarded(self._profile)),
            Route(f"{API_PREFIX}/labels", self._guarded(self._labels)),
            Route(f"{API_PREFIX}/messages", self._guarded(self._list_messages)),
            Route(f"{API_PREFIX}/messages/send", self._guarded(self._send_message), methods=["POST"]),
            Route(f"{API_PREFIX}/messages/{{message_id}}", self._guarded(self._get_message)),
            Route(f"{API_PREFIX}/history", self._guarded(self._history)),
        ]
        routes += self.oauth.routes(
            authorize_path="/o/oauth2/v2/auth", token_path="/token", revoke_path="/revoke"
        )
        self.app = Starlette(routes=routes)

    def reset(self) -> None:
        self.oauth.reset()
        self.state = GmailState()
        for label_id in SYSTEM_LABELS:
            self.state.labels[label_id] = {"id": label_id, "name": label_id, "type": "system"}

    # Test controls

    def add_label(self, name: str) -> str:
        label_id = f"Label_{len(self.state.labels)}"
        self.state.labels[label_id] = {"id": label_id, "name": name, "type": "user"}
        return label_id

    def deliver(
        self,
        raw: bytes,
        *,
        received_at: dt.datetime,
        labels: Iterable[str] = ("INBOX",),
        thread_id: str | None = None,
    ) -> str:
        message_id = format(next(self.state.message_numbers), "x")
        label_ids = set(labels)
        self.state.messages[message_id] = FakeGmailMessage(
            id=message_id,
            thread_id=thread_id or message_id,
            label_ids=label_ids,
            internal_date=received_at,
            raw=raw,
        )
        self._record("messageAdded", self.state.messages[message_id], tuple(sorted(label_ids)))
        return message_id

    def rename_label(self, label_id: str, name: str) -> None:
        self.state.labels[label_id]["name"] = name

    def delete_label(self, label_id: str) -> None:
        del self.state.labels[label_id]
        for message in self.state.messages.values():
            message.label_ids.discard(label_id)

    def label_message(self, message_id: str, label_id: str) -> None:
        message = self.state.messages[message_id]
        message.label_ids.add(label_id)
        self._record("labelAdded", message, (label_id,))

    def delete(self, message_id: str) -> None:
        del self.state.messages[message_id]
        self.state.history_id += 3

    def forget_history(self) -> None:
        """Drop all history, as Gmail does after about a week: stored start ids now get 404."""
        self.state.history.clear()
        self.state.oldest_kept_history_id = self.state.history_id + 1

    def requests_to(self, path_suffix: str) -> list[dict[str, list[str]]]:
        return [params for path, params in self.state.requests if path.endswith(path_suffix)]

    def _record(self, kind: str, message: FakeGmailMessage, labels_added: tuple[str, ...]) -> None:
        # History ids grow with gaps, as Gmail's do.
        self.state.history_id += 7
        thread_labels = set().union(
            *(
                other.label_ids
                for other in self.state.messages.values()
                if other.thread_id == message.thread_id
            )
        )
        self.state.history.append(
            _HistoryRecord(
                id=self.state.history_id,
                kind=kind,
                message_id=message.id,
                thread_id=message.thread_id,
                thread_labels_after=tuple(sorted(thread_labels)),
                labels_added=labels_added,
            )
        )

    # Handlers

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            params: dict[str, list[str]] = {}
            for key, value in request.query_params.multi_items():
                params.setdefault(key, []).append(value)
            self.state.requests.append((request.url.path, params))
            authorization = request.headers.get("Authorization", "")
            if not authorization.startswith("Bearer ") or not self.oauth.accepts(authorization[7:]):
                return _error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
            injected = self.state.failures.take(request)
            if injected is not None:
                return injected
            if not self._spend_quota(request):
                self.state.throttled_requests += 1
                return JSONResponse(rate_limit_body("userRateLimitExceeded"), status_code=429)
            drop = self.state.failures.take_drop(request)
            if drop is not None:
                if drop.after_handling:
                    await handler(request)
                return DroppedConnection()
            self.state.in_flight += 1
            self.state.most_in_flight = max(self.state.most_in_flight, self.state.in_flight)
            try:
                if self.state.response_delay_seconds:
                    await asyncio.sleep(self.state.response_delay_seconds)
                return await handler(request)
            finally:
                self.state.in_flight -= 1

        return guarded

    def _spend_quota(self, request: Request) -> bool:
        """Charge the request's cost to the user's last minute; False when that would exceed the limit."""
        cost = _cost(request)
        now = self.state.clock()
        user = self.oauth.subject_of(request.headers.get("Authorization", "").removeprefix("Bearer "))
        spent = self.state.quota_spent.setdefault(user, deque())
        while spent and spent[0][0] <= now - 60:
            spent.popleft()
        if sum(units for _, units in spent) + cost > self.state.quota_units_per_minute:
            return False
        spent.append((now, cost))
        self.state.units_spent += cost
        return True

    async def _profile(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return JSONResponse(
            {
                "emailAddress": self.oauth.subject_of(token),
                "messagesTotal": len(self.state.messages),
                "threadsTotal": len({message.thread_id for message in self.state.messages.values()}),
                "historyId": str(self.state.history_id),
            }
        )

    async def _labels(self, request: Request) -> Response:
        return JSONResponse({"labels": list(self.state.labels.values())})

    async def _list_messages(self, request: Request) -> Response:
        params = request.query_params
        label_ids = params.getlist("labelIds")
        if any(label_id not in self.state.labels for label_id in label_ids):
            return _error(400, "Invalid label", "INVALID_ARGUMENT")
        after: float | None = None
        rfc822_message_id: str | None = None
        for term in params.get("q", "").split():
            name, _, value = term.partition(":")
            if name == "rfc822msgid" and value:
                rfc822_message_id = value.removeprefix("<").removesuffix(">")
                continue
            if name != "after" or not value.isdigit():
                return _error(
                    400,
                    f"the fake supports only after:<epoch seconds> and rfc822msgid:, not {term!r}",
                    "INVALID_ARGUMENT",
                )
            after = float(value)
        include_spam_trash = params.get("includeSpamTrash") == "true"
        matching = [
            message
            for message in self.state.messages.values()
            if all(label_id in message.label_ids for label_id in label_ids)
            and (after is None or message.internal_date.timestamp() > after)
            and (rfc822_message_id is None or message.rfc822_message_id() == rfc822_message_id)
            and (include_spam_trash or not message.label_ids & {"SPAM", "TRASH"})
        ]
        matching.sort(key=lambda message: message.internal_date, reverse=True)
        try:
            page, next_token = _page(matching, params.get("pageToken"), _max_results(params, default=100))
        except InvalidPageToken:
            return _error(400, "Invalid pageToken", "INVALID_ARGUMENT")
        body: dict[str, Any] = {"resultSizeEstimate": len(matching)}
        if page:
            body["messages"] = [{"id": message.id, "threadId": message.thread_id} for message in page]
        if next_token:
            body["nextPageToken"] = next_token
        return JSONResponse(body)

    async def _send_message(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.oauth.has_scope(token, *SEND_SCOPES):
            return _error(
                403,
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
                reason="insufficientPermissions",
            )
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return _error(400, "the fake takes messages.send only as JSON with raw", "INVALID_ARGUMENT")
        try:
            body = json.loads(await request.body())
            encoded = str(body["raw"])
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error(400, "Invalid value for ByteString", "INVALID_ARGUMENT", reason="invalidArgument")
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        recipients = tuple(
            address
            for _, address in email.utils.getaddresses(
                [str(value) for name in ("To", "Cc", "Bcc") for value in parsed.get_all(name, [])]
            )
            if address
        )
        if not recipients:
            return _error(400, "Recipient address required", "INVALID_ARGUMENT", reason="invalidArgument")
        if any("@" not in address for address in recipients):
            return _error(400, "Invalid To header", "INVALID_ARGUMENT", reason="invalidArgument")
        requested_thread = str(body.get("threadId") or "")
        known_threads = {message.thread_id for message in self.state.messages.values()}
        message_id = self.deliver(
            raw,
            received_at=dt.datetime.now(dt.UTC),
            labels=("SENT",),
            thread_id=requested_thread if requested_thread in known_threads else None,
        )
        self.state.sent.append(SentRecord(message_id, recipients))
        message = self.state.messages[message_id]
        return JSONResponse({"id": message.id, "threadId": message.thread_id, "labelIds": ["SENT"]})

    async def _get_message(self, request: Request) -> Response:
        message = self.state.messages.get(request.path_params["message_id"])
        if message is None:
            return _error(404, "Requested entity was not found.", "NOT_FOUND")
        body: dict[str, Any] = {
            "id": message.id,
            "threadId": message.thread_id,
            "labelIds": sorted(message.label_ids),
            "snippet": "",
            "sizeEstimate": len(message.raw),
            "historyId": str(self.state.history_id),
            "internalDate": str(int(message.internal_date.timestamp() * 1000)),
        }
        message_format = request.query_params.get("format", "full")
        if message_format == "raw":
            # Gmail's base64url; left unpadded here so the provider's decoding must cope with that.
            body["raw"] = base64.urlsafe_b64encode(message.raw).rstrip(b"=").decode()
        elif message_format == "metadata":
            wanted = {name.lower() for name in request.query_params.getlist("metadataHeaders")}
            headers = [
                {"name": name, "value": value}
                for name, value in message.header_items()
                if not wanted or name.lower() in wanted
            ]
            body["payload"] = {"mimeType": "text/plain", "headers": headers}
        else:
            return _error(400, "the fake serves only the raw and metadata formats", "INVALID_ARGUMENT")
        return JSONResponse(body)

    async def _history(self, request: Request) -> Response:
        params = request.query_params
        start = params.get("startHistoryId", "")
        if not start.isdigit():
            return _error(400, "startHistoryId is required", "INVALID_ARGUMENT")
        if int(start) < self.state.oldest_kept_history_id:
            return _error(404, "Requested entity was not found.", "NOT_FOUND")
        label_id = params.get("labelId")
        if label_id is not None and label_id not in self.state.labels:
            return _error(400, "Invalid label", "INVALID_ARGUMENT")
        kinds = set(params.getlist("historyTypes")) or {"messageAdded", "labelAdded"}
        records = [
            record
            for record in self.state.history
            if record.id > int(start)
            and record.kind in kinds
            and (label_id is None or label_id in record.thread_labels_after)
        ]
        try:
            page, next_token = _page(records, params.get("pageToken"), _max_results(params, default=100))
        except InvalidPageToken:
            return _error(400, "Invalid pageToken", "INVALID_ARGUMENT")
        body: dict[str, Any] = {"historyId": str(self.state.history_id)}
        if page:
            body["history"] = [self._history_json(record) for record in page]
        if next_token:
            body["nextPageToken"] = next_token
        return JSONResponse(body)

    def _history_json(self, record: _HistoryRecord) -> dict[str, Any]:
        summary = {"id": record.message_id, "threadId": record.thread_id}
        entry: dict[str, Any] = {"id": str(record.id), "messages": [summary]}
        if record.kind == "messageAdded":
            entry["messagesAdded"] = [{"message": summary}]
        else:
            entry["labelsAdded"] = [{"message": summary, "labelIds": list(record.labels_added)}]
        return entry


def _cost(request: Request) -> int:
    path = request.url.path.removeprefix(API_PREFIX)
    if request.method == "POST":
        return SEND_COST
    if path == "/history":
        return METHOD_COSTS["history.list"]
    if path in ("/labels", "/profile"):
        return METHOD_COSTS["labels.list"]
    return METHOD_COSTS["messages.get"]


class InvalidPageToken(ValueError):
    pass


def _page(items: list[Any], token: str | None, size: int) -> tuple[list[Any], str | None]:
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token))["offset"]) if token else 0
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidPageToken(token) from error
    end = offset + size
    next_token = (
        base64.urlsafe_b64encode(json.dumps({"offset": end}).encode()).decode() if end < len(items) else None
    )
    return items[offset:end], next_token


def _max_results(params: Any, *, default: int) -> int:
    return min(int(params.get("maxResults", default)), 500)


def _error(status: int, message: str, status_name: str, reason: str | None = None) -> Response:
    errors = [{"message": message, "domain": "global", "reason": reason or status_name.lower()}]
    return JSONResponse(
        {"error": {"code": status, "message": message, "errors": errors, "status": status_name}},
        status_code=status,
    )


def domain_policy_body() -> dict[str, Any]:
    """The error body Gmail sends when a Workspace administrator's policy keeps the app out."""
    message = "Mail service not enabled for this domain by its administrator."
    return {
        "error": {
            "code": 403,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": "domainPolicy"}],
            "status": "PERMISSION_DENIED",
        }
    }


def rate_limit_body(reason: str = "rateLimitExceeded", code: int = 429) -> dict[str, Any]:
    """The error body Gmail sends when a quota stops a request."""
    return {
        "error": {
            "code": code,
            "message": "User-rate limit exceeded.",
            "errors": [{"message": "User-rate limit exceeded.", "domain": "usageLimits", "reason": reason}],
            "status": "RESOURCE_EXHAUSTED" if code == 429 else "PERMISSION_DENIED",
        }
    }
