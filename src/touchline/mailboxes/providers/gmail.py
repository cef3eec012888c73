"""Gmail through its REST API (``gmail/v1``): labels are folders, threads are conversations.

A first sync lists the label's messages newer than ``since`` (``messages.list`` with ``q=after:``),
page by page; the mailbox's ``historyId`` is read *before* listing, so mail arriving meanwhile is
picked up by the next, incremental sync (``history.list`` from that id). Triage reads
``format=metadata`` with only ``TRIAGE_HEADER_NAMES``; only kept messages are fetched with
``format=raw``.

History records "typically only have id and threadId" (users.history.list), and the ``labelId``
filter also returns other messages of the same thread: which messages entered the label is decided
from the ``labelIds`` of the metadata fetch, never from the record.

Gmail forgets history after about a week (sometimes hours): ``history.list`` then answers 404 and
``CursorExpired`` is raised. Each user may spend 15,000 quota units a minute; ``messages.get`` and
``messages.list`` cost 5, ``history.list`` 2, ``labels.list`` and ``getProfile`` 1, ``messages.send``
100 (Gmail API "Usage limits"). Every request spends its cost from the mailbox's budget first, and a
throttled request is retried with a growing, jittered backoff; a history page cut short by throttling
still hands over the messages fetched before it, with a checkpoint just past them. Metadata requests
run with bounded concurrency (``max_concurrency``, 4 by default).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from touchline.mailboxes.providers.base import (
    DEFAULT_BATCH_SIZE,
    TRIAGE_HEADER_NAMES,
    AccessBlocked,
    AuthError,
    CursorExpired,
    Folder,
    FolderCursor,
    FolderNotFound,
    HeaderBatch,
    MessageHeaders,
    PermissionMissing,
    ProviderError,
    RateLimited,
    RawMessage,
    SpecialUse,
    TransientError,
    require_aware,
    require_batch_size,
)
from touchline.mailboxes.providers.rest import (
    RestMailboxProvider,
    bounded_map,
    json_object,
    one_line,
    raise_for_send_status,
    raise_for_status,
    retry_after_seconds,
)

GMAIL_API_BASE_URL = "https://gmail.googleapis.com/gmail/v1/users/me/"
SERVICE_NAME = "Gmail"

_SPECIAL_USE_BY_LABEL_ID = {
    "INBOX": SpecialUse.INBOX,
    "SENT": SpecialUse.SENT,
    "DRAFT": SpecialUse.DRAFTS,
    "TRASH": SpecialUse.TRASH,
    "SPAM": SpecialUse.JUNK,
    "STARRED": SpecialUse.FLAGGED,
    "IMPORTANT": SpecialUse.IMPORTANT,
}
# System labels that describe a message's state rather than a place it is filed.
_NOT_FOLDERS = frozenset({"UNREAD", "CHAT"})
# messages.list leaves these out unless asked, which would make those folders look empty.
_SPAM_AND_TRASH = frozenset({"SPAM", "TRASH"})
# Reasons Gmail gives with 403 or 429 when a quota, not a permission, stopped the request.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"})
# How Gmail names, in its message, when a per-user limit (sending, for one) lets requests in again.
_RETRY_AFTER_MOMENT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)")
# Gmail's reason when the access token lacks the scope a method needs (here gmail.send).
_MISSING_SCOPE_REASONS = frozenset({"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"})
# Gmail's reason when a Google Workspace administrator's policy keeps this app out of the domain's
# mail; reconnecting cannot help, only the administrator can.
_ADMIN_POLICY_REASONS = frozenset({"domainPolicy"})
# Per-user quota and the cost of each method we call (Gmail API "Usage limits" page).
USER_QUOTA_UNITS_PER_MINUTE = 15_000
_COST_GET_OR_LIST = 5
_COST_HISTORY = 2
_COST_LABELS_OR_PROFILE = 1
_COST_SEND = 100


@dataclass(frozen=True)
class SentGmailMessage:
    """What ``messages.send`` answers: the new message's id and the thread Gmail filed it in."""

    id: str
    thread_id: str


