"""The IMAP provider against a real Dovecot: folders, look-back, cursors, flags, drops and TLS."""

from __future__ import annotations

import datetime as dt
import email
import logging
import threading
import time
from typing import TYPE_CHECKING

import pytest
from imapclient.imapclient import IMAPlibLoggerAdapter

from tests.fakes.gmail import FakeGmail
from tests.mailboxes.messages import email_bytes
from tests.mailboxes.tcp_proxy import cutting_proxy
from tests.services.dovecot import LOOPBACK_ALLOWED
from touchline.mailboxes.oauth import OAuthFlow, OAuthTokens, TokenHolder
from touchline.mailboxes.providers.base import (
    AuthError,
    ChangeWaiter,
    CursorExpired,
    FolderNotFound,
    HeaderBatch,
    InsecureConnectionError,
    SpecialUse,
    TransientError,
)
from touchline.mailboxes.providers.imap import (
    ConnectionSecurity,
    ImapAccount,
    ImapCursor,
    ImapProvider,
)

if TYPE_CHECKING:
    from tests.services.dovecot import DovecotServer, ImapUser

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LOOK_BACK = NOW - dt.timedelta(days=90)


def plain_account(server: DovecotServer, user: ImapUser, *, port: int | None = None) -> ImapAccount:
    return ImapAccount(
        addresses=LOOPBACK_ALLOWED,
        host=server.host,
        port=port or server.imap_port,
        username=user.username,
        password=user.password,
        security=ConnectionSecurity.PLAIN,
        timeout_seconds=5,
    )


def subjects(batches: list[HeaderBatch[ImapCursor]]) -> list[str]:
    return [
        str(email.message_from_bytes(message.raw_headers)["Subject"])
        for batch in batches
        for message in batch.messages
    ]


def deliver(server: DovecotServer, user: ImapUser, *subject_list: str, folder: str = "INBOX") -> list[int]:
    return [
        server.append(user, folder, email_bytes(subject), received_at=NOW - dt.timedelta(minutes=5))
        for subject in subject_list
    ]


def test_folders_are_recognised_by_special_use_not_by_name(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    # A folder called "Sent" that the server does not flag must not be mistaken for the sent folder.
    dovecot.create_folder(imap_user, "Sent")
    dovecot.create_folder(imap_user, "Kunden/Acme")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        folders = {folder.id: folder for folder in provider.list_folders()}

    assert folders["INBOX"].special_use is SpecialUse.INBOX
    assert folders["Gesendet"].special_use is SpecialUse.SENT
    assert folders["Entwürfe"].special_use is SpecialUse.DRAFTS
    assert folders["Papierkorb"].special_use is SpecialUse.TRASH
    assert folders["Unerwünscht"].special_use is SpecialUse.JUNK
    assert folders["Sent"].special_use is None
    assert folders["Kunden/Acme"].special_use is None
    # Creating "Kunden/Acme" leaves "Kunden" as a mere parent that cannot hold mail.
    assert not folders["Kunden"].selectable
    assert all(folder.selectable for name, folder in folders.items() if name != "Kunden")


def test_folders_fall_back_to_usual_names_without_special_use(
    dovecot_without_special_use: DovecotServer,
) -> None:
    server = dovecot_without_special_use
    user = server.add_user()
    with ImapProvider(plain_account(server, user)) as provider:
        uses = {folder.id: folder.special_use for folder in provider.list_folders()}

    assert uses == {
        "INBOX": SpecialUse.INBOX,
        "Sent": SpecialUse.SENT,
        "Drafts": SpecialUse.DRAFTS,
        "Trash": SpecialUse.TRASH,
        "Junk": SpecialUse.JUNK,
    }


def test_first_sync_reads_only_mail_inside_the_look_back_window(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    dovecot.append(imap_user, "INBOX", email_bytes("recent one"), received_at=NOW - dt.timedelta(days=3))
    dovecot.append(imap_user, "INBOX", email_bytes("too old"), received_at=NOW - dt.timedelta(days=120))
    newest_uid = dovecot.append(
        imap_user, "INBOX", email_bytes("recent two"), received_at=NOW - dt.timedelta(hours=1)
    )

    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        batches = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))

    assert subjects(batches) == ["recent one", "recent two"]
    final = batches[-1].cursor
    assert final.uidvalidity == dovecot.uidvalidity(imap_user, "INBOX")
    assert final.last_uid == newest_uid
    assert final.highest_modseq is not None  # CONDSTORE was enabled
    message = batches[0].messages[0]
    assert message.provider_message_id == f"{final.uidvalidity}:1"
    assert message.internal_date == NOW - dt.timedelta(days=3)
    assert message.size_bytes is not None
    assert message.size_bytes > len(message.raw_headers)
    assert message.raw_headers.endswith(b"\r\n\r\n")


