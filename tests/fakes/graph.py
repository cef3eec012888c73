"""A fake of Microsoft Graph's mail API (``v1.0``) and the Microsoft identity platform, served locally.

It follows the documented behaviour the provider depends on: ``/me`` (``mail``, ``userPrincipalName``);
``/me/mailFolders`` with ``$top`` and ``@odata.nextLink`` paging, child folders, well-known folder
names in place of ids;
``/me/mailFolders/{id}/messages/delta`` whose first round lists the folder (``$filter`` on
``receivedDateTime ge``, the only filter delta allows) in pages sized by ``Prefer:
odata.maxpagesize``, linked by ``@odata.nextLink`` (``$skiptoken``) and ended by an
``@odata.deltaLink`` (``$deltatoken``) from which the next round lists only what changed, with
``@removed`` entries for messages that left; only ``$select``-ed properties (plus ``id``); 410 when
the sync state is gone; ``/me/messages/{id}/$value`` for MIME; bearer tokens checked against the fake
identity platform (401); and failures queued by a test (429 with Retry-After, a connection dropped
after the request was read).

Limits and changes as Microsoft documents them: a first round with ``$filter`` returns at most 5,000
messages ("Get incremental changes to messages in a folder"); skip and delta tokens expire once the
folder has handed out a few newer ones (``link_generations_kept``; the same page says expired state
answers 410); more than four requests in flight for one mailbox are answered 429 with Retry-After
("Microsoft Graph throttling limits", Outlook service limits: four concurrent requests per mailbox);
a message whose properties changed comes back in the next round with only ``id`` and the changed
properties (the delta-query-messages page: updated items carry the changed properties), and a moved
message leaves its folder (``@removed``) and enters the other with the same immutable id; folders can
be renamed and deleted (404 ``ErrorItemNotFound`` afterwards).

Sending: ``/me/sendMail`` takes a MIME message base64-encoded with ``Content-Type: text/plain`` (the
JSON form is refused, as the provider does not use it), needs ``Mail.Send`` (else 403
``ErrorAccessDenied``), answers 400 ``ErrorMimeContentInvalidBase64String`` for a body that is not
base64 and 400 ``ErrorInvalidRecipients`` for a message without recipients, and otherwise 202 with no
body, filing a copy in Sent Items whose ``internetMessageId`` is the message's own Message-ID.
Exchange sends asynchronously, so a test can make that copy show only after some lookups
(``sent_copy_hidden_lookups``). ``/me/mailFolders/{id}/messages`` lists a folder, filtered by
``internetMessageId eq '<...>'`` (the only filter the fake takes) with ``$select`` and ``$top``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime as dt
import email
import email.policy
import email.utils
import itertools
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.failures import DroppedConnection, FailureQueue
from tests.fakes.oauth import FakeAuthorizationServer

API_PREFIX = "/v1.0"
TENANT = "common"
_DEFAULT_PAGE_SIZE = 10
# delta-query-messages: a delta round with $filter returns at most this many messages.
FILTERED_ROUND_LIMIT = 5000
# throttling limits, Outlook service: concurrent requests per app per mailbox.
MAILBOX_CONCURRENCY_LIMIT = 4
# sendMail's permissions, as the reference lists them for delegated access.
SEND_SCOPES = ("https://graph.microsoft.com/Mail.Send", "Mail.Send")
_WELL_KNOWN = {
    "inbox": "Inbox",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
}

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class FakeGraphFolder:
    id: str
    display_name: str
    parent_id: str | None
    well_known_name: str | None = None


@dataclass
class FakeGraphMessage:
    id: str
    folder_id: str
    sender: tuple[str, str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    subject: str
    internet_message_id: str
    conversation_id: str
    received_at: dt.datetime
    mime: bytes
    change_number: int
    # When the message entered its folder, and the properties changed since (None: all of them new).
    created_number: int = 0
    changed_properties: tuple[str, ...] | None = None

    def properties(self) -> dict[str, Any]:
        def recipient(pair: tuple[str, str]) -> dict[str, Any]:
            return {"emailAddress": {"name": pair[0], "address": pair[1]}}

        stamp = self.received_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "from": recipient(self.sender),
            "sender": recipient(self.sender),
            "replyTo": [],
            "toRecipients": [recipient(pair) for pair in self.to],
            "ccRecipients": [recipient(pair) for pair in self.cc],
            "subject": self.subject,
            "internetMessageId": self.internet_message_id,
            "conversationId": self.conversation_id,
            "receivedDateTime": stamp,
            "sentDateTime": stamp,
            "isRead": False,
            "bodyPreview": "",
        }


@dataclass(frozen=True)
class _SyncState:
    """What a delta or skip token stands for. Tokens are not used up: a client may ask again."""

    folder_id: str
    received_since: dt.datetime | None
    select: tuple[str, ...]
    # The round's messages and how many of them earlier pages served; empty once the round is done.
    items: tuple[dict[str, Any], ...]
    served: int
    # The mailbox's change number when the round began: the next round lists changes after it.
    change_number: int
    generation: int = 0


@dataclass
class GraphState:
    folders: dict[str, FakeGraphFolder] = field(default_factory=dict)
    messages: dict[str, FakeGraphMessage] = field(default_factory=dict)
    # Messages that left a folder, by folder: (change number, message id).
    departures: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    sync_states: dict[str, _SyncState] = field(default_factory=dict)
    change_number: int = 0
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    failures: FailureQueue = field(default_factory=FailureQueue)
    # Lookups of Sent Items that still miss a message just sent, as Exchange files it asynchronously.
    sent_copy_hidden_lookups: int = 0
    hidden_sent_copies: dict[str, int] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    # Tokens older than this many generations of their folder answer 410.
    link_generations_kept: int = 1_000_000
    latest_generation: dict[str, int] = field(default_factory=dict)
    # Slowing answers down lets concurrent requests overlap, as they would against Outlook.
    response_delay_seconds: float = 0.0
    in_flight: int = 0
    most_in_flight: int = 0
    # Requests answered 429, queued by a test or over the concurrency limit.
    throttled_requests: int = 0


class FakeGraph:
    """Holds the state; ``app`` serves it. ``reset()`` starts an empty mailbox for the next test."""

    def __init__(self) -> None:
        self.oauth = FakeAuthorizationServer("Microsoft", rotates_refresh_tokens=True)
        self.state = GraphState()
        self.mail_property_empty = False
        self.reset()
        routes = [
            Route(f"{API_PREFIX}/me", self._guarded(self._me)),
            Route(f"{API_PREFIX}/me/mailFolders", self._guarded(self._list_folders)),
            Route(f"{API_PREFIX}/me/mailFolders/{{folder}}", self._guarded(self._get_folder)),
            Route(f"{API_PREFIX}/me/mailFolders/{{folder}}/childFolders", self._guarded(self._child_folders)),
            Route(f"{API_PREFIX}/me/mailFolders/{{folder}}/messages/delta", self._guarded(self._delta)),
            Route(f"{API_PREFIX}/me/messages/{{message_id}}/$value", self._guarded(self._mime)),
            Route(f"{API_PREFIX}/me/mailFolders/{{folder}}/messages", self._guarded(self._folder_messages)),
            Route(f"{API_PREFIX}/me/sendMail", self._guarded(self._send_mail), methods=["POST"]),
        ]
        routes += self.oauth.routes(
            authorize_path=f"/{TENANT}/oauth2/v2.0/authorize",
            token_path=f"/{TENANT}/oauth2/v2.0/token",
            revoke_path=None,
        )
        self.app = Starlette(routes=routes)

    def reset(self) -> None:
        self.oauth.reset()
        self.state = GraphState()
        self.mail_property_empty = False
        root = self._new_folder("Top of Information Store", parent_id=None, well_known_name="msgfolderroot")
        for well_known_name, display_name in _WELL_KNOWN.items():
            self._new_folder(display_name, parent_id=root, well_known_name=well_known_name)

    # Test controls

    def folder_id(self, well_known_name: str) -> str:
        return next(
            folder.id for folder in self.state.folders.values() if folder.well_known_name == well_known_name
        )

    def add_folder(self, display_name: str, parent_id: str | None = None) -> str:
        return self._new_folder(display_name, parent_id=parent_id or self.folder_id("msgfolderroot"))

    def deliver(
        self,
        *,
        folder: str = "inbox",
        sender: tuple[str, str] = ("Jane Doe", "jane@customer.example"),
        to: list[tuple[str, str]] | None = None,
        cc: list[tuple[str, str]] | None = None,
        subject: str = "Hello",
        received_at: dt.datetime,
        conversation_id: str | None = None,
    ) -> str:
        folder_id = self.folder_id(folder) if folder in _WELL_KNOWN else folder
        number = next(self.state.numbers)
        message_id = f"AAMkAD{number:06d}{secrets.token_hex(4)}="
        internet_message_id = f"<message-{number}@customer.example>"
        recipients = to or [("Sam Seller", "sam@touchline.example")]
        mime = (
            f"From: {sender[0]} <{sender[1]}>\r\n"
            f"To: {', '.join(f'{name} <{address}>' for name, address in recipients)}\r\n"
            f"Subject: {subject}\r\nMessage-ID: {internet_message_id}\r\n"
            f"Date: {received_at.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n\r\nBody {number}\r\n"
        ).encode()
        self.state.change_number += 1
        self.state.messages[message_id] = FakeGraphMessage(
            id=message_id,
            folder_id=folder_id,
            sender=sender,
            to=recipients,
            cc=cc or [],
            subject=subject,
            internet_message_id=internet_message_id,
            conversation_id=conversation_id or f"AAQkAD{number:06d}=",
            received_at=received_at,
            mime=mime,
            change_number=self.state.change_number,
            created_number=self.state.change_number,
        )
        return message_id

    def set_mime(self, message_id: str, mime: bytes) -> None:
        self.state.messages[message_id].mime = mime

    def update(self, message_id: str, *, subject: str) -> None:
        """A property changed (here the subject; flags behave alike): the next round names only it."""
        message = self.state.messages[message_id]
        self.state.change_number += 1
        message.subject = subject
        message.change_number = self.state.change_number
        message.changed_properties = ("subject", "isRead")

    def move(self, message_id: str, folder: str) -> None:
        message = self.state.messages[message_id]
        self.state.change_number += 1
        self.state.departures.setdefault(message.folder_id, []).append((self.state.change_number, message_id))
        message.folder_id = self.folder_id(folder) if folder in _WELL_KNOWN else folder
        message.change_number = message.created_number = self.state.change_number
        message.changed_properties = None

    def rename_folder(self, folder_id: str, display_name: str) -> None:
        self.state.folders[folder_id].display_name = display_name

    def delete_folder(self, folder_id: str) -> None:
        del self.state.folders[folder_id]
        for message_id in [m.id for m in self.state.messages.values() if m.folder_id == folder_id]:
            del self.state.messages[message_id]

    def delete(self, message_id: str) -> None:
        message = self.state.messages.pop(message_id)
        self.state.change_number += 1
        self.state.departures.setdefault(message.folder_id, []).append((self.state.change_number, message_id))

    def hand_out_links(self, folder: str, count: int) -> None:
        """Other clients of the folder (Outlook itself, another app) were given ``count`` newer skip or
        delta tokens, which ages every token handed out before (see ``link_generations_kept``)."""
        folder_id = self.folder_id(folder) if folder in _WELL_KNOWN else folder
        self.state.latest_generation[folder_id] = self.state.latest_generation.get(folder_id, 0) + count

    def drop_sync_state(self) -> None:
        """Forget every delta and skip token, as Outlook does when its token cache overflows."""
        self.state.sync_states.clear()

    def requests_to(self, path_suffix: str) -> list[tuple[dict[str, str], dict[str, str]]]:
        return [
            (params, headers) for path, params, headers in self.state.requests if path.endswith(path_suffix)
        ]

    def _new_folder(
        self, display_name: str, *, parent_id: str | None, well_known_name: str | None = None
    ) -> str:
        folder_id = f"AAMkADfolder{next(self.state.numbers):04d}="
        self.state.folders[folder_id] = FakeGraphFolder(folder_id, display_name, parent_id, well_known_name)
        return folder_id

    # Handlers

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            self.state.requests.append((request.url.path, dict(request.query_params), dict(request.headers)))
            authorization = request.headers.get("Authorization", "")
            if not authorization.startswith("Bearer ") or not self.oauth.accepts(authorization[7:]):
                return _error(
                    401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
                )
            injected = self.state.failures.take(request)
            if injected is not None:
                self.state.throttled_requests += injected.status_code == 429
                return injected
            if self.state.in_flight >= MAILBOX_CONCURRENCY_LIMIT:
                self.state.throttled_requests += 1
                return JSONResponse(throttled_body(), status_code=429, headers={"Retry-After": "1"})
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

    async def _me(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        address = self.oauth.subject_of(token)
        # Personal Microsoft accounts often have no mail property; userPrincipalName is their address.
        user = {"mail": None if self.mail_property_empty else address, "userPrincipalName": address}
        selected = [name for name in request.query_params.get("$select", "").split(",") if name]
        return JSONResponse({name: user[name] for name in selected if name in user} if selected else user)

    def _resolve_folder(self, name_or_id: str) -> FakeGraphFolder | None:
        if name_or_id in self.state.folders:
            return self.state.folders[name_or_id]
        return next(
            (
                folder
                for folder in self.state.folders.values()
                if folder.well_known_name == name_or_id.lower()
            ),
            None,
        )

    def _folder_json(self, folder: FakeGraphFolder) -> dict[str, Any]:
        children = [child for child in self.state.folders.values() if child.parent_id == folder.id]
        in_folder = [message for message in self.state.messages.values() if message.folder_id == folder.id]
        return {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": len(children),
            "unreadItemCount": len(in_folder),
            "totalItemCount": len(in_folder),
            "isHidden": False,
        }

    async def _list_folders(self, request: Request) -> Response:
        return self._folder_page(request, self.folder_id("msgfolderroot"))

    async def _child_folders(self, request: Request) -> Response:
        folder = self._resolve_folder(request.path_params["folder"])
        if folder is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return self._folder_page(request, folder.id)

    def _folder_page(self, request: Request, parent_id: str) -> Response:
        children = [self._folder_json(f) for f in self.state.folders.values() if f.parent_id == parent_id]
        top = int(request.query_params.get("$top", _DEFAULT_PAGE_SIZE))
        skip = int(request.query_params.get("$skip", 0))
        body: dict[str, Any] = {"value": children[skip : skip + top]}
        if skip + top < len(children):
            body["@odata.nextLink"] = str(
                request.url.include_query_params(**{"$top": top, "$skip": skip + top})
            )
        return JSONResponse(body)

    async def _get_folder(self, request: Request) -> Response:
        folder = self._resolve_folder(request.path_params["folder"])
        if folder is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return JSONResponse(self._folder_json(folder))

    async def _delta(self, request: Request) -> Response:
        folder = self._resolve_folder(request.path_params["folder"])
        if folder is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        params = request.query_params
        token = params.get("$skiptoken") or params.get("$deltatoken")
        if token is not None:
            previous = self.state.sync_states.get(token)
            expired = (
                previous is not None
                and self.state.latest_generation.get(folder.id, 0) - previous.generation
                >= self.state.link_generations_kept
            )
            if previous is None or previous.folder_id != folder.id or expired:
                return _error(410, "SyncStateNotFound", "The sync state generation is not found.")
            state = previous if "$skiptoken" in params else self._next_round(previous)
        else:
            try:
                received_since = _parse_filter(params.get("$filter"))
            except ValueError as error:
                return _error(400, "BadRequest", str(error))
            select = tuple(name for name in params.get("$select", "").split(",") if name)
            state = self._round(folder.id, received_since, select, after_change=None)
        page_size = _max_page_size(request.headers.get("Prefer", ""))
        page = state.items[state.served : state.served + page_size]
        served = state.served + len(page)
        new_token = secrets.token_urlsafe(12)
        generation = self.state.latest_generation.get(folder.id, 0) + 1
        self.state.latest_generation[folder.id] = generation
        state = dataclasses.replace(state, generation=generation)
        link = f"{request.base_url}{API_PREFIX.lstrip('/')}/me/mailFolders/{folder.id}/messages/delta"
        if served < len(state.items):
            self.state.sync_states[new_token] = dataclasses.replace(state, served=served)
            return JSONResponse({"value": list(page), "@odata.nextLink": f"{link}?$skiptoken={new_token}"})
        self.state.sync_states[new_token] = dataclasses.replace(state, items=(), served=0)
        return JSONResponse({"value": list(page), "@odata.deltaLink": f"{link}?$deltatoken={new_token}"})

    def _round(
        self,
        folder_id: str,
        received_since: dt.datetime | None,
        select: tuple[str, ...],
        *,
        after_change: int | None,
    ) -> _SyncState:
        """A new round: the folder's messages (first round) or what changed after ``after_change``."""
        messages = sorted(
            (
                message
                for message in self.state.messages.values()
                if message.folder_id == folder_id
                and (received_since is None or message.received_at >= received_since)
                and (after_change is None or message.change_number > after_change)
            ),
            key=lambda message: message.change_number,
        )
        removed = (
            [
                {"id": message_id, "@removed": {"reason": "deleted"}}
                for number, message_id in self.state.departures.get(folder_id, [])
                if number > after_change
            ]
            if after_change is not None
            else []
        )
        if received_since is not None and after_change is None:
            # The newest 5,000: a filtered round stops there, however many more the folder holds.
            kept = sorted(messages, key=lambda message: message.received_at, reverse=True)[
                :FILTERED_ROUND_LIMIT
            ]
            messages = [message for message in messages if message in kept]
        items = [
            _selected(message, select)
            if after_change is None
            or message.created_number > after_change
            or message.changed_properties is None
            else _changed(message, select)
            for message in messages
        ]
        return _SyncState(
            folder_id=folder_id,
            received_since=received_since,
            select=select,
            items=tuple(items + removed),
            served=0,
            change_number=self.state.change_number,
        )

    def _next_round(self, finished: _SyncState) -> _SyncState:
        return self._round(
            finished.folder_id, finished.received_since, finished.select, after_change=finished.change_number
        )

    def sent_items(self) -> list[FakeGraphMessage]:
        sent_folder = self.folder_id("sentitems")
        return [message for message in self.state.messages.values() if message.folder_id == sent_folder]

    async def _send_mail(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not self.oauth.has_scope(token, *SEND_SCOPES):
            return _error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
        if request.headers.get("Content-Type", "").split(";")[0] != "text/plain":
            return _error(400, "BadRequest", "the fake takes sendMail only as base64 MIME (text/plain)")
        try:
            mime = base64.b64decode(await request.body(), validate=True)
        except (binascii.Error, ValueError):
            return _error(
                400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
            )
        parsed = email.message_from_bytes(mime, policy=email.policy.compat32)

        def addresses(*names: str) -> list[tuple[str, str]]:
            values = [str(value) for name in names for value in parsed.get_all(name, [])]
            return [pair for pair in email.utils.getaddresses(values) if pair[1]]

        to, cc, bcc = addresses("To"), addresses("Cc"), addresses("Bcc")
        if not (to or cc or bcc):
            return _error(400, "ErrorInvalidRecipients", "At least one recipient is not valid.")
        number = next(self.state.numbers)
        message_id = f"AAMkAD{number:06d}{secrets.token_hex(4)}="
        internet_message_id = str(parsed.get("Message-ID") or f"<sent-{number}@outlook.example>").strip()
        senders = addresses("From")
        self.state.change_number += 1
        self.state.messages[message_id] = FakeGraphMessage(
            id=message_id,
            folder_id=self.folder_id("sentitems"),
            sender=senders[0] if senders else ("", self.oauth.subject_of(token)),
            to=to,
            cc=cc,
            subject=str(parsed.get("Subject") or ""),
            internet_message_id=internet_message_id,
            conversation_id=f"AAQkAD{number:06d}=",
            received_at=dt.datetime.now(dt.UTC),
            mime=mime,
            change_number=self.state.change_number,
        )
        if self.state.sent_copy_hidden_lookups:
            self.state.hidden_sent_copies[message_id] = self.state.sent_copy_hidden_lookups
        return Response(status_code=202)

    async def _folder_messages(self, request: Request) -> Response:
        folder = self._resolve_folder(request.path_params["folder"])
        if folder is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        wanted: str | None = None
        expression = request.query_params.get("$filter")
        if expression:
            prefix = "internetMessageId eq '"
            if not (expression.startswith(prefix) and expression.endswith("'")):
                return _error(
                    400, "BadRequest", f"the fake filters only on internetMessageId, not {expression!r}"
                )
            wanted = expression[len(prefix) : -1].replace("''", "'")
        matching = []
        for message in self.state.messages.values():
            if message.folder_id != folder.id or (
                wanted is not None and message.internet_message_id != wanted
            ):
                continue
            hidden = self.state.hidden_sent_copies.get(message.id, 0)
            if hidden:
                self.state.hidden_sent_copies[message.id] = hidden - 1
                continue
            matching.append(message)
        select = tuple(name for name in request.query_params.get("$select", "").split(",") if name)
        top = int(request.query_params.get("$top", _DEFAULT_PAGE_SIZE))
        return JSONResponse({"value": [_selected(message, select) for message in matching[:top]]})

    async def _mime(self, request: Request) -> Response:
        message = self.state.messages.get(request.path_params["message_id"])
        if message is None:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return Response(message.mime, media_type="text/plain")


def _selected(message: FakeGraphMessage, select: tuple[str, ...]) -> dict[str, Any]:
    properties = message.properties()
    chosen = {name: properties[name] for name in select if name in properties} if select else properties
    return {"@odata.type": "#microsoft.graph.message", "id": message.id, **chosen}


def _changed(message: FakeGraphMessage, select: tuple[str, ...]) -> dict[str, Any]:
    """An updated message as a later round reports it: its id and the properties that changed."""
    changed = message.changed_properties or ()
    properties = message.properties()
    chosen = {name: properties[name] for name in changed if not select or name in select}
    return {"@odata.type": "#microsoft.graph.message", "id": message.id, **chosen}


def _parse_filter(expression: str | None) -> dt.datetime | None:
    if not expression:
        return None
    field_name, operator, value = expression.split(" ", 2)
    # Delta also allows "gt"; the provider uses "ge", and the fake takes only what it uses.
    if field_name != "receivedDateTime" or operator != "ge":
        raise ValueError(f"the fake allows only a receivedDateTime ge filter, not {expression!r}")
    return dt.datetime.fromisoformat(value)


def _max_page_size(prefer: str) -> int:
    for preference in prefer.split(","):
        name, _, value = preference.strip().partition("=")
        if name == "odata.maxpagesize" and value.isdigit():
            return int(value)
    return _DEFAULT_PAGE_SIZE


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def throttled_body() -> dict[str, Any]:
    """The error body Graph sends with a 429."""
    return {
        "error": {
            "code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit.",
        }
    }
