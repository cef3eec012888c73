"""Folders with nothing new are left unopened: the IMAP provider's change check against a real Dovecot,
and what a sync does with its answer (no EXAMINE, no transaction of their own)."""

from __future__ import annotations

import datetime as dt
import imaplib
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from imapclient import IMAPClient
from sqlalchemy import Engine, event, select

from tests.cli_probe import loaded_among, run_probed
from tests.conftest import touchline_environment
from tests.services.dovecot import LOOPBACK_ALLOWED, DovecotServer, ImapUser
from tests.sync.conftest import SyncWorld, message
from touchline.db import session_scope
from touchline.mailboxes.connect import imap_account
from touchline.mailboxes.providers.base import ChangeCheck, InsecureConnectionError
from touchline.mailboxes.providers.imap import (
    ConnectionSecurity,
    ImapAccount,
    ImapCursor,
    ImapProvider,
    _default_ssl_context,
)
from touchline.models import MailboxFolder

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC)
LOOK_BACK = NOW - dt.timedelta(days=90)
FOLDERS = ("INBOX", "Projects", 'Kunden/Ä "Ö" \\ x', "2024", "a*b")


@dataclass
class Command:
    name: str
    args: tuple[Any, ...]

    def mentions(self, text: str) -> bool:
        return any(
            text.encode() in (arg if isinstance(arg, bytes) else str(arg).encode()) for arg in self.args
        )


@pytest.fixture
def imap_commands(monkeypatch: pytest.MonkeyPatch) -> list[Command]:
    """Every command imaplib sends for imapclient (LOGIN, LIST, EXAMINE, STATUS, ENABLE, UID ...)."""
    sent: list[Command] = []
    original = imaplib.IMAP4._command  # type: ignore[attr-defined]

    def spy(self: imaplib.IMAP4, name: str, *args: Any) -> Any:
        sent.append(Command(name, args))
        return original(self, name, *args)

    monkeypatch.setattr(imaplib.IMAP4, "_command", spy)
    return sent


def sent_after_greeting(commands: list[Command]) -> list[str]:
    """The command names, without the CAPABILITY imaplib asks for on every connection."""
    return [command.name for command in commands if command.name != "CAPABILITY"]


def examined(commands: list[Command]) -> list[Command]:
    return [command for command in commands if command.name == "EXAMINE"]


def named(commands: list[Command], name: str) -> list[Command]:
    return [command for command in commands if command.name == name]


def account(server: DovecotServer, user: ImapUser) -> Any:
    connection = {
        "host": server.host,
        "port": server.imap_port,
        "security": "plain",
        "username": user.username,
    }
    return imap_account(connection, user.password, LOOPBACK_ALLOWED)


def fresh_cursors(server: DovecotServer, user: ImapUser, folders: tuple[str, ...]) -> dict[str, ImapCursor]:
    with ImapProvider(account(server, user)) as provider:
        return {
            folder: list(provider.fetch_new_headers(folder, None, since=LOOK_BACK))[-1].cursor
            for folder in folders
        }


@pytest.fixture
def mailbox_user(dovecot: DovecotServer) -> ImapUser:
    user = dovecot.add_user()
    for folder in FOLDERS[1:]:
        dovecot.create_folder(user, folder)
    for folder in FOLDERS:
        dovecot.append(user, folder, message(f"Hello {folder}"), received_at=NOW)
    return user


# --- the provider --------------------------------------------------------------------------------


def test_the_imap_provider_offers_the_check() -> None:
    assert issubclass(ImapProvider, ChangeCheck)


def test_current_cursors_are_unchanged_in_one_list_status_command(
    dovecot: DovecotServer, mailbox_user: ImapUser, imap_commands: list[Command]
) -> None:
    cursors = fresh_cursors(dovecot, mailbox_user, FOLDERS)
    imap_commands.clear()
    with ImapProvider(account(dovecot, mailbox_user)) as provider:
        assert provider.unchanged_folders(cursors) == set(FOLDERS)
    assert sent_after_greeting(imap_commands) == ["LOGIN", "LIST", "LOGOUT"]
    assert named(imap_commands, "LIST")[0].mentions("RETURN")
    assert all(cursor.highest_modseq is not None for cursor in cursors.values())


