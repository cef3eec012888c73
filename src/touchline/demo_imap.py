"""The demo's own IMAP server: a mailbox for each demo user, so that connecting, choosing folders and
syncing can be tried without a real account.

The server is pymap (an asyncio IMAP server) with its maildir backend, run on a thread of its own on a
free loopback port. Its mail lives under the data directory (`demo-imap/`): it is written once, when
that folder is made, from the demo's companies and contacts (conversations sync keeps) and from
unrelated senders on example domains (newsletters, personal mail: sync ignores them), in INBOX, Sent
and Archive. Later starts serve the same folders, so a connected mailbox's cursors stay valid.
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import random
import secrets
import shutil
import socket
import threading
from argparse import Namespace
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from pathlib import Path

from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.maildir import Config as MaildirConfig
from pymap.backend.maildir import Identity, Login
from pymap.concurrent import Subsystem
from pymap.imap import IMAPServer
from pymap.user import Passwords, UserMetadata

from touchline.kit.files import PRIVATE_DIRECTORY_MODE, create_private_file

DEMO_IMAP_HOST = "127.0.0.1"
IMAP_FOLDER = "demo-imap"
"""Under the data directory: the demo users' maildirs, their logins, and `accounts.json`."""
ACCOUNTS_FILE = "accounts.json"
FOLDERS = ("INBOX", "Sent", "Archive")


@dataclass(frozen=True)
class DemoMessage:
    folder: str
    raw: bytes
    received: datetime
    customer: bool
    """Whether sync should keep it (a demo customer takes part), for the tests and the demo's summary."""


@dataclass(frozen=True)
class _Contact:
    address: str
    name: str


# The demo's contacts (demo_data/contacts.csv) and what they write about.
_CUSTOMER_TOPICS = [
    (_Contact("nancy.davolio@northwind-traders.example", "Nancy Davolio"), "Invoice address change"),
    (_Contact("andrew.fuller@northwind-traders.example", "Andrew Fuller"), "Training for the new team"),
    (_Contact("hank.scorpio@globex.example", "Hank Scorpio"), "Feature request: export to PDF"),
    (_Contact("bill.lumbergh@initech.example", "Bill Lumbergh"), "Saturday maintenance window"),
    (_Contact("peter.gibbons@initech.example", "Peter Gibbons"), "Password reset emails arrive late"),
    (_Contact("alice.abernathy@umbrella.example", "Alice Abernathy"), "Audit log retention"),
    (_Contact("ops@eu.northwind-traders.example", "Northwind EU Operations"), "New warehouse contact"),
]
# Mail from outside the demo's customers: sync leaves it alone.
_UNRELATED = [
    ("Weekly Digest <news@weekly-digest.example>", "This week: five tips for calmer inboxes"),
    ("Sam Rivera <sam.rivera@example.com>", "Dinner on Friday?"),
    ("Cloud Billing <billing@hosting.example.net>", "Your receipt for December"),
    ("Events Team <events@conference.example.org>", "Last chance: early-bird tickets"),
]


def demo_email(
    sender: str, to: str, subject: str, body: str, when: datetime, message_id: str, parent: str | None = None
) -> bytes:
    """A plain-text demo message, with CRLF line ends as IMAP and SMTP carry mail: the demo mailboxes'
    mail and the conversations `touchline demo` stores for its workspace."""
    email = EmailMessage()
    email["From"], email["To"], email["Subject"] = sender, to, subject
    email["Date"] = format_datetime(when)
    email["Message-ID"] = message_id
    if parent:
        email["In-Reply-To"] = email["References"] = parent
    email.set_content(body + "\n")
    return email.as_bytes(policy=SMTP)


def demo_mailbox(user: str, user_name: str, now: datetime) -> list[DemoMessage]:
    """One demo user's mail, the same for the same user and `now` (a seeded generator)."""
    return list(_demo_mailbox(user, user_name, now))


def _demo_mailbox(user: str, user_name: str, now: datetime) -> Iterator[DemoMessage]:
    local = user.split("@", maxsplit=1)[0]
    rng = random.Random(f"touchline-demo-{user}")  # noqa: S311 -- demo dates, not secrets
    for index, (contact, subject) in enumerate(_CUSTOMER_TOPICS):
        asked = now - timedelta(days=rng.randint(1, 45), hours=rng.randint(0, 12))
        answered = asked + timedelta(hours=rng.randint(1, 20))
        domain = contact.address.split("@")[1]
        question_id = f"<imap-{local}-{index}-q@{domain}>"
        # The older half has been filed away; the rest is still in the inbox.
        folder = "Archive" if index % 3 == 2 else "INBOX"
        sender = f"{contact.name} <{contact.address}>"
        first_name = user_name.split(maxsplit=1)[0]
        question = f"Hi {first_name},\n\nA quick one about {subject.lower()}: could you have a look?"
        yield DemoMessage(
            folder, demo_email(sender, user, subject, question, asked, question_id), asked, customer=True
        )
        answer = f"Hi {contact.name.split()[0]},\n\nThanks, I am on it and will write back by tomorrow."
        yield DemoMessage(
            "Sent",
            demo_email(
                f"{user_name} <{user}>",
                sender,
                f"Re: {subject}",
                answer,
                answered,
                f"<imap-{local}-{index}-a@{user.split('@')[1]}>",
                question_id,
            ),
            answered,
            customer=True,
        )
    for index, (sender, subject) in enumerate(_UNRELATED):
        when = now - timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 23))
        domain = sender.rsplit("@", 1)[1].rstrip(">")
        body = "Not about any customer: touchline leaves this one in your mailbox."
        yield DemoMessage(
            "INBOX",
            demo_email(sender, user, subject, body, when, f"<imap-{local}-other-{index}@{domain}>"),
            when,
            False,
        )
    personal = now - timedelta(days=rng.randint(1, 10))
    yield DemoMessage(
        "Sent",
        demo_email(
            f"{user_name} <{user}>",
            "Sam Rivera <sam.rivera@example.com>",
            "Re: Dinner on Friday?",
            "Friday works, see you at eight.",
            personal,
            f"<imap-{local}-personal@{user.split('@')[1]}>",
        ),
        personal,
        customer=False,
    )


