"""`touchline demo` run as a new user runs it: what it prints, its IMAP mailboxes connected and synced
in Chromium and by `touchline sync`, and `touchline demo --reset`."""

from __future__ import annotations

import os
import re
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import touchline_environment
from tests.services import free_port
from touchline.config import Settings
from touchline.db import session_scope
from touchline.demo import DEMO_USERS, ensure_demo_workspace, start_demo_sink
from touchline.demo_imap import start_demo_imap
from touchline.kit.crypto import SecretBox

STARTUP_SECONDS = 90


def _environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """Only what a new user has: the embedded defaults in a data directory of the test's own."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("TOUCHLINE_")}
    env.update(
        TOUCHLINE_DATA_DIR=str(data_dir),
        TOUCHLINE_INBOUND_SMTP_ENABLED="false",
        COLUMNS="250",
    )
    env.update(settings)
    return env


def touchline(data_dir: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "touchline.cli", *args],
        env=_environment(data_dir, **settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@dataclass
class RunningDemo:
    base_url: str
    password: str
    imap_port: int
    smtp_port: int
    imap_passwords: dict[str, str]
    output: list[str] = field(default_factory=list)


@contextmanager
def running_demo(data_dir: Path, *args: str) -> Iterator[RunningDemo]:
    """`touchline demo` in a process of its own, until it serves; its output is read as it comes."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "touchline.cli", "demo", "--port", str(port), *args],
        env=_environment(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "Uvicorn running on" in line:
                serving.set()
        serving.set()  # the process ended: the test reads why from the output

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(STARTUP_SECONDS), "".join(lines)
        text = "".join(lines)
        assert process.poll() is None, text
        login = re.search(r"Email (\S+)\s+Password (\S+)", text)
        imap = re.search(
            r"IMAP server 127\.0\.0\.1, port (\d+), security None; SMTP 127\.0\.0\.1, port (\d+)", text
        )
        accounts = dict(re.findall(r"IMAP username (\S+)\s+password (\S+)", text))
        assert login, text
        assert imap, text
        assert accounts, text
        assert login.group(1) == "admin@touchline-demo.example"
        yield RunningDemo(
            f"http://127.0.0.1:{port}",
            login.group(2),
            int(imap.group(1)),
            int(imap.group(2)),
            accounts,
            lines,
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=10)


def test_a_new_user_connects_the_demo_mailbox_and_watches_it_sync(tmp_path: Path, page: Page) -> None:
    data_dir = tmp_path / "touchline"
    with running_demo(data_dir) as demo:
        text = "".join(demo.output)
        assert f"open {data_dir / 'demo-sent'}" in text  # where the sink keeps sent mail
        assert sorted(demo.imap_passwords) == ["admin@touchline-demo.example", "casey@touchline-demo.example"]

        page.goto(f"{demo.base_url}/login")
        page.fill("input[name=email]", "admin@touchline-demo.example")
        page.fill("input[name=password]", demo.password)
        page.click("button[type=submit]")
        page.goto(f"{demo.base_url}/profile/email")

        # No OAuth app is configured: the page says which settings enable Gmail and Outlook sign-in.
        expect(page.locator("#oauth-google-settings")).to_contain_text("TOUCHLINE_GOOGLE_CLIENT_ID")
        expect(page.locator("#oauth-microsoft-settings")).to_contain_text("TOUCHLINE_MICROSOFT_CLIENT_ID")
        # The demo's mailbox, named and filled in; the password is the one the demo printed.
        expect(page.locator("#demo-mailbox")).to_contain_text(f"port {demo.imap_port}")
        admin_password = demo.imap_passwords["admin@touchline-demo.example"]
        expect(page.locator("#demo-imap-password")).to_have_text(admin_password)
        form = page.locator("#connect-imap")
        expect(form.locator("input[name=host]")).to_have_value("127.0.0.1")
        expect(form.locator("input[name=port]")).to_have_value(str(demo.imap_port))
        expect(form.locator("select[name=security]")).to_have_value("plain")
        expect(form.locator("input[name=username]")).to_have_value("admin@touchline-demo.example")
        # What the mailbox sends goes to the demo's sink, which takes the same login.
        expect(form.locator("select[name=smtp_security]")).to_have_value("plain")
        form.locator("input[name=password]").fill(admin_password)
        form.locator("button[type=submit]").click()

        # Connected: pick Archive too, then watch the counts until the sync has finished.
        folders = page.locator("#folders")
        expect(folders).to_contain_text("Archive")
        folders.locator("label", has_text="Archive").locator("input[type=checkbox]").check()
        folders.locator("button[type=submit]").click()
        progress = page.locator("#sync-progress")
        expect(progress.locator("[data-sync-field=state]")).to_have_text("Sync finished.", timeout=60_000)
        # Every message of the three folders was checked: customer mail kept, the rest ignored.
        expect(progress.locator("[data-sync-field=kept]")).to_have_text("14", timeout=60_000)
        expect(progress.locator("[data-sync-field=ignored]")).to_have_text("5", timeout=60_000)
        expect(progress.locator("[data-sync-field=checked]")).to_have_text("19", timeout=60_000)


def test_an_admin_reads_what_the_demo_s_sink_received(tmp_path: Path, page: Page) -> None:
    data_dir = tmp_path / "touchline"
    with running_demo(data_dir) as demo:
        admin = "admin@touchline-demo.example"
        letter = EmailMessage()
        letter["From"], letter["To"] = admin, "nancy.davolio@northwind-traders.example"
        letter["Subject"] = "Renewal <script>alert(1)</script> notes"
        letter.set_content("The terms we agreed on.\n")
        # As a connected demo mailbox sends: SMTP AUTH with its IMAP login, in plain text on loopback.
        with smtplib.SMTP("127.0.0.1", demo.smtp_port, timeout=30) as smtp:
            smtp.login(admin, demo.imap_passwords[admin])
            smtp.send_message(letter)

        page.goto(f"{demo.base_url}/login")
        page.fill("input[name=email]", admin)
        page.fill("input[name=password]", demo.password)
        page.click("button[type=submit]")
        page.get_by_role("link", name="Sent by the demo").click()
        row = page.locator("#demo-sent tbody tr", has_text="Renewal <script>alert(1)</script> notes")
        expect(row).to_contain_text("nancy.davolio@northwind-traders.example")
        row.get_by_role("link").click()
        expect(page.locator("#demo-sent-text")).to_contain_text("The terms we agreed on.")
        expect(page.locator("h1")).to_have_text("Renewal <script>alert(1)</script> notes")

        stranger = page.request.get(f"{demo.base_url}/demo/sent/..%2Ftouchline.db")
        assert stranger.status == 404


def test_touchline_sync_prints_what_it_checked_kept_and_ignored(
    settings: Settings, sessions: sessionmaker[Session], box: SecretBox, tmp_path: Path
) -> None:
    """The demo's mailbox, connected and synced from the command line (no worker takes the sync job
    connecting queues, so the command's counts are the whole sync's)."""
    with session_scope(sessions) as session:
        ensure_demo_workspace(session, box, settings, "demo-password")
    imap = start_demo_imap(tmp_path / "demo", DEMO_USERS)
    sink = start_demo_sink(tmp_path / "demo", {a.username: a.password for a in imap.accounts})
    try:
        casey = imap.accounts[1]
        env = touchline_environment(settings) | {"COLUMNS": "250"}
        connected = subprocess.run(
            [
                sys.executable,
                "-m",
                "touchline.cli",
                "mailbox",
                "connect-imap",
                "--workspace",
                "Demo",
                "--user",
                casey.username,
                "--host",
                imap.host,
                "--port",
                str(imap.port),
                "--security",
                "plain",
                "--username",
                casey.username,
                "--password-stdin",
                "--smtp-port",
                str(sink.port),
                "--smtp-security",
                "plain",
            ],
            env=env,
            input=casey.password + "\n",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert connected.returncode == 0, connected.stderr
        synced = subprocess.run(
            [sys.executable, "-m", "touchline.cli", "sync", "--user", casey.username, "--once"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        sink.stop()
        imap.stop()
    assert synced.returncode == 0, synced.stderr
    # INBOX and Sent are chosen on connecting: 12 customer emails and 5 others in them.
    assert f"{casey.username}: 17 checked, 12 kept, 5 ignored, 0 quarantined" in synced.stdout
    assert "17 checked, 12 kept, 5 ignored" in synced.stderr  # beside the progress bar, as they grow


def test_demo_reset_deletes_the_demo_s_data_and_starts_afresh(tmp_path: Path) -> None:
    data_dir = tmp_path / "touchline"
    with running_demo(data_dir) as first:
        pass
    (data_dir / "demo-sent" / "sent.eml").write_bytes(b"Subject: sent before the reset\r\n\r\nHello\r\n")
    with running_demo(data_dir, "--reset") as again:
        text = "".join(again.output)
    said = text.split("Resetting the demo; deleting:\n", 1)[1].splitlines()
    for name in ("touchline.db", "queue.db", "demo-sent", "demo-imap"):
        assert f"  {data_dir / name}" in said
    assert "demo mail: 14 customer emails kept" in text  # a new database, filled again
    assert again.imap_passwords != first.imap_passwords  # new mailboxes, written anew
    assert not (data_dir / "demo-sent" / "sent.eml").exists()


def test_demo_reset_refuses_a_data_directory_the_demo_did_not_create(tmp_path: Path) -> None:
    data_dir = tmp_path / "touchline"
    assert touchline(data_dir, "db", "upgrade").returncode == 0
    created = touchline(data_dir, "workspace", "create", "Acme", "--internal-domain", "acme.example")
    assert created.returncode == 0, created.stderr
    before = sorted(path.name for path in data_dir.iterdir())

    refused = touchline(data_dir, "demo", "--reset")
    assert refused.returncode == 1
    assert "not resetting" in refused.stderr
    assert "touchline-demo" in refused.stderr
    assert sorted(path.name for path in data_dir.iterdir()) == before
    listed = touchline(data_dir, "workspace", "show", "Acme", "--json")
    assert listed.returncode == 0, listed.stderr


@pytest.mark.parametrize("database", ["postgresql://postgres@127.0.0.1:5432/elsewhere"])
def test_demo_reset_refuses_a_database_of_its_own(tmp_path: Path, database: str) -> None:
    data_dir = tmp_path / "touchline"
    data_dir.mkdir()
    (data_dir / "touchline-demo").write_text("marked\n")
    env = _environment(data_dir) | {"TOUCHLINE_DATABASE_URL": database}
    refused = subprocess.run(
        [sys.executable, "-m", "touchline.cli", "demo", "--reset"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert "TOUCHLINE_DATABASE_URL" in refused.stderr
    assert (data_dir / "touchline-demo").exists()