def hide_capabilities(monkeypatch: pytest.MonkeyPatch, *hidden: str) -> None:
    offered = IMAPClient.has_capability

    def has_capability(self: IMAPClient, capability: str) -> bool:
        return capability.upper() not in hidden and bool(offered(self, capability))

    monkeypatch.setattr(IMAPClient, "has_capability", has_capability)


@pytest.mark.parametrize(
    "hidden",
    [(), ("LIST-EXTENDED",), ("LIST-STATUS",)],
    ids=["list-status-by-name", "list-status-of-all", "status-per-folder"],
)
def test_new_mail_flags_renumbering_and_half_done_passes_count_as_changed(
    dovecot: DovecotServer,
    mailbox_user: ImapUser,
    imap_commands: list[Command],
    monkeypatch: pytest.MonkeyPatch,
    hidden: tuple[str, ...],
) -> None:
    hide_capabilities(monkeypatch, *hidden)
    cursors = fresh_cursors(dovecot, mailbox_user, FOLDERS)
    dovecot.append(mailbox_user, "Projects", message("New in Projects"), received_at=NOW)
    with dovecot.client(mailbox_user) as client:
        client.select_folder("2024")
        client.add_flags([cursors["2024"].last_uid], [b"\\Flagged"])
    dovecot.renumber_folder(mailbox_user, "a*b")
    inbox, renumbered = cursors["INBOX"], cursors["a*b"]
    half_done = {
        **cursors,
        "INBOX": ImapCursor(inbox.uidvalidity, inbox.last_uid - 1, inbox.highest_modseq),
        # Renumbering moves HIGHESTMODSEQ too; without one in the cursor, UIDVALIDITY alone must tell.
        "a*b": ImapCursor(renumbered.uidvalidity, renumbered.last_uid),
    }
    imap_commands.clear()
    with ImapProvider(account(dovecot, mailbox_user)) as provider:
        assert provider.unchanged_folders(half_done) == {'Kunden/Ä "Ö" \\ x'}
        # Without HIGHESTMODSEQ in the cursor, a flag change is no news.
        flagged = cursors["2024"]
        assert provider.unchanged_folders({"2024": ImapCursor(flagged.uidvalidity, flagged.last_uid)}) == {
            "2024"
        }
    assert examined(imap_commands) == []
    lists, statuses = named(imap_commands, "LIST"), named(imap_commands, "STATUS")
    if "LIST-STATUS" in hidden:
        assert (len(lists), len(statuses)) == (0, len(FOLDERS) + 1)
    else:
        assert (len(lists), len(statuses)) == (2, 0)
        assert all(command.mentions('"*"') == ("LIST-EXTENDED" in hidden) for command in lists)


def test_unknown_folders_and_the_open_folder_count_as_changed(
    dovecot: DovecotServer, mailbox_user: ImapUser
) -> None:
    cursors = fresh_cursors(dovecot, mailbox_user, ("INBOX", "Projects"))
    with ImapProvider(account(dovecot, mailbox_user)) as provider:
        gone = {**cursors, "Deleted meanwhile": ImapCursor(1, 1, 1)}
        assert provider.unchanged_folders(gone) == {"INBOX", "Projects"}
        list(provider.fetch_new_headers("Projects", cursors["Projects"], since=LOOK_BACK))
        assert provider.unchanged_folders(cursors) == {"INBOX"}
        assert provider.unchanged_folders({}) == set()


