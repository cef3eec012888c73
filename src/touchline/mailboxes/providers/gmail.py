"""Gmail through its REST API (``gmail/v1``): labels are folders, threads are conversations.

A first sync lists the label's messages newer than ``since`` (``messages.list`` with ``q=after:``),
page by page; the mailbox's ``historyId`` is read *before* listing, so mail arriving meanwhile is
picked up by the next, incremental sync (``history.list`` from that id). Triage reads
``format=metadata`` with only ``TRIAGE_HEADER_NAMES``; only kept messages are fetched with
``format=raw``.

Gmail forgets history after about a week (sometimes hours): ``history.list`` then answers 404 and
``CursorExpired`` is raised. Per-user quota is 250 units a second and ``messages.get`` costs 5, so
metadata requests run with bounded concurrency (``max_concurrency``, 4 by default).
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
    AuthError,
    CursorExpired,
    Folder,
    FolderCursor,
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

    def cursor_from_json(self, data: Mapping[str, object]) -> GmailCursor:
        return GmailCursor.from_json(data)

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
        params: dict[str, str | int] = {
            "q": f"rfc822msgid:{message_id.strip().removeprefix('<').removesuffix('>')}",
            "labelIds": "SENT",
            "includeSpamTrash": "true",
            "maxResults": 1,
        }
        return bool(self._checked_json(self._rest.get("messages", params=params)).get("messages"))

    def _raise_for_send(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        reasons = _error_reasons(response)
        reason = one_line(_error_message(response))
        if response.status_code == 403 and reasons & _MISSING_SCOPE_REASONS:
            raise PermissionMissing("Gmail did not allow this mailbox to send: reconnect it to allow sending")
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
            body = self._checked_json(response)
            records: list[dict[str, Any]] = body.get("history", [])
            next_page = body.get("nextPageToken")
            if next_page:
                # Records come in increasing id order, so a page's last record is a safe restart point
                # even though the page token itself is not worth storing.
                checkpoint = str(records[-1]["id"]) if records else history_id
            else:
                checkpoint = str(body["historyId"])
            yield HeaderBatch(
                self._headers_of(_added_message_ids(records, folder_id), since),
                GmailCursor(history_id=checkpoint),
            )
            if not next_page:
                return
            params["pageToken"] = next_page

    def _headers_of(self, message_ids: Sequence[str], since: datetime) -> tuple[MessageHeaders, ...]:
        fetched = bounded_map(self._fetch_metadata, message_ids, self._max_concurrency)
        kept = [headers for headers in fetched if headers is not None and headers.internal_date >= since]
        return tuple(sorted(kept, key=lambda headers: headers.internal_date))

    def _fetch_metadata(self, message_id: str) -> MessageHeaders | None:
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
        return MessageHeaders(
            provider_message_id=str(body["id"]),
            provider_thread_id=body.get("threadId"),
            internal_date=datetime.fromtimestamp(int(body["internalDate"]) / 1000, UTC),
            raw_headers=("\r\n".join(header_lines) + "\r\n\r\n").encode("utf-8"),
            size_bytes=int(size) if size is not None else None,
        )

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
            raise AuthError(f"Gmail refused access ({', '.join(sorted(reasons)) or 'HTTP 403'})")
        raise_for_status(response, SERVICE_NAME)
        return json_object(response, SERVICE_NAME)


def _added_message_ids(records: Sequence[Mapping[str, Any]], label_id: str) -> list[str]:
    """Messages that entered the label: delivered or saved into it, or given the label later."""
    message_ids: dict[str, None] = {}
    for record in records:
        for added in record.get("messagesAdded", []):
            if label_id in added["message"].get("labelIds", []):
                message_ids[str(added["message"]["id"])] = None
        for labelled in record.get("labelsAdded", []):
            if label_id in labelled.get("labelIds", []):
                message_ids[str(labelled["message"]["id"])] = None
    return list(message_ids)


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