def test_incremental_sync_returns_only_new_mail_in_batches(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    deliver(dovecot, imap_user, "before")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        cursor = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor

        unchanged = list(provider.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))
        assert [batch.messages for batch in unchanged] == [()]
        assert unchanged[0].cursor.last_uid == cursor.last_uid

        deliver(dovecot, imap_user, "new 1", "new 2", "new 3", "new 4", "new 5")
        batches = list(provider.fetch_new_headers("INBOX", cursor, since=LOOK_BACK, batch_size=2))

    assert subjects(batches) == ["new 1", "new 2", "new 3", "new 4", "new 5"]
    assert [len(batch.messages) for batch in batches] == [2, 2, 1]
    checkpoints = [batch.cursor.last_uid for batch in batches]
    assert checkpoints == sorted(checkpoints)
    assert checkpoints[-1] == cursor.last_uid + 5
    assert batches[-1].cursor.highest_modseq is not None
    assert batches[-1].cursor.highest_modseq > (cursor.highest_modseq or 0)


def test_cursor_survives_json_and_a_new_connection(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    deliver(dovecot, imap_user, "first")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        stored = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor.to_json()
    deliver(dovecot, imap_user, "second")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        batches = list(
            provider.fetch_new_headers("INBOX", provider.cursor_from_json(stored), since=LOOK_BACK)
        )
    assert subjects(batches) == ["second"]


def test_renumbered_folder_expires_the_cursor_and_a_new_sync_recovers_everything(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    deliver(dovecot, imap_user, "one", "two")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        cursor = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
        old_ids = [f"{cursor.uidvalidity}:1"]

        dovecot.renumber_folder(imap_user, "INBOX")

        with pytest.raises(CursorExpired):
            list(provider.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))
        with pytest.raises(CursorExpired):
            provider.fetch_raw_messages("INBOX", old_ids)
        assert subjects(list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))) == ["one", "two"]


def test_reading_headers_and_bodies_changes_no_flags(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    original = email_bytes("unread and must stay so")
    unread_uid = dovecot.append(imap_user, "INBOX", original, received_at=NOW - dt.timedelta(hours=2))
    flagged_uid = dovecot.append(
        imap_user,
        "INBOX",
        email_bytes("flagged"),
        received_at=NOW - dt.timedelta(hours=1),
        flags=[b"\\Flagged"],
    )
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        batches = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))
        ids = [message.provider_message_id for batch in batches for message in batch.messages]
        raw = provider.fetch_raw_messages("INBOX", ids)

    assert raw[0].raw.replace(b"\r\n", b"\n") == original.replace(b"\r\n", b"\n")
    assert raw[0].provider_message_id == ids[0]
    assert b"\\Seen" not in dovecot.flags(imap_user, "INBOX", unread_uid)
    assert set(dovecot.flags(imap_user, "INBOX", flagged_uid)) - {b"\\Recent"} == {b"\\Flagged"}


