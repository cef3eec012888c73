"""Any IMAP server, through imapclient.

Folders are opened with EXAMINE (read-only) and read with ``BODY.PEEK``, so syncing never changes a
flag: mail the user has not read stays unread. New messages are those with a UID above the cursor's
``last_uid``; a changed UIDVALIDITY means the server renumbered the folder, and ``CursorExpired`` is
raised. HIGHESTMODSEQ (CONDSTORE, RFC 7162) is recorded with every complete pass so that flag and
expunge tracking can later start from it; new mail alone is found from UIDNEXT.

``unchanged_folders`` compares UIDVALIDITY, UIDNEXT and, when the cursor holds one, HIGHESTMODSEQ with
the cursors without opening any folder: one ``LIST ... RETURN (STATUS ...)`` (RFC 5819) where the
server offers LIST-STATUS, one STATUS per folder where it does not.

Message ids are ``"<uidvalidity>:<uid>"``: a UID means nothing without its UIDVALIDITY, and an id from
before a renumbering must not fetch a different message after it.

Inbox is the mailbox named INBOX (RFC 3501); the other special folders come from SPECIAL-USE flags
(RFC 6154), or, on servers without them, from their usual names.

Every connection first checks where the host leads (``ImapAccount.addresses``) and then connects to
the checked address, while TLS still verifies the certificate for the host name as entered. Errors
never carry what the server sent (a greeting, a refusal's text): a host that is not the mail server
it claims to be must not be read through touchline's messages. What the server said is logged.
"""

from __future__ import annotations

import functools
import imaplib
import ipaddress
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, ClassVar

from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imap_utf7 import encode as encode_utf7
from imapclient.response_parser import parse_response
from imapclient.tls import IMAP4_TLS
from imapclient.tls import wrap_socket as wrap_tls_socket

from touchline.kit.net import AddressPolicy, CheckedTarget, ForbiddenAddressError, UnresolvableHostError
from touchline.mailboxes.providers.base import (
    DEFAULT_BATCH_SIZE,
    AccessTokenSource,
    AuthError,
    CursorExpired,
    Folder,
    FolderCursor,
    FolderNotFound,
    HeaderBatch,
    InsecureConnectionError,
    MessageHeaders,
    ProviderError,
    RawMessage,
    SpecialUse,
    TransientError,
    require_aware,
    require_batch_size,
)

DEFAULT_POLL_INTERVAL_SECONDS = 30.0
# Raw bodies can be large; fetching a few at a time keeps one response from holding many in memory.
_RAW_FETCH_CHUNK = 20

_SPECIAL_USE_FLAGS = {
    b"\\sent": SpecialUse.SENT,
    b"\\drafts": SpecialUse.DRAFTS,
    b"\\trash": SpecialUse.TRASH,
    b"\\junk": SpecialUse.JUNK,
    b"\\archive": SpecialUse.ARCHIVE,
    b"\\all": SpecialUse.ALL,
    b"\\flagged": SpecialUse.FLAGGED,
    b"\\important": SpecialUse.IMPORTANT,
}
# Names common servers and clients give special folders, in order of preference; used only when no
# folder carries the special-use flag.
_FALLBACK_NAMES = {
    SpecialUse.SENT: ("sent", "sent items", "sent messages", "sent mail"),
    SpecialUse.DRAFTS: ("drafts", "draft"),
    SpecialUse.TRASH: ("trash", "deleted items", "deleted messages", "bin"),
    SpecialUse.JUNK: ("junk", "spam", "junk e-mail", "junk email", "bulk mail"),
    SpecialUse.ARCHIVE: ("archive", "archives"),
}
_NOT_SELECTABLE = frozenset({b"\\noselect", b"\\nonexistent"})
# Above this the folders are asked for with the pattern "*" rather than by name: servers bound the
# length of a command line (Dovecot at 64 KiB), and a long name list gains little over listing all.
_LIST_STATUS_MAX_PATTERN_BYTES = 4096
# imapclient sends imaplib's most detailed trace (level 5) to this logger, whether or not it logs it.
_IMAPLIB_TRACE = logging.getLogger("imapclient.imaplib")
log = logging.getLogger(__name__)


class ConnectionSecurity(StrEnum):
    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


