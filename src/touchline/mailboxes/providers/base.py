"""The contract every mailbox provider (IMAP, Gmail, Microsoft Graph) keeps with the sync service.

A provider speaks one protocol for one connected mailbox. It does network I/O only: no database
sessions, no parsing beyond what its protocol needs, no decisions about which mail to keep. The sync
service drives it like this:

1. ``list_folders()`` returns every folder with its provider-native id, a display name and, where the
   provider says so, its special use (Inbox, Sent, ...). The user selects folders by id.
2. For each selected folder, ``fetch_new_headers(folder_id, cursor, since=..., batch_size=...)`` yields
   ``HeaderBatch`` objects. Each batch holds the raw header blocks of new messages, oldest first
   (``batch_size`` bounds how many the provider asks its server for at once), and the cursor to
   store once the batch has been handled: a checkpoint. A batch may be empty; its cursor still moves
   forward and should still be stored. Pass ``cursor=None`` for a first sync. A first sync may visit
   batches newest first (Gmail lists that way); later syncs go in arrival order. The generator may
   be closed early; nothing is lost as long as the caller resumes from the last cursor it stored.
   ``since`` (timezone-aware) bounds every call, first or incremental: a message whose internal date
   is older is never returned, so the look-back window also holds for mail moved into a folder later.
3. ``fetch_raw_messages(folder_id, ids)`` returns the full raw message of the ones worth keeping.
   Ids of messages deleted meanwhile are simply absent from the answer.
4. ``close()`` (or leave a ``with`` block).

Delivery is at least once. After any error the caller resumes from the last cursor it stored, so a
message can be yielded twice, and a provider that reports changed messages (Graph) may yield one
again when its flags change. The caller recognises repeats by ``provider_message_id``.

Cursors are frozen dataclasses, one class per provider, stored as JSON: ``cursor.to_json()`` gives a
dict of strings, integers and nulls, and ``provider.cursor_from_json(data)`` reads it back.

Errors, and what the caller does:

* ``AuthError``: the grant was revoked or the password changed; mark the mailbox "needs reconnect".
* ``RateLimited``: try this mailbox again after ``retry_after_seconds``.
* ``TransientError``: network trouble or a server hiccup; retry later from the last stored cursor.
* ``CursorExpired``: the provider forgot the sync point (IMAP UIDVALIDITY changed, Gmail history
  too old, Graph delta state gone). Drop the folder's cursor and sync it again from ``None``; the
  caller recognises what it already stored (provider id, Message-ID), so nothing is lost or doubled.
* ``FolderNotFound``: the folder was deleted or renamed on the server; ask the user to select again.
* ``AccessBlocked``: an administrator's policy keeps the app out; show why, retry rarely.
* Any other ``ProviderError`` (an unexpected answer about one folder): record it on that folder, back
  off that folder, and go on with the others.
* ``InsecureConnectionError``: the connection cannot be made safely (plain text to a remote host,
  an unverifiable certificate, no STARTTLS offered); an administrator must fix the settings.

Providers that can be told about new mail (IMAP IDLE) also implement ``ChangeWaiter``; for the others
the caller polls ``fetch_new_headers`` on a schedule, which is cheap when nothing changed.

Providers that can tell in one cheap call which folders hold nothing new also implement
``ChangeCheck``: ``unchanged_folders(cursors)`` takes folder ids with their stored cursors and returns
the ids of the folders that certainly hold nothing new since their cursor: ``fetch_new_headers`` from
that cursor would yield no message, and nothing else the cursor holds has moved (a pass could at most
add what the cursor lacks, like a HIGHESTMODSEQ an IMAP cursor from a server without CONDSTORE does
not have). The caller leaves those folders alone until its next run, without opening them.
The answer errs one way only: a folder the provider could not ask about, or whose answer it cannot
compare with the cursor (a renumbered folder, a cursor of an interrupted pass, a field the server
left out), is not in the set. The check is optional (Gmail and Graph lack it; their incremental
listing is one request per folder anyway), so callers look for it with ``isinstance(provider,
ChangeCheck)``; it raises the errors listed above like the other calls.

A provider object is not thread-safe: give each worker its own.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar, Generic, Protocol, Self, TypeVar, get_type_hints, runtime_checkable

from touchline.kit.errors import TouchlineError

DEFAULT_BATCH_SIZE = 100
# Messages larger than this are quarantined with their reason instead of stored (SPEC 9).
MAX_MESSAGE_BYTES = 50 * 1024 * 1024

# Header fields the triage stage reads: participants (rule 2), threading and reply attribution
# (In-Reply-To, References), bulk and automatic mail (rule 5) and delivery reports (Content-Type,
# X-Failed-Recipients).
# Providers that cannot return the whole header block ask for these.
TRIAGE_HEADER_NAMES: tuple[str, ...] = (
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Unsubscribe",
    "Precedence",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "X-Failed-Recipients",
    "Content-Type",
)


class SpecialUse(StrEnum):
    """What a folder is for, whatever the server or the user's language calls it (RFC 6154)."""

    INBOX = "inbox"
    SENT = "sent"
    DRAFTS = "drafts"
    TRASH = "trash"
    JUNK = "junk"
    ARCHIVE = "archive"
    ALL = "all"
    FLAGGED = "flagged"
    IMPORTANT = "important"