@pytest.mark.parametrize("traced", [False, True], ids=["not-logged", "logged"])
def test_imaplib_traces_bodies_only_when_its_logger_writes_them(
    dovecot: DovecotServer,
    imap_user: ImapUser,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    traced: bool,
) -> None:
    deliver(dovecot, imap_user, "a body worth tracing")
    trace: list[str] = []
    original = IMAPlibLoggerAdapter.debug

    def counting(self: IMAPlibLoggerAdapter, message: object, *args: object, **kwargs: object) -> None:
        trace.append(str(message))
        original(self, message, *args, **kwargs)

    monkeypatch.setattr(IMAPlibLoggerAdapter, "debug", counting)
    caplog.set_level(logging.DEBUG if traced else logging.WARNING, logger="imapclient.imaplib")
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        batches = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))
        ids = [message.provider_message_id for batch in batches for message in batch.messages]
        assert len(provider.fetch_raw_messages("INBOX", ids)) == 1

    body_lines = [line for line in trace if "a body worth tracing" in line]
    assert bool(body_lines) is traced


def test_connection_dropped_mid_fetch_is_transient_and_resuming_loses_nothing(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    expected = ["m1", "m2", "m3", "m4", "m5"]
    deliver(dovecot, imap_user, *expected)
    with cutting_proxy(dovecot.host, dovecot.imap_port) as proxy:
        provider = ImapProvider(plain_account(dovecot, imap_user, port=proxy.port))
        handled: list[HeaderBatch[ImapCursor]] = []
        # The third FETCH response is the first of the second batch: cut in the middle of it.
        proxy.cut_at(b" FETCH (", occurrence=3)
        batches = provider.fetch_new_headers("INBOX", None, since=LOOK_BACK, batch_size=2)
        handled.append(next(batches))
        with pytest.raises(TransientError):
            next(batches)
        assert proxy.cuts == 1
        assert subjects(handled) == ["m1", "m2"]

        # The same provider reconnects, and resumes from the last checkpoint the caller stored.
        resumed = list(provider.fetch_new_headers("INBOX", handled[-1].cursor, since=LOOK_BACK, batch_size=2))
        provider.close()

    assert subjects(handled) + subjects(resumed) == expected


def test_idle_wakes_up_when_mail_arrives(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        assert isinstance(provider, ChangeWaiter)
        cursor = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
        assert provider.wait_for_changes("INBOX", cursor, timeout_seconds=0.3) is False

        arrival = threading.Timer(0.2, deliver, args=(dovecot, imap_user, "while idling"))
        started = time.monotonic()
        arrival.start()
        assert provider.wait_for_changes("INBOX", cursor, timeout_seconds=10) is True
        assert time.monotonic() - started < 5
        arrival.join()
        assert subjects(list(provider.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))) == [
            "while idling"
        ]


def test_waiting_returns_at_once_when_mail_arrived_since_the_cursor(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        cursor = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
        deliver(dovecot, imap_user, "between sync and wait")
        started = time.monotonic()
        assert provider.wait_for_changes("INBOX", cursor, timeout_seconds=10) is True
        assert time.monotonic() - started < 1


def test_servers_without_idle_are_polled(dovecot_without_special_use: DovecotServer) -> None:
    server = dovecot_without_special_use
    user = server.add_user()
    with ImapProvider(plain_account(server, user), poll_interval_seconds=0.1) as provider:
        cursor = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
        assert provider.wait_for_changes("INBOX", cursor, timeout_seconds=0.3) is False
        arrival = threading.Timer(0.2, deliver, args=(server, user, "polled"))
        arrival.start()
        assert provider.wait_for_changes("INBOX", cursor, timeout_seconds=10) is True
        arrival.join()


def test_tls_and_starttls_connect_when_the_certificate_is_trusted(
    dovecot: DovecotServer, imap_user: ImapUser
) -> None:
    for security, port in ((ConnectionSecurity.TLS, dovecot.imaps_port), (ConnectionSecurity.STARTTLS, None)):
        account = ImapAccount(
            addresses=LOOPBACK_ALLOWED,
            host="localhost",
            port=port or dovecot.imap_port,
            username=imap_user.username,
            password=imap_user.password,
            security=security,
            ssl_context=dovecot.tls_context(),
            timeout_seconds=5,
        )
        with ImapProvider(account) as provider:
            assert "INBOX" in {folder.id for folder in provider.list_folders()}


def test_an_unverifiable_certificate_is_refused(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    # The system's trust store does not know the suite's throwaway CA.
    for security, port in ((ConnectionSecurity.TLS, dovecot.imaps_port), (ConnectionSecurity.STARTTLS, None)):
        account = ImapAccount(
            addresses=LOOPBACK_ALLOWED,
            host="localhost",
            port=port or dovecot.imap_port,
            username=imap_user.username,
            password=imap_user.password,
            security=security,
            timeout_seconds=5,
        )
        with ImapProvider(account) as provider, pytest.raises(InsecureConnectionError, match="certificate"):
            provider.list_folders()


def test_starttls_is_required_when_chosen(dovecot_without_special_use: DovecotServer) -> None:
    server = dovecot_without_special_use
    user = server.add_user()
    account = ImapAccount(
        addresses=LOOPBACK_ALLOWED,
        host="localhost",
        port=server.imap_port,
        username=user.username,
        password=user.password,
        security=ConnectionSecurity.STARTTLS,
        timeout_seconds=5,
    )
    # That server offers no TLS: never fall back to plain text.
    with ImapProvider(account) as provider, pytest.raises(InsecureConnectionError, match="STARTTLS"):
        provider.list_folders()


def test_a_wrong_password_is_an_auth_error(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    account = ImapAccount(
        addresses=LOOPBACK_ALLOWED,
        host=dovecot.host,
        port=dovecot.imap_port,
        username=imap_user.username,
        password="not-the-password",
        security=ConnectionSecurity.PLAIN,
    )
    with ImapProvider(account) as provider, pytest.raises(AuthError):
        provider.list_folders()


def xoauth2_account(server: DovecotServer, user: ImapUser, tokens: TokenHolder) -> ImapAccount:
    return ImapAccount(
        addresses=LOOPBACK_ALLOWED,
        host=server.host,
        port=server.imap_port,
        username=user.username,
        token_source=tokens,
        security=ConnectionSecurity.PLAIN,
        timeout_seconds=5,
    )


def test_xoauth2_logs_in_and_refreshes_a_rejected_token_once(
    dovecot: DovecotServer, imap_user: ImapUser, fake_gmail: FakeGmail, google_flow: OAuthFlow
) -> None:
    access_token, refresh_token = fake_gmail.oauth.issue_grant(subject=imap_user.username)
    # Still valid by our clock, but the server has already expired it.
    tokens = TokenHolder(google_flow, OAuthTokens(access_token, refresh_token, NOW + dt.timedelta(hours=1)))
    fake_gmail.oauth.expire_access_tokens()

    with ImapProvider(xoauth2_account(dovecot, imap_user, tokens)) as provider:
        assert "INBOX" in {folder.id for folder in provider.list_folders()}

    assert len(fake_gmail.oauth.token_requests) == 1
    assert tokens.tokens.access_token != access_token


def test_xoauth2_with_a_revoked_grant_is_an_auth_error(
    dovecot: DovecotServer, imap_user: ImapUser, fake_gmail: FakeGmail, google_flow: OAuthFlow
) -> None:
    access_token, refresh_token = fake_gmail.oauth.issue_grant(subject=imap_user.username)
    tokens = TokenHolder(google_flow, OAuthTokens(access_token, refresh_token, NOW + dt.timedelta(hours=1)))
    fake_gmail.oauth.revoke_all_grants()

    with ImapProvider(xoauth2_account(dovecot, imap_user, tokens)) as provider, pytest.raises(AuthError):
        provider.list_folders()


def test_a_missing_folder_is_reported_as_such(dovecot: DovecotServer, imap_user: ImapUser) -> None:
    with ImapProvider(plain_account(dovecot, imap_user)) as provider:
        with pytest.raises(FolderNotFound):
            list(provider.fetch_new_headers("No such folder", None, since=LOOK_BACK))
        # The connection is still usable afterwards.
        assert provider.list_folders()