def is_loopback_host(host: str) -> bool:
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True  # RFC 6761: these names always resolve to the loopback interface
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ImapAccount:
    """How to reach and log in to one IMAP mailbox: a password, or OAuth tokens for XOAUTH2."""

    host: str
    username: str
    password: str | None = field(default=None, repr=False)
    token_source: AccessTokenSource | None = field(default=None, repr=False)
    security: ConnectionSecurity = ConnectionSecurity.TLS
    port: int | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False)
    timeout_seconds: float = 30.0
    # Public addresses only unless the caller's policy says otherwise.
    addresses: AddressPolicy = field(default=AddressPolicy(), repr=False)

    def __post_init__(self) -> None:
        if (self.password is None) == (self.token_source is None):
            raise ValueError("an IMAP account logs in with either a password or a token source")
        if self.security is ConnectionSecurity.PLAIN and not is_loopback_host(self.host):
            raise InsecureConnectionError(
                f"refusing an unencrypted IMAP connection to {self.host}: plain text is allowed only to "
                "this machine (localhost); choose TLS or STARTTLS"
            )

    @property
    def resolved_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.security is ConnectionSecurity.TLS else 143


@dataclass(frozen=True)
class ImapCursor(FolderCursor):
    kind: ClassVar[str] = "imap"
    uidvalidity: int
    last_uid: int
    highest_modseq: int | None = None


@dataclass(frozen=True)
class _FolderStatus:
    uidvalidity: int
    uid_next: int | None
    highest_modseq: int | None