@dataclass(frozen=True)
class GmailCursor(FolderCursor):
    """``history_id``: sync from here with history.list. While a first sync is still listing
    messages, ``first_sync_page_token`` is the next page of that listing to read."""

    kind: ClassVar[str] = "gmail"
    history_id: str
    first_sync_page_token: str | None = None


class GmailProvider(RestMailboxProvider):
    """A Gmail mailbox; see ``touchline.mailboxes.providers.base`` for the contract."""

    # Names the provider in conversation keys: Gmail's thread ids mean nothing to another provider.
    kind: ClassVar[str] = "gmail"

    service_name = SERVICE_NAME
    default_api_base_url = GMAIL_API_BASE_URL
    units_per_minute = USER_QUOTA_UNITS_PER_MINUTE

    def cursor_from_json(self, data: Mapping[str, object]) -> GmailCursor:
        return GmailCursor.from_json(data)

    def request_cost(self, url: str) -> float:
        path = url.rstrip("/")
        if path.endswith("messages/send"):
            return _COST_SEND
        if path.endswith("history"):
            return _COST_HISTORY
        if path.endswith(("labels", "profile")):
            return _COST_LABELS_OR_PROFILE
        return _COST_GET_OR_LIST

    def is_throttled(self, response: httpx.Response) -> bool:
        return response.status_code == 429 or (
            response.status_code == 403 and bool(_error_reasons(response) & _RATE_LIMIT_REASONS)
        )

    def stated_retry_after(self, response: httpx.Response) -> float | None:
        if "Retry-After" in response.headers or _RETRY_AFTER_MOMENT.search(_error_message(response)):
            return _gmail_retry_after(response, _error_message(response))
        return None

    def account_address(self) -> str:
        """The address of the account the grant belongs to (``users.getProfile``)."""
        address = self._get_json("profile").get("emailAddress")
        if not address:
            raise ProviderError("Gmail sent a profile without an email address")
        return str(address)

    def list_folders(self) -> list[Folder]:
        body = self._get_json("labels")
        folders = []
        for label in body.get("labels", []):
            label_id = str(label["id"])
            if label_id in _NOT_FOLDERS:
                continue
            folders.append(
                Folder(
                    id=label_id,
                    name=str(label.get("name", label_id)),
                    special_use=_SPECIAL_USE_BY_LABEL_ID.get(label_id),
                )
            )
        return folders

    def fetch_new_headers(
        self,
        folder_id: str,
        cursor: GmailCursor | None,
        *,
        since: datetime,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[HeaderBatch[GmailCursor], None, None]:
        since = require_aware(since, "since")
        batch_size = min(require_batch_size(batch_size), 500)  # both list calls cap maxResults at 500
        if cursor is None:
            cursor = GmailCursor(history_id=self._current_history_id())
            yield from self._list_since(folder_id, cursor.history_id, None, since, batch_size)
        elif cursor.first_sync_page_token is not None:
            yield from self._list_since(
                folder_id, cursor.history_id, cursor.first_sync_page_token, since, batch_size
            )
        else:
            yield from self._history_since(folder_id, cursor.history_id, since, batch_size)

    def fetch_raw_messages(self, folder_id: str, message_ids: Sequence[str]) -> list[RawMessage]:
        fetched = bounded_map(self._fetch_raw, message_ids, self._max_concurrency)
        return [message for message in fetched if message is not None]

    def send_raw(self, raw: bytes, *, thread_id: str | None = None) -> SentGmailMessage:
        """``messages.send`` with the whole RFC 5322 message as ``raw`` (base64url).

        ``thread_id`` files the message in that Gmail thread; Gmail honours it only when the message's
        References or In-Reply-To and its Subject also match the thread. Raises ``OutcomeUnknown``
        when the connection breaks after the request went out, ``PermissionMissing`` when the grant
        lacks ``gmail.send``, ``RateLimited`` for quotas (including the daily sending limit), and
        ``ProviderError`` for a message Gmail refuses (recipients, size).
        """
        body: dict[str, str] = {"raw": base64.urlsafe_b64encode(raw).decode("ascii")}
        if thread_id:
            body["threadId"] = thread_id
        response = self._rest.post(
            "messages/send",
            content=json.dumps(body).encode("ascii"),
            headers={"Content-Type": "application/json"},
        )
        self._raise_for_send(response)
        answer = json_object(response, SERVICE_NAME)
        return SentGmailMessage(id=str(answer.get("id", "")), thread_id=str(answer.get("threadId", "")))

    def is_in_sent(self, message_id: str) -> bool:
        """Whether a message with this Message-ID header (with or without brackets) is in Sent.

        Trash and spam are searched too: a sent message the user deleted was still sent.
        """
        return self._with_message_id(message_id, label_id="SENT") is not None

    def thread_of(self, message_id: str) -> str | None:
        """The id of the thread that holds the message with this Message-ID header in this mailbox
        (trash and spam included), or None when the mailbox holds no such message."""
        found = self._with_message_id(message_id)
        return str(found["threadId"]) if found is not None and found.get("threadId") else None

    def _with_message_id(self, message_id: str, *, label_id: str | None = None) -> dict[str, Any] | None:
        """The first message (`id` and `threadId`, as users.messages.list lists them) whose Message-ID
        header is `message_id`, within `label_id` when given."""
        params: dict[str, str | int] = {
            "q": f"rfc822msgid:{message_id.strip().removeprefix('<').removesuffix('>')}",
            "includeSpamTrash": "true",
            "maxResults": 1,
        }
        if label_id is not None:
            params["labelIds"] = label_id
        listed = self._checked_json(self._rest.get("messages", params=params)).get("messages")
        if not isinstance(listed, list) or not listed or not isinstance(listed[0], dict):
            return None
        first: dict[str, Any] = listed[0]
        return first

    def _raise_for_send(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        reasons = _error_reasons(response)
        reason = one_line(_error_message(response))
        if response.status_code == 403 and reasons & _MISSING_SCOPE_REASONS:
            raise PermissionMissing(
                "Gmail did not allow this mailbox to send: its owner chooses Allow sending on Profile > Email"
            )
        if response.status_code in (403, 429) and (
            response.status_code == 429 or reasons & _RATE_LIMIT_REASONS
        ):
            raise RateLimited(
                f"Gmail sending limit reached ({', '.join(sorted(reasons)) or 'HTTP 429'}): {reason}",
                _gmail_retry_after(response, reason),
            )
        raise_for_send_status(response, SERVICE_NAME, reason)

    def _current_history_id(self) -> str:
        return str(self._get_json("profile")["historyId"])

    def _list_since(
        self,
        folder_id: str,
        history_id: str,
        page_token: str | None,
        since: datetime,
        batch_size: int,
    ) -> Generator[HeaderBatch[GmailCursor], None, None]:
        params: dict[str, str | int] = {
            "labelIds": folder_id,
            # One second early: whether Gmail's after: includes its own second is not documented,
            # and the exact look-back is applied to internal dates afterwards anyway.
            "q": f"after:{int(since.timestamp()) - 1}",
            "maxResults": batch_size,
        }
        if folder_id in _SPAM_AND_TRASH:
            params["includeSpamTrash"] = "true"
        while True:
            if page_token:
                params["pageToken"] = page_token
            response = self._rest.get("messages", params=params)
            if response.status_code == 400 and _error_message(response) == "Invalid label":
                raise FolderNotFound(f"Gmail has no label {folder_id!r} any more")
            if response.status_code == 400 and page_token:
                # A stored page token Gmail no longer honours: the listing must start again.
                raise CursorExpired(f"Gmail refused the stored page token: {_error_message(response)}")
            body = self._checked_json(response)
            message_ids = [str(entry["id"]) for entry in body.get("messages", [])]
            page_token = body.get("nextPageToken") or None
            yield HeaderBatch(
                self._headers_of(message_ids, since),
                GmailCursor(history_id=history_id, first_sync_page_token=page_token),
            )
            if page_token is None:
                return

    def _history_since(
        self, folder_id: str, history_id: str, since: datetime, batch_size: int
    ) -> Generator[HeaderBatch[GmailCursor], None, None]:
        params: dict[str, str | int | list[str]] = {
            "startHistoryId": history_id,
            "labelId": folder_id,
            "historyTypes": ["messageAdded", "labelAdded"],
            "maxResults": batch_size,
        }
        while True:
            response = self._rest.get("history", params=params)
            if response.status_code == 404:
                raise CursorExpired(f"Gmail no longer keeps history from {history_id}; sync the label again")
            if response.status_code == 400 and _error_message(response) == "Invalid label":
                raise FolderNotFound(f"Gmail has no label {folder_id!r} any more")
            body = self._checked_json(response)
            records: list[dict[str, Any]] = body.get("history", [])
            next_page = body.get("nextPageToken")
            if next_page:
                # Records come in increasing id order, so a page's last record is a safe restart point
                # even though the page token itself is not worth storing.
                checkpoint = str(records[-1]["id"]) if records else history_id
            else:
                checkpoint = str(body["historyId"])
            fetched = self._metadata_of(_candidate_message_ids(records, folder_id))
            throttled = next((item for item in fetched.values() if isinstance(item, RateLimited)), None)
            if throttled is not None:
                # Hand over what was fetched, up to the first record with a message still missing,
                # and checkpoint just before that record; the rest waits for the next run.
                covered, checkpoint = _covered_records(records, fetched, history_id)
                fetched = {key: value for key, value in fetched.items() if key in covered}
            yield HeaderBatch(self._in_label(fetched, folder_id, since), GmailCursor(history_id=checkpoint))
            if throttled is not None:
                raise throttled
            if not next_page:
                return
            params["pageToken"] = next_page
            history_id = checkpoint

    def _metadata_of(self, message_ids: Sequence[str]) -> dict[str, _Metadata | RateLimited | None]:
        """Each message's metadata (None when it was deleted meanwhile, the error when throttling
        outlasted the backoff), so that what was fetched is kept whatever happened to the rest."""

        def fetch(message_id: str) -> _Metadata | RateLimited | None:
            try:
                return self._fetch_metadata(message_id)
            except RateLimited as error:
                return error

        return dict(zip(message_ids, bounded_map(fetch, message_ids, self._max_concurrency), strict=True))

    def _in_label(
        self, fetched: Mapping[str, _Metadata | RateLimited | None], folder_id: str, since: datetime
    ) -> tuple[MessageHeaders, ...]:
        kept = [
            item.headers
            for item in fetched.values()
            if isinstance(item, _Metadata)
            and folder_id in item.label_ids
            and item.headers.internal_date >= since
        ]
        return tuple(sorted(kept, key=lambda headers: headers.internal_date))

    def _headers_of(self, message_ids: Sequence[str], since: datetime) -> tuple[MessageHeaders, ...]:
        fetched = bounded_map(self._fetch_metadata, message_ids, self._max_concurrency)
        kept = [item.headers for item in fetched if item is not None and item.headers.internal_date >= since]
        return tuple(sorted(kept, key=lambda headers: headers.internal_date))

    def _fetch_metadata(self, message_id: str) -> _Metadata | None:
        response = self._rest.get(
            f"messages/{quote(message_id, safe='')}",
            params={"format": "metadata", "metadataHeaders": list(TRIAGE_HEADER_NAMES)},
        )
        if response.status_code == 404:
            return None  # deleted between listing and fetching: nothing to triage
        body = self._checked_json(response)
        header_lines = [
            f"{_single_line(str(header['name']))}: {_single_line(str(header['value']))}"
            for header in body.get("payload", {}).get("headers", [])
        ]
        size = body.get("sizeEstimate")
        headers = MessageHeaders(
            provider_message_id=str(body["id"]),
            provider_thread_id=body.get("threadId"),
            internal_date=datetime.fromtimestamp(int(body["internalDate"]) / 1000, UTC),
            raw_headers=("\r\n".join(header_lines) + "\r\n\r\n").encode("utf-8"),
            size_bytes=int(size) if size is not None else None,
        )
        return _Metadata(headers, frozenset(str(label) for label in body.get("labelIds", [])))

    def _fetch_raw(self, message_id: str) -> RawMessage | None:
        response = self._rest.get(f"messages/{quote(message_id, safe='')}", params={"format": "raw"})
        if response.status_code == 404:
            return None
        body = self._checked_json(response)
        encoded = str(body["raw"])
        try:
            # Gmail's base64url sometimes omits padding; restoring it is harmless when present.
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError) as error:
            raise TransientError(f"Gmail sent message {message_id} in a broken encoding") from error
        return RawMessage(provider_message_id=str(body["id"]), raw=raw)

    def _get_json(self, url: str) -> dict[str, Any]:
        return self._checked_json(self._rest.get(url))

    def _checked_json(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code in (403, 429):
            reasons = _error_reasons(response)
            if response.status_code == 429 or reasons & _RATE_LIMIT_REASONS:
                raise RateLimited(
                    f"Gmail quota reached ({', '.join(sorted(reasons)) or 'HTTP 429'})",
                    retry_after_seconds(response),
                )
            if reasons & _ADMIN_POLICY_REASONS:
                raise AccessBlocked(
                    "Gmail refused access because a Google Workspace administrator's policy blocks this "
                    f"app for the domain ({one_line(_error_message(response))}); reconnecting cannot "
                    "help: ask the administrator to allow touchline"
                )
            raise AuthError(f"Gmail refused access ({', '.join(sorted(reasons)) or 'HTTP 403'})")
        raise_for_status(response, SERVICE_NAME)
        return json_object(response, SERVICE_NAME)


@dataclass(frozen=True)
class _Metadata:
    headers: MessageHeaders
    label_ids: frozenset[str]


def _candidate_message_ids(records: Sequence[Mapping[str, Any]], label_id: str) -> list[str]:
    """Messages that may have entered the label: every message added (its record rarely says its
    labels) and every message given this label later. The metadata fetch decides."""
    message_ids: dict[str, None] = {}
    for record in records:
        for added in record.get("messagesAdded", []):
            message_ids[str(added["message"]["id"])] = None
        for labelled in record.get("labelsAdded", []):
            if label_id in labelled.get("labelIds", []):
                message_ids[str(labelled["message"]["id"])] = None
    return list(message_ids)


def _record_message_ids(record: Mapping[str, Any]) -> set[str]:
    return {
        str(entry["message"]["id"])
        for key in ("messagesAdded", "labelsAdded")
        for entry in record.get(key, [])
    }


def _covered_records(
    records: Sequence[Mapping[str, Any]], fetched: Mapping[str, object], start_history_id: str
) -> tuple[set[str], str]:
    """The message ids of the leading records whose messages were all fetched, and the history id to
    resume from: the last such record's, or where this page started."""
    covered: set[str] = set()
    checkpoint = start_history_id
    for record in records:
        ids = _record_message_ids(record) & fetched.keys()
        if any(isinstance(fetched[message_id], RateLimited) for message_id in ids):
            break
        covered |= ids
        checkpoint = str(record["id"])
    return covered, checkpoint


def _error_reasons(response: httpx.Response) -> set[str]:
    try:
        errors = response.json()["error"]["errors"]
        return {str(error["reason"]) for error in errors}
    except (ValueError, KeyError, TypeError):
        return set()


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _gmail_retry_after(response: httpx.Response, reason: str) -> float:
    """Retry-After when given; else the moment Gmail names in its message for per-user limits
    ("User-rate limit exceeded.  Retry after 2026-12-07T09:30:00.000Z (Mail sending)")."""
    if "Retry-After" not in response.headers:
        named = _RETRY_AFTER_MOMENT.search(reason)
        if named is not None:
            moment = datetime.fromisoformat(named.group(1).replace("Z", "+00:00"))
            return max(0.0, (moment - datetime.now(UTC)).total_seconds())
    return retry_after_seconds(response)


def _single_line(value: str) -> str:
    """Gmail returns unfolded values; a stray line break would forge a header in the block we build."""
    return value.replace("\r", " ").replace("\n", " ")