@dataclass(frozen=True)
class DemoImapAccount:
    username: str
    password: str


@dataclass
class DemoImapServer:
    """pymap serving the demo users' maildirs on loopback, on a thread of its own."""

    folder: Path
    host: str
    port: int
    accounts: list[DemoImapAccount]
    _loop: asyncio.AbstractEventLoop
    _thread: threading.Thread
    _stop: asyncio.Event

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_demo_imap(
    data_dir: Path, users: Sequence[tuple[str, str]], *, now: datetime | None = None
) -> DemoImapServer:
    """Serve `users` (address, name) their demo mailboxes; the mail is written on the first start."""
    folder = data_dir / IMAP_FOLDER
    accounts_file = folder / ACCOUNTS_FILE
    fresh = not accounts_file.exists()
    if fresh and folder.exists():
        shutil.rmtree(folder)  # a first start cut short while writing the mail: write it all again
    folder.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)
    known: dict[str, str] = {} if fresh else json.loads(accounts_file.read_text())
    accounts = [
        DemoImapAccount(address, known.get(address) or secrets.token_urlsafe(9)) for address, _ in users
    ]
    host, port = DEMO_IMAP_HOST, _free_port(DEMO_IMAP_HOST)
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        try:
            loop.run_until_complete(_serve(folder, host, port, accounts, ready, stop))
        except BaseException as error:  # handed to the starting thread
            failure.append(error)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="touchline-demo-imap", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise RuntimeError(f"the demo IMAP server did not start: {failure[0]}") from failure[0]
    server = DemoImapServer(folder, host, port, accounts, loop, thread, stop)
    if fresh:
        try:
            names = dict(users)
            for account in accounts:
                _fill(server, account, names[account.username], now or datetime.now(UTC))
        except BaseException:
            server.stop()
            raise
        # Written last: a start interrupted while filling the mailboxes starts them over next time.
        create_private_file(accounts_file)
        accounts_file.write_text(json.dumps({a.username: a.password for a in accounts}))
    return server


async def _serve(
    folder: Path,
    host: str,
    port: int,
    accounts: Sequence[DemoImapAccount],
    ready: threading.Event,
    stop: asyncio.Event,
) -> None:
    executor = ThreadPoolExecutor(2, thread_name_prefix="touchline-demo-imap-io")
    config = MaildirConfig(
        Namespace(passlib_cfg=None, proxy_protocol=None, inherited_sockets=None),
        base_dir=str(folder),
        layout="++",
        colon=None,
        host=host,
        port=port,
        tls_enabled=False,  # loopback only; the demo's mailbox is connected with security "None"
        invalid_user_sleep=0.0,
        reject_dnsbl=False,
        subsystem=Subsystem.for_executor(executor),
    )
    config.apply_context()
    login = Login(config)
    passwords = Passwords(config)
    for account in accounts:
        identity = Identity(config, login.tokens, account.username, None, frozenset())
        hashed = await passwords.hash_password(account.password)
        await identity.set(UserMetadata(config, account.username, password=hashed))
    async with AsyncExitStack() as stack:
        stack.callback(executor.shutdown, wait=False)
        handler = ProxyProtocolReader(config.proxy_protocol).get_callback(IMAPServer(login, config))
        server = await asyncio.start_server(handler, host=host, port=port)
        await stack.enter_async_context(server)
        ready.set()
        await stop.wait()
        server.close()


def _fill(server: DemoImapServer, account: DemoImapAccount, name: str, now: datetime) -> None:
    """Write a user's mail through the server itself, as any mail client would (CREATE, APPEND)."""
    client = imaplib.IMAP4(server.host, server.port, timeout=30)
    try:
        client.login(account.username, account.password)
        for folder in FOLDERS:
            if folder != "INBOX":
                client.create(folder)
        for message in sorted(demo_mailbox(account.username, name, now), key=lambda m: m.received):
            client.append(
                message.folder, r"(\Seen)", imaplib.Time2Internaldate(message.received), message.raw
            )
        client.logout()
    finally:
        if client.state != "LOGOUT":
            client.shutdown()