class ImapProvider:
    """One IMAP mailbox over one connection, opened on first use and again after a drop."""

    def __init__(
        self,
        account: ImapAccount,
        *,
        poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
    ) -> None:
        self._account = account
        self._poll_interval_seconds = poll_interval_seconds
        self._client: IMAPClient | None = None
        # Per connection: whether CONDSTORE still has to be enabled, and the folder EXAMINE opened.
        self._condstore_pending = False
        self._selected: str | None = None
        # A second handle on the connection's socket, for abort() to shut it down from another thread.
        self._abort_lock = threading.Lock()
        self._aborted = False
        self._socket_handle: socket.socket | None = None

    def __enter__(self) -> ImapProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def abort(self) -> None:
        """Stop the call in progress, from another thread: its connection is shut down under it, so
        that it fails at once instead of waiting for the server. No connection is opened afterwards."""
        with self._abort_lock:
            self._aborted = True
            if self._socket_handle is not None:
                with suppress(OSError):
                    self._socket_handle.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        self._release_socket_handle()
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClient.Error, OSError, EOFError):
            _shutdown_quietly(client)

    def cursor_from_json(self, data: Mapping[str, object]) -> ImapCursor:
        return ImapCursor.from_json(data)

    def list_folders(self) -> list[Folder]:
        with self._translated_errors():
            listing = self._connection().list_folders()
        # imapclient hands back folder names that look like numbers as ints.
        entries = [
            (str(name), {bytes(flag).lower() for flag in flags}, delimiter)
            for flags, delimiter, name in listing
        ]
        special_uses: dict[str, SpecialUse] = {}
        for name, flags, _ in entries:
            if name.upper() == "INBOX":
                special_uses[name] = SpecialUse.INBOX
            for flag in flags:
                if flag in _SPECIAL_USE_FLAGS and name not in special_uses:
                    special_uses[name] = _SPECIAL_USE_FLAGS[flag]
        by_leaf: dict[str, str] = {}
        for name, _, delimiter in entries:
            by_leaf.setdefault(_leaf(name, delimiter).lower(), name)  # the first listed wins
        for special_use, candidates in _FALLBACK_NAMES.items():
            if special_use in special_uses.values():
                continue
            for candidate in candidates:
                if candidate in by_leaf and by_leaf[candidate] not in special_uses:
                    special_uses[by_leaf[candidate]] = special_use
                    break
        return [
            Folder(
                id=name,
                name=name,
                special_use=special_uses.get(name),
                selectable=not flags & _NOT_SELECTABLE,
            )
            for name, flags, _ in entries
        ]

    def fetch_new_headers(
        self,
        folder_id: str,
        cursor: ImapCursor | None,
        *,
        since: datetime,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[HeaderBatch[ImapCursor], None, None]:
        since = require_aware(since, "since")
        require_batch_size(batch_size)
        with self._translated_errors():
            client = self._connection()
            status = self._examine(client, folder_id)
            if cursor is not None and cursor.uidvalidity != status.uidvalidity:
                raise CursorExpired(
                    f"{folder_id} was renumbered (UIDVALIDITY {cursor.uidvalidity} -> {status.uidvalidity})"
                )
            last_uid = cursor.last_uid if cursor is not None else 0
            # Everything below UIDNEXT existed when the folder was opened, so once every match below it
            # has been handled the cursor can move past the non-matching rest too.
            settled_uid = max(last_uid, status.uid_next - 1 if status.uid_next else 0)
            complete = ImapCursor(status.uidvalidity, settled_uid, status.highest_modseq)
            if status.uid_next is not None and status.uid_next <= last_uid + 1:
                yield HeaderBatch((), complete)
                return
            # SINCE compares dates only, in the server's zone; a day's margin then an exact filter.
            criteria: list[Any] = ["UID", f"{last_uid + 1}:*", "SINCE", (since - timedelta(days=1)).date()]
            # "n:*" always matches the highest UID, even when it is below n (RFC 3501 section 6.4.8).
            uids = sorted(uid for uid in client.search(criteria) if uid > last_uid)
            previous_modseq = cursor.highest_modseq if cursor is not None else None
            for start in range(0, len(uids), batch_size):
                chunk = uids[start : start + batch_size]
                fetched = client.fetch(chunk, [b"BODY.PEEK[HEADER]", b"INTERNALDATE", b"RFC822.SIZE"])
                messages = []
                for uid in chunk:
                    if uid not in fetched:
                        continue  # expunged between SEARCH and FETCH
                    headers = _message_headers(status.uidvalidity, uid, fetched[uid])
                    if headers.internal_date >= since:
                        messages.append(headers)
                is_last = start + batch_size >= len(uids)
                if is_last:
                    yield HeaderBatch(tuple(messages), complete)
                else:
                    partial = ImapCursor(status.uidvalidity, chunk[-1], previous_modseq)
                    yield HeaderBatch(tuple(messages), partial)
            if not uids:
                yield HeaderBatch((), complete)

    def fetch_raw_messages(self, folder_id: str, message_ids: Sequence[str]) -> list[RawMessage]:
        if not message_ids:
            return []
        requested = [_parse_message_id(message_id) for message_id in message_ids]
        with self._translated_errors():
            client = self._connection()
            status = self._examine(client, folder_id)
            if any(uidvalidity != status.uidvalidity for uidvalidity, _ in requested):
                raise CursorExpired(f"{folder_id} was renumbered since these messages were listed")
            uids = [uid for _, uid in requested]
            raw_messages: list[RawMessage] = []
            for start in range(0, len(uids), _RAW_FETCH_CHUNK):
                chunk = uids[start : start + _RAW_FETCH_CHUNK]
                fetched = client.fetch(chunk, [b"BODY.PEEK[]"])
                raw_messages.extend(
                    RawMessage(f"{status.uidvalidity}:{uid}", bytes(fetched[uid][b"BODY[]"]))
                    for uid in chunk
                    if uid in fetched and b"BODY[]" in fetched[uid]
                )
        return raw_messages

    def holds_message_id(self, folder_id: str, message_id: str) -> bool:
        """Whether `folder_id` holds a message with this Message-ID header (SEARCH HEADER)."""
        with self._translated_errors():
            client = self._connection()
            self._examine(client, folder_id)
            return bool(client.search(["HEADER", "Message-ID", message_id]))

    def append_message(self, folder_id: str, raw: bytes, *, seen: bool = True) -> None:
        """Store a copy of `raw` in `folder_id`, as a mail client does with what it sent."""
        with self._translated_errors():
            self._connection().append(folder_id, raw, flags=[b"\\Seen"] if seen else [])

    def unchanged_folders(self, cursors: Mapping[str, ImapCursor]) -> set[str]:
        """The folders whose UIDVALIDITY and UIDNEXT (and HIGHESTMODSEQ, when the cursor holds one)
        are what their cursor says, asked for without opening any of them.

        A folder the server says nothing about (deleted, renamed, not selectable) counts as changed, so
        that opening it reports what happened to it. So does the folder this connection has open:
        STATUS of the selected folder need not be current (RFC 3501, section 6.3.10).
        """
        if not cursors:
            return set()
        with self._translated_errors():
            client = self._connection()
            items = [b"UIDNEXT", b"UIDVALIDITY"]
            if client.has_capability("CONDSTORE"):
                items.append(b"HIGHESTMODSEQ")
            if client.has_capability("LIST-STATUS"):
                statuses = _list_status(client, list(cursors), items)
            else:
                statuses = _status_each(client, list(cursors), items)
        return {
            folder_id
            for folder_id, cursor in cursors.items()
            if folder_id != self._selected
            and (status := statuses.get(folder_id)) is not None
            and _nothing_new(cursor, status)
        }

    def wait_for_changes(self, folder_id: str, cursor: ImapCursor | None, timeout_seconds: float) -> bool:
        """IDLE (RFC 2177) where the server offers it, otherwise NOOP every ``poll_interval_seconds``.

        Keep ``timeout_seconds`` under 29 minutes: servers may end an IDLE after 30 (RFC 2177).
        """
        deadline = time.monotonic() + timeout_seconds
        with self._translated_errors():
            client = self._connection()
            status = self._examine(client, folder_id)
            if (
                cursor is None
                or cursor.uidvalidity != status.uidvalidity
                or (status.uid_next is not None and status.uid_next > cursor.last_uid + 1)
            ):
                return True
            if client.has_capability("IDLE"):
                return self._idle_until(client, deadline)
            return self._poll_until(client, deadline)

    def _idle_until(self, client: IMAPClient, deadline: float) -> bool:
        client.idle()
        arrived = False
        try:
            while not arrived and (remaining := deadline - time.monotonic()) > 0:
                arrived = any(_is_arrival(response) for response in client.idle_check(timeout=remaining))
        finally:
            _, final_responses = client.idle_done()
        return arrived or any(_is_arrival(response) for response in final_responses)

    def _poll_until(self, client: IMAPClient, deadline: float) -> bool:
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(self._poll_interval_seconds, remaining))
            _, responses = client.noop()
            if any(_is_arrival(response) for response in responses):
                return True
        return False

    def _connection(self) -> IMAPClient:
        if self._client is None:
            self._client = self._open()
            self._selected = None
            # Deferred to the first EXAMINE: a sync that finds nothing new never needs it.
            self._condstore_pending = True
        return self._client

    def _open(self) -> IMAPClient:
        account = self._account
        if account.password is not None:
            password = account.password
            return self._open_and_login(lambda client: client.login(account.username, password))
        assert account.token_source is not None  # guaranteed by ImapAccount.__post_init__
        token = account.token_source.access_token()
        try:
            return self._open_and_login(lambda client: client.oauth2_login(account.username, token))
        except AuthError:
            # The token may have been revoked early or expired on the server's clock: refresh once.
            fresh = account.token_source.refresh_rejected(token)
            return self._open_and_login(lambda client: client.oauth2_login(account.username, fresh))

    def _open_and_login(self, login: Callable[[IMAPClient], object]) -> IMAPClient:
        account = self._account
        context = None
        if account.security is not ConnectionSecurity.PLAIN:
            context = account.ssl_context or _default_ssl_context()
        target = self._checked_target()
        with self._connection_errors(target):
            client = _PinnedImapClient(
                target.host,
                target.port,
                partial(self._open_socket, target),
                tls=account.security is ConnectionSecurity.TLS,
                ssl_context=context,
                timeout=account.timeout_seconds,
            )
        _trace_only_when_logged(client)
        try:
            self._secure_and_login(client, target, context, login)
        except BaseException:
            _shutdown_quietly(client)
            raise
        return client

    def _open_socket(self, target: CheckedTarget, timeout: float) -> socket.socket:
        sock = target.connect(timeout)
        with self._abort_lock:
            if self._aborted:
                sock.close()
                raise ConnectionAbortedError("the connection was given up")
            handle, self._socket_handle = self._socket_handle, sock.dup()
        if handle is not None:
            handle.close()
        return sock

    def _release_socket_handle(self) -> None:
        with self._abort_lock:
            handle, self._socket_handle = self._socket_handle, None
        if handle is not None:
            handle.close()

    def _checked_target(self) -> CheckedTarget:
        """Where the host leads now: checked at every connection, as its DNS answer may have changed."""
        account = self._account
        try:
            target = account.addresses.check(account.host, account.resolved_port)
        except ForbiddenAddressError as error:
            raise InsecureConnectionError(str(error)) from error
        except UnresolvableHostError as error:
            raise TransientError(str(error)) from error
        if account.security is ConnectionSecurity.PLAIN and not all(
            address.is_loopback for address in target.addresses
        ):
            raise InsecureConnectionError(
                f"refusing an unencrypted IMAP connection to {account.host}: it does not lead to this "
                "machine; choose TLS or STARTTLS"
            )
        return target

    def _secure_and_login(
        self,
        client: IMAPClient,
        target: CheckedTarget,
        context: ssl.SSLContext | None,
        login: Callable[[IMAPClient], object],
    ) -> None:
        account = self._account
        # Aware datetimes in the server's zone, rather than naive local times.
        client.normalise_times = False
        if account.security is ConnectionSecurity.STARTTLS:
            if not client.has_capability("STARTTLS"):
                raise InsecureConnectionError(f"{account.host} does not offer STARTTLS; refusing plain text")
            with self._connection_errors(target):
                client.starttls(context)
        try:
            login(client)
        except LoginError as error:
            log.info("%s refused the login for %s: %r", account.host, account.username, str(error))
            if "[UNAVAILABLE]" in str(error):  # RFC 5530: the server cannot check credentials right now
                raise TransientError(f"{account.host} cannot check logins now; try again later") from error
            raise AuthError(f"{account.host} refused the login for {account.username}") from error

    @contextmanager
    def _connection_errors(self, target: CheckedTarget) -> Iterator[None]:
        """Opening a connection fails with a message of our own: what the server sent stays in the log."""
        where = f"{target.host}:{target.port}"
        try:
            yield
        except ssl.SSLCertVerificationError as error:
            # OpenSSL's own words about the certificate, about the name as entered.
            raise InsecureConnectionError(
                f"the certificate of {target.host} cannot be verified: {error.verify_message}"
            ) from error
        except (OSError, EOFError, IMAPClient.Error) as error:
            log.info("cannot connect to %s: %r", where, error)
            raise TransientError(f"cannot connect to {where}: {_connection_failure(error)}") from error

    def _examine(self, client: IMAPClient, folder_id: str) -> _FolderStatus:
        if self._condstore_pending:
            # Must be enabled before a folder is selected for SELECT to report HIGHESTMODSEQ, and
            # ENABLE is refused once one is (RFC 5161).
            self._condstore_pending = False
            if client.has_capability("CONDSTORE") and client.has_capability("ENABLE"):
                client.enable("CONDSTORE")
        # Until EXAMINE answers, no folder is known to be open: a refused one closes the previous.
        self._selected = None
        try:
            response = client.select_folder(folder_id, readonly=True)
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as error:
            log.info("%s refused to open %r: %r", self._account.host, folder_id, error)
            raise FolderNotFound(f"cannot open folder {folder_id!r}") from error
        self._selected = folder_id
        if b"UIDVALIDITY" not in response:
            raise ProviderError(f"the server gave no UIDVALIDITY for {folder_id!r}")
        uid_next = response.get(b"UIDNEXT")
        modseq = response.get(b"HIGHESTMODSEQ")
        return _FolderStatus(
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uid_next=int(uid_next) if uid_next is not None else None,
            highest_modseq=int(modseq) if modseq is not None else None,
        )

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        """A dropped or broken connection becomes TransientError, and the next call reconnects."""
        try:
            yield
        except (IMAPClient.AbortError, OSError, EOFError) as error:
            self._discard_connection()
            log.info("the connection to %s broke: %r", self._account.host, error)
            raise TransientError(f"the connection to {self._account.host} broke") from error
        except ProviderError:
            raise
        except IMAPClient.Error as error:
            self._discard_connection()
            log.info("%s refused a command: %r", self._account.host, error)
            raise ProviderError(f"{self._account.host} refused a command") from error

    def _discard_connection(self) -> None:
        client, self._client = self._client, None
        self._selected = None
        self._release_socket_handle()
        if client is not None:
            _shutdown_quietly(client)