@dataclass(frozen=True)
class Folder:
    """A folder as the provider names it; ``id`` is what the other calls take."""

    id: str
    name: str
    special_use: SpecialUse | None = None
    selectable: bool = True


@dataclass(frozen=True)
class MessageHeaders:
    """One new message as far as triage needs it.

    ``raw_headers`` is an RFC 5322 header block: the message's own, or the ``TRIAGE_HEADER_NAMES``
    subset of it. When ``triage_headers_complete`` is false the provider could not return the
    message's header fields and built the block from the properties it does return (Graph has no
    List-Id, Auto-Submitted, In-Reply-To...); the caller should decide bulk and auto-reply rules again
    from the full message before creating contacts from it.
    """

    provider_message_id: str
    provider_thread_id: str | None
    internal_date: datetime
    raw_headers: bytes
    size_bytes: int | None = None
    triage_headers_complete: bool = True


@dataclass(frozen=True)
class RawMessage:
    """A kept message's whole MIME; ``oversized`` when the provider stopped reading it at
    ``MAX_MESSAGE_BYTES`` (``raw`` is then empty) and the caller quarantines it instead."""

    provider_message_id: str
    raw: bytes
    oversized: bool = False


JsonScalar = str | int | None

_CURSOR_FIELD_TYPES: dict[object, tuple[type, bool]] = {
    int: (int, False),
    str: (str, False),
    int | None: (int, True),
    str | None: (str, True),
}


@dataclass(frozen=True)
class FolderCursor:
    """Where a folder's sync stopped. Subclasses add their provider's fields and a ``kind``.

    Fields may only be ``int``, ``str`` or their optional forms, so the JSON form is flat and
    readable in the database.
    """

    kind: ClassVar[str]

    def to_json(self) -> dict[str, JsonScalar]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Self:
        if data.get("kind") != cls.kind:
            raise ValueError(f"not a {cls.kind} cursor: kind is {data.get('kind')!r}")
        hints = get_type_hints(cls)
        values: dict[str, object] = {}
        for field in fields(cls):
            expected, optional = _CURSOR_FIELD_TYPES[hints[field.name]]
            value = data.get(field.name)
            if value is None and optional:
                values[field.name] = None
            elif isinstance(value, expected) and not isinstance(value, bool):
                values[field.name] = value
            else:
                raise ValueError(f"{cls.kind} cursor field {field.name!r} cannot be {value!r}")
        return cls(**values)


