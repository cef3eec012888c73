"""Outlook and Microsoft 365 mailboxes through Microsoft Graph (``v1.0``).

Each folder is synced with ``/me/mailFolders/{id}/messages/delta``: the first round lists the whole
folder page by page through ``@odata.nextLink`` and ends with an ``@odata.deltaLink`` that later
rounds start from. Either link is the cursor, so an interrupted round resumes where it stopped. Graph
answers 410 when it has dropped the sync state: ``CursorExpired``.

The look-back is applied here, to ``receivedDateTime``, not with ``$filter``: a delta round with
``$filter`` returns at most 5,000 messages ("Get incremental changes to messages in a folder"), which
would silently cut a larger folder. Later rounds report changed messages with only the properties
that changed; one without ``receivedDateTime`` is a message already seen (or outside the window)
whose flags moved, and is passed over.

Delta does not return ``internetMessageHeaders``, so triage gets a header block built from the
selected properties (``triage_headers_complete=False``), and ``/messages/{id}/$value`` gives the
raw MIME of kept messages; a body larger than ``max_message_bytes`` is not read past the limit and
comes back marked ``oversized``, for the caller to quarantine. Ids are requested as immutable ids, so
a message moved to another folder keeps the id already stored. Outlook allows four concurrent
requests per mailbox ("Microsoft Graph throttling limits", Outlook service limits), hence the
default ``max_concurrency``, shared by every client of the mailbox in the process; a 429 is waited
out and the request tried again, so no batch is lost to it.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from touchline.mailboxes.providers.base import (
    DEFAULT_BATCH_SIZE,
    MAX_MESSAGE_BYTES,
    AuthError,
    CursorExpired,
    Folder,
    FolderCursor,
    FolderNotFound,
    HeaderBatch,
    MessageHeaders,
    PermissionMissing,
    ProviderError,
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
)

GRAPH_API_BASE_URL = "https://graph.microsoft.com/v1.0/"
SERVICE_NAME = "Microsoft Graph"

# Graph v1.0 has no special-use property on folders; these well-known names can be used in place of
# a folder id whatever the mailbox's language, so asking for each reveals which folder it is.
_WELL_KNOWN_FOLDERS = {
    "inbox": SpecialUse.INBOX,
    "sentitems": SpecialUse.SENT,
    "drafts": SpecialUse.DRAFTS,
    "deleteditems": SpecialUse.TRASH,
    "junkemail": SpecialUse.JUNK,
    "archive": SpecialUse.ARCHIVE,
}
_MESSAGE_FIELDS = (
    "from",
    "sender",
    "replyTo",
    "toRecipients",
    "ccRecipients",
    "subject",
    "internetMessageId",
    "conversationId",
    "receivedDateTime",
    "sentDateTime",
)
_FOLDER_PAGE_SIZE = 100
# Graph's answer when the access token lacks the permission an API needs (Mail.Send for sendMail).
_MISSING_PERMISSION_CODES = frozenset({"ErrorAccessDenied", "Authorization_RequestDenied"})


@dataclass(frozen=True)
class GraphCursor(FolderCursor):
    """Exactly one link: ``next_link`` while a delta round is under way, then its ``delta_link``."""

    kind: ClassVar[str] = "graph"
    delta_link: str | None = None
    next_link: str | None = None

    def __post_init__(self) -> None:
        if (self.delta_link is None) == (self.next_link is None):
            raise ValueError("a Graph cursor holds exactly one of delta_link and next_link")


class GraphProvider(RestMailboxProvider):
    """A Microsoft 365 / Outlook.com mailbox; see ``touchline.mailboxes.providers.base``."""

    # Names the provider in conversation keys: Graph's conversation ids mean nothing to another provider.
    kind: ClassVar[str] = "graph"

    service_name = SERVICE_NAME
    default_api_base_url = GRAPH_API_BASE_URL
    # Delta tells no sizes, so the guard against huge messages is applied while reading the body.
    max_message_bytes = MAX_MESSAGE_BYTES

    def cursor_from_json(self, data: Mapping[str, object]) -> GraphCursor:
        return GraphCursor.from_json(data)

    def account_address(self) -> str:
        """The signed-in account's address: ``mail``, or ``userPrincipalName`` where an account has
        no mailbox address property (personal Microsoft accounts often leave ``mail`` empty)."""
        body = self._checked_json(self._rest.get("me", params={"$select": "mail,userPrincipalName"}))
        address = body.get("mail") or body.get("userPrincipalName")
        if not address:
            raise ProviderError("Microsoft Graph sent a profile without an address")
        return str(address)

    def list_folders(self) -> list[Folder]:
        special_uses = self._special_uses()
        folders: list[Folder] = []
        pending: list[tuple[str, str]] = [("me/mailFolders", "")]
        while pending:
            url, parent_name = pending.pop(0)
            for entry in self._all_pages(url, {"$top": _FOLDER_PAGE_SIZE}):
                folder_id = str(entry["id"])
                name = f"{parent_name}/{entry['displayName']}" if parent_name else str(entry["displayName"])
                folders.append(Folder(id=folder_id, name=name, special_use=special_uses.get(folder_id)))
                if entry.get("childFolderCount"):
                    pending.append((f"me/mailFolders/{quote(folder_id, safe='')}/childFolders", name))
        return folders

    def fetch_new_headers(
        self,
        folder_id: str,
        cursor: GraphCursor | None,
        *,
        since: datetime,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[HeaderBatch[GraphCursor], None, None]:
        since = require_aware(since, "since")
        headers = {"Prefer": f'odata.maxpagesize={require_batch_size(batch_size)}, IdType="ImmutableId"'}
        url: str
        params: dict[str, str] | None
        if cursor is None:
            url = f"me/mailFolders/{quote(folder_id, safe='')}/messages/delta"
            params = {"$select": ",".join(_MESSAGE_FIELDS)}
        else:
            url = self._own_link(cursor.next_link or cursor.delta_link or "")
            params = None
        while True:
            response = self._rest.get(url, params=params, headers=headers)
            if response.status_code == 410:
                raise CursorExpired("Microsoft Graph dropped this folder's sync state; sync it again")
            if response.status_code == 404:
                raise FolderNotFound(f"Microsoft Graph has no folder {folder_id!r}")
            body = self._checked_json(response)
            messages = tuple(
                sorted(
                    (
                        _message_headers(item)
                        for item in body.get("value", [])
                        if "@removed" not in item and "receivedDateTime" in item and _received(item) >= since
                    ),
                    key=lambda message: message.internal_date,
                )
            )
            next_link = body.get("@odata.nextLink")
            if next_link:
                yield HeaderBatch(messages, GraphCursor(next_link=str(next_link)))
                url, params = self._own_link(str(next_link)), None
                continue
            delta_link = body.get("@odata.deltaLink")
            if not delta_link:
                raise TransientError("Microsoft Graph ended a delta page without a next or delta link")
            yield HeaderBatch(messages, GraphCursor(delta_link=str(delta_link)))
            return

    def fetch_raw_messages(self, folder_id: str, message_ids: Sequence[str]) -> list[RawMessage]:
        fetched = bounded_map(self._fetch_raw, message_ids, self._max_concurrency)
        return [message for message in fetched if message is not None]

    def _fetch_raw(self, message_id: str) -> RawMessage | None:
        response = self._rest.get_limited(
            f"me/messages/{quote(message_id, safe='')}/$value",
            headers={"Prefer": 'IdType="ImmutableId"'},
            max_bytes=self.max_message_bytes,
        )
        if response is None:
            return RawMessage(provider_message_id=message_id, raw=b"", oversized=True)
        if response.status_code == 404:
            return None  # deleted since it was listed
        self._raise_for_status(response)
        return RawMessage(provider_message_id=message_id, raw=response.content)

    def send_mime(self, raw: bytes) -> None:
        """``POST /me/sendMail`` with the MIME message, base64-encoded as ``text/plain`` (Graph's way
        to send MIME). Graph answers 202 without an id and files a copy in Sent Items.

        Raises ``OutcomeUnknown`` when the connection breaks after the request went out,
        ``PermissionMissing`` when the grant lacks ``Mail.Send``, ``RateLimited`` when throttled, and
        ``ProviderError`` for a message Graph refuses (recipients, size, send-as).
        """
        response = self._rest.post(
            "me/sendMail", content=base64.b64encode(raw), headers={"Content-Type": "text/plain"}
        )
        if response.status_code < 400:
            return
        code = _error_code(response)
        if response.status_code == 403 and code in _MISSING_PERMISSION_CODES:
            raise PermissionMissing(
                "Microsoft Graph did not allow this mailbox to send: its owner chooses Allow sending on "
                "Profile > Email"
            )
        raise_for_send_status(response, SERVICE_NAME, f"{code}: {one_line(_error_message(response))}")

    def is_in_sent_items(self, internet_message_id: str) -> bool:
        """Whether Sent Items holds a message with this Message-ID (``internetMessageId``, brackets
        included). Sending is asynchronous in Exchange: a message accepted moments ago may not be
        there yet."""
        quoted = internet_message_id.replace("'", "''")  # OData string literals double their quotes
        params: dict[str, str | int] = {
            "$filter": f"internetMessageId eq '{quoted}'",
            "$select": "id",
            "$top": 1,
        }
        response = self._rest.get("me/mailFolders/sentitems/messages", params=params)
        return bool(self._checked_json(response).get("value"))

    def _special_uses(self) -> dict[str, SpecialUse]:
        special_uses: dict[str, SpecialUse] = {}
        for well_known_name, special_use in _WELL_KNOWN_FOLDERS.items():
            response = self._rest.get(f"me/mailFolders/{well_known_name}", params={"$select": "id"})
            if response.status_code == 404:
                continue  # mailboxes without an archive folder, for one
            special_uses[str(self._checked_json(response)["id"])] = special_use
        return special_uses

    def _all_pages(self, url: str, params: dict[str, str | int]) -> Iterator[dict[str, Any]]:
        next_url: str | None = url
        next_params: dict[str, str | int] | None = params
        while next_url:
            body = self._checked_json(self._rest.get(next_url, params=next_params))
            yield from body.get("value", [])
            link = body.get("@odata.nextLink")
            next_url, next_params = (self._own_link(str(link)), None) if link else (None, None)

    def _own_link(self, link: str) -> str:
        """Links come from stored cursors; one pointing elsewhere would receive our bearer token."""
        if not link.startswith(self._rest.base_url):
            raise CursorExpired("the stored Graph link does not point at the configured Graph API")
        return link

    def _checked_json(self, response: httpx.Response) -> dict[str, Any]:
        self._raise_for_status(response)
        return json_object(response, SERVICE_NAME)

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code == 403:
            raise AuthError(f"Microsoft Graph refused access: {_error_code(response)}")
        if response.status_code == 404:
            raise ProviderError(f"Microsoft Graph found nothing at {response.request.url.path}")
        raise_for_status(response, SERVICE_NAME)


def _received(item: Mapping[str, Any]) -> datetime:
    return datetime.fromisoformat(str(item["receivedDateTime"])).astimezone(UTC)


def _message_headers(item: Mapping[str, Any]) -> MessageHeaders:
    lines: list[str] = []
    for name, field in (("From", "from"), ("Sender", "sender")):
        if item.get(field):
            lines.append(f"{name}: {_address(item[field])}")
    for name, field in (("Reply-To", "replyTo"), ("To", "toRecipients"), ("Cc", "ccRecipients")):
        recipients = item.get(field) or []
        if recipients:
            lines.append(f"{name}: {', '.join(_address(recipient) for recipient in recipients)}")
    if item.get("subject"):
        lines.append(f"Subject: {_encoded_text(str(item['subject']))}")
    if item.get("sentDateTime"):
        sent = datetime.fromisoformat(str(item["sentDateTime"])).astimezone(UTC)
        lines.append(f"Date: {format_datetime(sent)}")
    if item.get("internetMessageId"):
        lines.append(f"Message-ID: {_single_line(str(item['internetMessageId']))}")
    return MessageHeaders(
        provider_message_id=str(item["id"]),
        provider_thread_id=item.get("conversationId"),
        internal_date=_received(item),
        raw_headers=("\r\n".join(lines) + "\r\n\r\n").encode("utf-8"),
        triage_headers_complete=False,
    )


def _address(recipient: Mapping[str, Any]) -> str:
    email_address = recipient.get("emailAddress") or {}
    name = _single_line(str(email_address.get("name") or ""))
    address = _single_line(str(email_address.get("address") or ""))
    if not name or name == address:
        return address
    return formataddr((name, address), charset="utf-8")


def _encoded_text(value: str) -> str:
    value = _single_line(value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _single_line(value: str) -> str:
    """Graph properties are plain strings; a line break in one would forge a header in our block."""
    return value.replace("\r", " ").replace("\n", " ").replace("\0", " ")


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