# Opens a TCP connection to a checked address within the given seconds.
_Connector = Callable[[float], socket.socket]


class _PinnedImap4(IMAP4WithTimeout):  # type: ignore[misc] # imapclient ships no types
    """imaplib's connection, made to the checked addresses rather than to what the name resolves to now."""

    def __init__(self, host: str, port: int, open_socket: _Connector, timeout: float) -> None:
        self._open_socket = open_socket
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return self._open_socket(timeout or self._timeout)


class _PinnedImap4Tls(IMAP4_TLS):  # type: ignore[misc] # imapclient ships no types
    """The same over TLS: the certificate must be valid for the host name entered (SNI and name check)."""

    def __init__(
        self,
        host: str,
        port: int,
        open_socket: _Connector,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
    ) -> None:
        self._open_socket = open_socket
        super().__init__(host, port, ssl_context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = self._open_socket(timeout or self._timeout)
        try:
            tls_socket: socket.socket = wrap_tls_socket(sock, self.ssl_context, self.host)
        except BaseException:
            sock.close()
            raise
        return tls_socket


class _PinnedImapClient(IMAPClient):  # type: ignore[misc] # imapclient ships no types
    """IMAPClient connecting through ``open_socket``; STARTTLS, like TLS, checks the name in ``host``."""

    def __init__(
        self,
        host: str,
        port: int,
        open_socket: _Connector,
        *,
        tls: bool,
        ssl_context: ssl.SSLContext | None,
        timeout: float,
    ) -> None:
        self._open_socket = open_socket
        super().__init__(host, port=port, ssl=tls, ssl_context=ssl_context, timeout=timeout)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        connect_timeout: float = self._timeout.connect
        if self.ssl:
            return _PinnedImap4Tls(self.host, self.port, self._open_socket, self.ssl_context, connect_timeout)
        return _PinnedImap4(self.host, self.port, self._open_socket, connect_timeout)


def _connection_failure(error: BaseException) -> str:
    """A fixed description of why a connection could not be opened."""
    if isinstance(error, ssl.SSLError):
        return "the TLS handshake failed; check the port and the connection security"
    if isinstance(error, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(error, TimeoutError):
        return "no answer in time"
    if isinstance(error, (IMAPClient.Error, EOFError)):
        return "it did not answer as an IMAP server"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()  # this machine's words for what the network did
    return "the network failed"


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    """One verifying context for every connection: loading the system's CA bundle takes tens of
    milliseconds, more than a whole sync that finds nothing new. A context is safe to share."""
    return ssl.create_default_context()


def _trace_only_when_logged(client: IMAPClient) -> None:
    """Turn imaplib's trace off unless its logger would write it.

    imapclient sets imaplib's debug level to 5 on every connection and hands the trace to a logger.
    imaplib then formats the repr of every response it reads, whole message bodies included, before
    the logger drops it: that was a fifth of an initial sync's CPU time.
    """
    if not _IMAPLIB_TRACE.isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def _nothing_new(cursor: ImapCursor, status: _FolderStatus) -> bool:
    """True when a pass from ``cursor`` would find no message and end at this very cursor."""
    if status.uidvalidity != cursor.uidvalidity or status.uid_next is None:
        return False
    # UIDNEXT only grows; one below the cursor's next UID is a server we do not understand.
    if status.uid_next != cursor.last_uid + 1:
        return False
    return cursor.highest_modseq is None or status.highest_modseq == cursor.highest_modseq


def _list_status(client: IMAPClient, folder_ids: list[str], items: list[bytes]) -> dict[str, _FolderStatus]:
    """One ``LIST "" (names) RETURN (STATUS (items))`` (RFC 5819) for all the folders.

    imapclient has no call for it, so the command goes through its imaplib connection, as imapclient's
    own LIST does. A refused command or an answer that cannot be read leaves every folder unanswered.
    """
    imap: Any = client._imap
    names = [_quoted_mailbox(folder_id, encode=client.folder_encode) for folder_id in folder_ids]
    quoted = [name for name in names if name is not None]
    if (
        client.has_capability("LIST-EXTENDED")  # a list of names is LIST-EXTENDED syntax (RFC 5258)
        and len(quoted) == len(names)
        and sum(len(name) + 1 for name in quoted) <= _LIST_STATUS_MAX_PATTERN_BYTES
    ):
        patterns = b"(" + b" ".join(quoted) + b")"
    else:
        patterns = b'"*"'
    # Neither an earlier command's answers nor this one's may be taken for another command's.
    imap.untagged_responses.pop("STATUS", None)
    try:
        typ, _ = imap._simple_command(
            "LIST", b'""', patterns, b"RETURN", b"(STATUS (" + b" ".join(items) + b"))"
        )
        answers = imap.untagged_responses.pop("STATUS", [])
        return _statuses(client, answers) if typ == "OK" else {}
    except IMAPClient.AbortError:
        raise
    except IMAPClient.Error:
        return {}
    finally:
        imap.untagged_responses.pop("LIST", None)
        imap.untagged_responses.pop("STATUS", None)


def _status_each(client: IMAPClient, folder_ids: list[str], items: list[bytes]) -> dict[str, _FolderStatus]:
    statuses: dict[str, _FolderStatus] = {}
    for folder_id in folder_ids:
        try:
            response = client.folder_status(folder_id, items)
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error:
            continue  # gone or refused: opening it will tell what happened
        status = _folder_status(response)
        if status is not None:
            statuses[folder_id] = status
    return statuses


def _statuses(client: IMAPClient, answers: list[Any]) -> dict[str, _FolderStatus]:
    """Read ``* STATUS name (item value ...)`` answers; imaplib hands over a literal name as a tuple."""
    parsed = parse_response([answer for answer in answers if answer not in (b"", None)])
    if len(parsed) % 2:
        return {}
    statuses: dict[str, _FolderStatus] = {}
    for name, values in zip(parsed[::2], parsed[1::2], strict=True):
        if not isinstance(values, tuple) or len(values) % 2:
            continue
        if isinstance(name, int):
            folder_id = str(name)  # a name that looks like a number, as imapclient's LIST does
        elif isinstance(name, bytes):
            folder_id = decode_utf7(name) if client.folder_encode else name.decode()
        else:
            continue
        status = _folder_status(dict(zip(values[::2], values[1::2], strict=True)))
        if status is not None:
            statuses[folder_id] = status
    return statuses


def _folder_status(response: Mapping[Any, Any]) -> _FolderStatus | None:
    values = {bytes(key).upper(): value for key, value in response.items() if isinstance(key, bytes)}
    try:
        uidvalidity = int(values[b"UIDVALIDITY"])
        uid_next = int(values[b"UIDNEXT"])
        modseq = values.get(b"HIGHESTMODSEQ")
        return _FolderStatus(uidvalidity, uid_next, int(modseq) if modseq is not None else None)
    except (KeyError, TypeError, ValueError):
        return None


def _quoted_mailbox(folder_id: str, *, encode: bool) -> bytes | None:
    """The folder's name as an IMAP quoted string, or None where only a literal could carry it."""
    encoded = encode_utf7(folder_id) if encode else folder_id.encode()
    if any(byte < 0x20 or byte > 0x7E for byte in encoded):
        return None
    return b'"' + encoded.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _shutdown_quietly(client: IMAPClient) -> None:
    with suppress(OSError):  # the other side may have closed it already
        client.shutdown()


def _leaf(name: str, delimiter: bytes | None) -> str:
    if not delimiter:
        return name
    return name.rsplit(delimiter.decode(), 1)[-1]


def _message_headers(uidvalidity: int, uid: int, data: Mapping[bytes, Any]) -> MessageHeaders:
    internal_date: datetime = data[b"INTERNALDATE"]
    if internal_date.tzinfo is None:
        internal_date = internal_date.replace(tzinfo=UTC)
    size = data.get(b"RFC822.SIZE")
    return MessageHeaders(
        provider_message_id=f"{uidvalidity}:{uid}",
        provider_thread_id=None,
        internal_date=internal_date.astimezone(UTC),
        raw_headers=bytes(data.get(b"BODY[HEADER]", b"")),
        size_bytes=int(size) if size is not None else None,
    )


def _parse_message_id(message_id: str) -> tuple[int, int]:
    uidvalidity, separator, uid = message_id.partition(":")
    if not separator or not uidvalidity.isdigit() or not uid.isdigit():
        raise ValueError(f"not an IMAP message id: {message_id!r}")
    return int(uidvalidity), int(uid)


def _is_arrival(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"