CursorT = TypeVar("CursorT", bound=FolderCursor)
CursorT_contra = TypeVar("CursorT_contra", bound=FolderCursor, contravariant=True)


@dataclass(frozen=True)
class HeaderBatch(Generic[CursorT]):
    """New messages in arrival order, and the checkpoint to store after handling them."""

    messages: tuple[MessageHeaders, ...]
    cursor: CursorT


class MailboxProvider(Protocol[CursorT]):
    """One connected mailbox, driven by the sync service as the module docstring describes."""

    def list_folders(self) -> list[Folder]: ...

    def fetch_new_headers(
        self,
        folder_id: str,
        cursor: CursorT | None,
        *,
        since: datetime,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[HeaderBatch[CursorT], None, None]: ...

    def fetch_raw_messages(self, folder_id: str, message_ids: Sequence[str]) -> list[RawMessage]: ...

    def cursor_from_json(self, data: Mapping[str, object]) -> CursorT: ...

    def close(self) -> None: ...


@runtime_checkable
class ChangeWaiter(Protocol[CursorT_contra]):
    """A provider that can wait for new mail instead of being polled."""

    def wait_for_changes(self, folder_id: str, cursor: CursorT_contra | None, timeout_seconds: float) -> bool:
        """Block until the folder has mail the cursor has not seen, or the timeout passes.

        Returns True when something arrived (or may have), False on timeout. Comparing against the
        cursor closes the gap between the last sync and the start of waiting.
        """
        ...


@runtime_checkable
class ChangeCheck(Protocol[CursorT_contra]):
    """A provider that can tell, without opening them, which folders hold nothing new."""

    def unchanged_folders(self, cursors: Mapping[str, CursorT_contra]) -> set[str]:
        """The folder ids among ``cursors`` that certainly hold nothing new since their cursor.

        The module docstring says what "nothing new" covers; when unsure, a folder counts as changed.
        """
        ...


class AccessTokenSource(Protocol):
    """Hands OAuth access tokens to a provider; ``touchline.mailboxes.oauth.TokenHolder`` is one."""

    def access_token(self) -> str:
        """A token that is not about to expire, refreshed first when needed."""
        ...

    def refresh_rejected(self, rejected_token: str) -> str:
        """The server refused ``rejected_token``: return a fresh one, or raise ``AuthError``.

        Several requests may be refused at once; only the first refresh reaches the token endpoint.
        """
        ...


class ProviderError(TouchlineError):
    """A mailbox provider could not do what was asked."""


class AuthError(ProviderError):
    """The credentials no longer work (revoked grant, changed password): the user must reconnect."""


class RateLimited(ProviderError):
    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class TransientError(ProviderError):
    """A failure that retrying later from the last stored cursor is expected to cure."""


class CursorExpired(ProviderError):
    """The stored cursor is no longer valid; sync the folder again from no cursor."""


class FolderNotFound(ProviderError):
    """The folder does not exist (any more) on the server."""


class AccessBlocked(ProviderError):
    """The provider refuses access for a reason only an administrator can remove (a Google Workspace
    domain policy): reconnecting cannot help, so the mailbox keeps trying, rarely, and says why."""


class PermissionMissing(ProviderError):
    """The grant lacks a permission this call needs (a scope the user was not asked for when the
    mailbox was connected); reconnecting the mailbox asks for it. Reading may still work."""


class OutcomeUnknown(ProviderError):
    """The request reached the server and the connection broke before its answer: the server may
    have acted on it. Raised only for requests that must not simply be repeated (sending mail)."""


class InsecureConnectionError(ProviderError):
    """Connecting would expose credentials or mail; refused until the settings are fixed."""


class OAuthConfigurationError(ProviderError):
    """The authorization server refused this application (client id, secret or redirect URI), or
    the operator has not registered one."""


def require_aware(moment: datetime, name: str) -> datetime:
    """Naive datetimes are refused rather than guessed: a wrong zone silently shifts the look-back."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def require_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return batch_size