def test_tls_connections_share_one_verifying_context(
    dovecot: DovecotServer, mailbox_user: ImapUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        created.append(create(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(ssl, "create_default_context", counting)
    _default_ssl_context.cache_clear()
    try:
        for _ in range(2):
            tls = ImapAccount(
                host=dovecot.host,
                port=dovecot.imaps_port,
                username=mailbox_user.username,
                password=mailbox_user.password,
                security=ConnectionSecurity.TLS,
            )
            # The suite's throwaway CA is not in the system's bundle, so the context refuses it.
            with ImapProvider(tls) as provider, pytest.raises(InsecureConnectionError):
                provider.unchanged_folders({"INBOX": ImapCursor(1, 1)})
    finally:
        _default_ssl_context.cache_clear()
    assert len(created) == 1


# --- the sync ------------------------------------------------------------------------------------


@dataclass
class Transactions:
    commits: int = 0
    statements: list[str] | None = None


@pytest.fixture
def transactions(engine: Engine) -> Iterator[Transactions]:
    seen = Transactions(statements=[])

    def on_commit(_connection: Any) -> None:
        seen.commits += 1

    def on_execute(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        assert seen.statements is not None
        seen.statements.append(statement)

    event.listen(engine, "commit", on_commit)
    event.listen(engine, "before_cursor_execute", on_execute)
    yield seen
    event.remove(engine, "commit", on_commit)
    event.remove(engine, "before_cursor_execute", on_execute)


def reset(commands: list[Command], transactions: Transactions) -> None:
    commands.clear()
    transactions.commits = 0
    transactions.statements = []


def examined_folders(commands: list[Command]) -> set[str]:
    names = set()
    for command in examined(commands):
        name = command.args[0]
        names.add((name if isinstance(name, str) else name.decode()).strip('"'))
    return names


def connect_all(world: SyncWorld) -> tuple[uuid.UUID, ImapUser]:
    user_id, imap = world.add_user("sam")
    world.dovecot.create_folder(imap, "Projects")
    world.dovecot.create_folder(imap, "Support")
    world.dovecot.append(imap, "INBOX", message("Hello"), received_at=NOW)
    world.dovecot.append(imap, "Projects", message("Plans"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    world.select(mailbox_id, "INBOX", "Projects")
    report = world.sync(mailbox_id)
    assert report.error is None
    return mailbox_id, imap


def folder_rows(world: SyncWorld, mailbox_id: uuid.UUID) -> dict[str, MailboxFolder]:
    with session_scope(world.sessions) as session:
        rows = session.scalars(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id))
        return {row.name: row for row in rows}


def test_a_sync_with_nothing_new_opens_no_folder_in_two_transactions(
    world: SyncWorld, imap_commands: list[Command], transactions: Transactions
) -> None:
    mailbox_id, _ = connect_all(world)
    before = folder_rows(world, mailbox_id)
    reset(imap_commands, transactions)

    report = world.sync(mailbox_id)

    assert report.error is None
    assert (report.folders, report.seen, report.per_folder) == (2, 0, {"INBOX": 0, "Projects": 0})
    assert sent_after_greeting(imap_commands) == ["LOGIN", "LIST", "LOGOUT"]
    assert transactions.commits == 2
    assert transactions.statements is not None
    folder_writes = [
        s for s in transactions.statements if s.lstrip().upper().startswith("UPDATE MAILBOX_FOLDERS")
    ]
    assert len(folder_writes) == 1
    after = folder_rows(world, mailbox_id)
    for name in ("INBOX", "Projects"):
        assert after[name].cursor == before[name].cursor
        previous = before[name].last_synced_at
        assert previous is not None
        assert after[name].last_synced_at is not None
        assert after[name].last_synced_at > previous
    assert after["Support"].last_synced_at is None


def test_only_the_folder_with_new_mail_is_opened(
    world: SyncWorld, imap_commands: list[Command], transactions: Transactions
) -> None:
    mailbox_id, imap = connect_all(world)
    world.dovecot.append(imap, "Projects", message("Project news"), received_at=NOW)
    reset(imap_commands, transactions)

    report = world.sync(mailbox_id)

    assert report.error is None
    assert report.seen == 1
    assert examined_folders(imap_commands) == {"Projects"}
    assert world.subjects() == ["Hello", "Plans", "Project news"]
    reset(imap_commands, transactions)
    assert world.sync(mailbox_id).seen == 0
    assert examined(imap_commands) == []


def test_a_flag_change_is_synced_once_then_skipped(world: SyncWorld, imap_commands: list[Command]) -> None:
    mailbox_id, imap = connect_all(world)
    cursor_before = folder_rows(world, mailbox_id)["INBOX"].cursor
    assert cursor_before is not None
    with world.dovecot.client(imap) as client:
        client.select_folder("INBOX")
        client.add_flags([cursor_before["last_uid"]], [b"\\Seen"])
    imap_commands.clear()

    report = world.sync(mailbox_id)

    assert (report.error, report.seen) == (None, 0)
    assert examined_folders(imap_commands) == {"INBOX"}
    cursor_after = folder_rows(world, mailbox_id)["INBOX"].cursor
    assert cursor_after is not None
    assert cursor_after["highest_modseq"] > cursor_before["highest_modseq"]
    imap_commands.clear()
    world.sync(mailbox_id)
    assert examined(imap_commands) == []


def test_a_renumbered_folder_is_opened_and_remapped(world: SyncWorld, imap_commands: list[Command]) -> None:
    mailbox_id, imap = connect_all(world)
    with session_scope(world.sessions) as session:
        # As stored from a server without CONDSTORE: renumbering moves HIGHESTMODSEQ too, and only
        # UIDVALIDITY is left to tell.
        projects = session.scalars(
            select(MailboxFolder).where(
                MailboxFolder.mailbox_id == mailbox_id, MailboxFolder.name == "Projects"
            )
        ).one()
        assert projects.cursor is not None
        projects.cursor = {**projects.cursor, "highest_modseq": None}
    world.dovecot.renumber_folder(imap, "Projects")  # the same messages and UIDNEXT, renumbered
    imap_commands.clear()

    report = world.sync(mailbox_id)

    assert report.error is None
    assert examined_folders(imap_commands) == {"Projects"}
    assert report.seen == 1  # read again from scratch, and recognised
    assert world.subjects() == ["Hello", "Plans"]
    cursor = folder_rows(world, mailbox_id)["Projects"].cursor
    assert cursor is not None
    assert cursor["uidvalidity"] == world.dovecot.uidvalidity(imap, "Projects")


def test_a_newly_selected_folder_is_opened_while_the_others_are_skipped(
    world: SyncWorld, imap_commands: list[Command]
) -> None:
    mailbox_id, imap = connect_all(world)
    world.dovecot.append(imap, "Support", message("Support ticket"), received_at=NOW)
    world.select(mailbox_id, "INBOX", "Projects", "Support")
    imap_commands.clear()

    report = world.sync(mailbox_id)

    assert report.error is None
    assert examined_folders(imap_commands) == {"Support"}
    assert world.subjects() == ["Hello", "Plans", "Support ticket"]
    assert folder_rows(world, mailbox_id)["Support"].cursor is not None


# --- through the command ---------------------------------------------------------------------------

# What only a sync that finds new mail needs: fetching and storing, reading mail, the job queue's
# Huey (no job is sent), the features whose jobs storing sends and their tables, and the public
# suffix list.
LOADED_ONLY_FOR_NEW_MAIL = (
    "touchline.inbound.fetch.folders",
    "touchline.inbound.store",
    "touchline.inbound.parse",
    "touchline.inbound.reading",
    "touchline.outbound",
    "touchline.models.outbound",
    "touchline.models.engagement",
    "touchline.models.sequences",
    "touchline.models.templates",
    "huey",
    "tldextract",
)
LOADED_ONLY_FOR_API_MAILBOXES = (
    "httpx",
    "touchline.mailboxes.oauth",
    "touchline.mailboxes.providers.gmail",
    "touchline.mailboxes.providers.graph",
)


def test_a_sync_through_the_command_that_finds_nothing_new_loads_only_what_it_needs(
    world: SyncWorld, dovecot: DovecotServer
) -> None:
    user_id, imap = world.add_user("probe")
    for folder in FOLDERS[1:3]:
        dovecot.create_folder(imap, folder)
        dovecot.append(imap, folder, message(f"Hello {folder}"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)
    assert world.sync(mailbox_id).error is None
    output, code, modules = run_probed("sync", "--once", env=touchline_environment(world.settings))
    assert code in (None, 0)
    assert ": 0 checked, 0 kept" in output
    assert loaded_among(modules, LOADED_ONLY_FOR_NEW_MAIL) == []
    assert loaded_among(modules, LOADED_ONLY_FOR_API_MAILBOXES) == []  # an IMAP mailbox only
    assert "touchline.inbound.fetch.service" in modules  # the probe saw the sync itself
