"""Initial and incremental mailbox sync against a real Dovecot, beside mbsync in the same run.

    .venv/bin/python -m bench.sync.run [--messages 10000 20000] [--database sqlite|postgresql|both]
        [--runs 15] [--cli-runs 7] [--mbsync-repeats 3] [--disk-repeats 1] [--tmpfs /dev/shm]
        [--readers N] [--write-docs] [--stages | --profile DIR]

One private Dovecot (tests/services/dovecot.py) serves the whole run. For each mailbox size of
`--messages`, in turn, the run does all of this, in this order:
1. fills a Dovecot user of the size's own with the deterministic mailbox of `generate.py` (10
   folders, about 30% customer mail) through IMAP MULTIAPPEND; the generation time is printed but is
   no benchmark figure;
2. prepares touchline: a fresh database (SQLite in a temporary data folder by default; PostgreSQL
   in a database created for the size and dropped after it), a workspace whose internal domain is
   the team's, the generator's companies and a few known contacts, a 180-day look-back, the mailbox
   connected and all 10 folders selected;
3. warms the server, untimed: one mbsync mirror into tmpfs (every body read once), then touchline's
   own IMAP provider reads every folder the way a sync does (SEARCH, header batches) and fetches
   every body. After this both tools find the same warm Dovecot indexes and page cache, and neither
   is timed against a server that the other one warmed for it;
4. times, alternating: mbsync, touchline (on each database), mbsync. At each mbsync point mbsync
   mirrors every folder (`Patterns *`, `Create Near`, `FSync no`) `--mbsync-repeats` times (3) into
   a fresh maildir on tmpfs (`--tmpfs`, /dev/shm by default; the run stops when that is no tmpfs or
   has no room for the mailbox), then `--disk-repeats` times (1) into a fresh maildir on disk; each
   run checks that mbsync copied every message. The reference is mbsync's fastest tmpfs mirror of
   the size in the whole run: without a disk under it mbsync's time is its own work and Dovecot's,
   where on disk the kernel's writeback of the maildir made runs of the same command take 3.5 to
   16 s. touchline's time divided by it is the ratio the goal is about; beside it, touchline divided
   by the mean of the fastest tmpfs mirrors just before and after it (the reference under the load
   of the moment), and the on-disk mirrors, for context only. touchline's time is the
   `sync_mailbox()` call in a fresh worker process (measure.py; the interpreter's start-up is not
   part of a sync), and the run checks that it saw every message, kept exactly the customer mail,
   stored each once and quarantined nothing;
5. in the same touchline process: no-change incremental syncs of the 10 folders (`--runs`, median,
   in ms: the sync itself), and the process's peak RSS (VmHWM);
6. after the timed runs, on each database: `touchline sync --once` as an operator runs it, a process
   of its own (`python -m touchline.cli`, the size's data folder, database and key in its
   environment), `--cli-runs` times; each is a no-change sync of the 10 folders (the run checks
   that it checked no message), and the median wall time counts: interpreter start-up, imports,
   settings, the database and IMAP connections and the sync.

The subprocesses import touchline from this checkout's `src` (before any installed copy).
Goals: initial sync touchline/mbsync's fastest tmpfs mirror <= 1.5; no-change sync through the CLI
<= 0.4 s, of which the sync itself (step 5) < 50 ms.
`--write-docs` replaces the `## sync` section of docs/benchmarks.md with this run's figures.
`--stages` prints where touchline's time goes (wall clock per pipeline stage); `--profile DIR`
writes cProfile files. Both slow touchline down, so they cannot be combined with `--write-docs`.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from bench.sync.procfs import status_mb

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
INITIAL_GOAL = 1.5
INCREMENTAL_GOAL_MS = 50.0
CLI_GOAL_SECONDS = 0.4
APPEND_BATCH_BYTES = 8 * 1024 * 1024
APPEND_BATCH_MESSAGES = 250
POSTGRES_ADMIN_URL = os.environ.get(
    "TOUCHLINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def fail(message: str) -> NoReturn:
    print(f"bench/sync: {message}", file=sys.stderr)
    raise SystemExit(2)


def require_tools() -> Path:
    """mbsync's path; stops with a clear message when Dovecot or mbsync is missing."""
    from tests.services.dovecot import dovecot_binary

    if dovecot_binary() is None:
        fail("Dovecot is not installed: install the dovecot-imapd package (Debian) to run this benchmark")
    mbsync = shutil.which("mbsync")
    if mbsync is None:
        fail("mbsync is not installed: install the isync package (Debian) to run this benchmark")
    return Path(mbsync)


# --- the server and its mail -----------------------------------------------------------------------


@contextmanager
def dovecot() -> Iterator[Any]:
    import pytest
    from tests.services.dovecot import start_dovecot

    try:
        server = start_dovecot(special_use=True, tls=False)
    except (pytest.fail.Exception, pytest.skip.Exception) as error:
        fail(f"Dovecot did not start: {error}")
    try:
        yield server
    finally:
        server.stop()


def fill_mailbox(server: Any, user: Any, mailbox: Any) -> tuple[float, int]:
    """Append every planned message in arrival order, batched into MULTIAPPEND commands."""
    from bench.sync.generate import CUSTOM_FOLDERS, render

    started = time.perf_counter()
    total_bytes = 0
    with server.client(user) as client:
        client.select_folder("INBOX")  # logging in and opening INBOX creates the special-use folders
        client.close_folder()
        for folder in CUSTOM_FOLDERS:
            client.create_folder(folder)
        for folder, messages in mailbox.by_folder().items():
            batch: list[dict[str, Any]] = []
            size = 0
            for message in messages:
                raw = render(message)
                batch.append({"msg": raw, "flags": message.flags, "date": message.received_at})
                size += len(raw)
                if size >= APPEND_BATCH_BYTES or len(batch) >= APPEND_BATCH_MESSAGES:
                    client.multiappend(folder, batch)
                    total_bytes += size
                    batch, size = [], 0
            if batch:
                client.multiappend(folder, batch)
                total_bytes += size
    return time.perf_counter() - started, total_bytes


def folder_counts(server: Any, user: Any) -> dict[str, int]:
    with server.client(user) as client:
        return {
            str(name): int(client.folder_status(name, [b"MESSAGES"])[b"MESSAGES"])
            for _, _, name in client.list_folders()
        }


# --- touchline -------------------------------------------------------------------------------------


@dataclass
class Database:
    kind: str
    url: str


@contextmanager
def database(kind: str, scratch: Path) -> Iterator[Database]:
    if kind == "sqlite":
        data_dir = scratch / "data-sqlite"
        data_dir.mkdir(parents=True)
        yield Database(kind, f"sqlite:///{data_dir / 'touchline.db'}")
        return
    import psycopg

    name = f"touchline_bench_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {error}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(kind, f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}")
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def prepare_touchline(
    url: str, data_dir: Path, secret_key: str, server: Any, user: Any, world: Any
) -> uuid.UUID:
    """A migrated database with the workspace, directory and connected mailbox; returns the mailbox id."""
    from touchline.config import Settings
    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.jobs import declare
    from touchline.kit.crypto import SecretBox
    from touchline.mailboxes import service as mailboxes
    from touchline.mailboxes.connect import imap_account, mail_host_policy
    from touchline.mailboxes.providers.imap import ImapProvider
    from touchline.schema import upgrade
    from touchline.worker import configure_queue
    from touchline.workspace import service
    from touchline.workspace.permissions import Actor

    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(url)
    settings = Settings(
        data_dir=data_dir,
        database_url=url,
        secret_key=secret_key,
        in_process_worker=False,
        allow_private_mail_hosts=True,  # the bench's Dovecot listens on loopback
    )
    queue = configure_queue(settings, declare=declare)  # connecting a mailbox enqueues its first sync
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    box = SecretBox([secret_key])
    connection = {
        "host": server.host,
        "port": server.imap_port,
        "security": "plain",
        "username": user.username,
    }
    try:
        with session_scope(sessions) as session:
            workspace = service.create_workspace(
                session,
                box,
                "Bench",
                internal_domains=[world.internal_domain],
                inbound_domain="log.bench.example",
            )
            actor = Actor.operator(workspace.id)
            service.update_settings(session, actor, service.SettingsChange(lookback_days=180))
            owner = service.add_user(session, actor, world.owner.address, name=world.owner.name)
            for colleague in world.colleagues:
                service.add_user(session, actor, colleague.address, name=colleague.name)
            company_ids = [
                service.create_company(session, actor, company.name, domains=company.domains).id
                for company in world.companies
            ]
            for person, company_index in world.known_contacts:
                service.create_contact(
                    session, actor, person.address, name=person.name, company_id=company_ids[company_index]
                )
            owner_id, workspace_id = owner.id, workspace.id
        with ImapProvider(imap_account(connection, user.password, mail_host_policy(settings))) as provider:
            folders = provider.list_folders()
        with session_scope(sessions) as session:
            actor = Actor.operator(workspace_id)
            mailbox = mailboxes.connect_mailbox(
                session,
                actor,
                box,
                user_id=owner_id,
                provider="imap",
                address=world.owner.address,
                connection=connection,
                credentials={"password": user.password},
                folders=folders,
            )
            mailboxes.select_folders(session, actor, mailbox.id, {folder.id for folder in mailbox.folders})
            return mailbox.id
    finally:
        engine.dispose()
        queue.close()


def warm_touchline_paths(server: Any, user: Any) -> None:
    """Read every folder as touchline's provider does (SEARCH, header batches), then every body."""
    from touchline.inbound.fetch.folders import BATCH_SIZE
    from touchline.kit.net import AddressPolicy
    from touchline.mailboxes.connect import imap_account
    from touchline.mailboxes.providers.imap import ImapProvider

    connection = {
        "host": server.host,
        "port": server.imap_port,
        "security": "plain",
        "username": user.username,
    }
    since = datetime.now(UTC) - timedelta(days=181)
    with ImapProvider(imap_account(connection, user.password, AddressPolicy(allow_private=True))) as provider:
        for folder in provider.list_folders():
            ids: list[str] = []
            for batch in provider.fetch_new_headers(folder.id, None, since=since, batch_size=BATCH_SIZE):
                ids.extend(message.provider_message_id for message in batch.messages)
            for start in range(0, len(ids), 500):
                provider.fetch_raw_messages(folder.id, ids[start : start + 500])


@dataclass
class ProcessRun:
    seconds: float
    user_seconds: float
    system_seconds: float  # the kernel's work for the process: for mbsync, mostly writing its maildir
    peak_rss_mb: float
    stdout: str

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds


def run_process(
    command: list[str], *, env: dict[str, str] | None = None, sample_rss: bool = True
) -> ProcessRun:
    """Run to the end: wall time, CPU time (os.wait4) and peak RSS, sampled every 10 ms.

    Without `sample_rss` the wait blocks, so that a short process's time is not rounded up to the
    next sample, and the peak RSS is the kernel's for the process and the children it waited for."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG if sample_rss else 0)
            if pid:
                break
            peak = max(peak, status_mb("VmHWM", child.pid))
            time.sleep(0.01)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if not sample_rss:
            peak = usage.ru_maxrss / 1024  # kB on Linux
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if child.returncode != 0:
        fail(f"{command[0]} failed ({child.returncode}):\n{stderr[-4000:]}\n{stdout[-2000:]}")
    return ProcessRun(seconds, usage.ru_utime, usage.ru_stime, peak, stdout)


def filesystem_type(path: Path) -> str:
    """The type of the file system `path` is on ('tmpfs', 'ext4', ...), from /proc/mounts."""
    resolved = path.resolve()
    best, kind = Path("/"), "unknown"
    with suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = Path(fields[1].replace("\\040", " "))
            if resolved.is_relative_to(mount) and len(mount.parts) >= len(best.parts):
                best, kind = mount, fields[2]
    return kind


def require_tmpfs(root: Path) -> None:
    """Stops unless `root` is a folder on a tmpfs (checked before any mail is generated)."""
    if not root.is_dir():
        fail(f"{root} (--tmpfs) does not exist: mbsync's reference mirror needs a tmpfs folder")
    kind = filesystem_type(root)
    if kind != "tmpfs":
        fail(
            f"{root} (--tmpfs) is on {kind}, not tmpfs: mbsync's reference mirror needs one"
            " (mount one, e.g. `mount -t tmpfs -o size=4g tmpfs DIR`, and pass --tmpfs DIR)"
        )


def tmpfs_folder(root: Path, needed_bytes: int) -> Path:
    """A fresh folder under `root` (a tmpfs) for mbsync's reference mirrors; stops unless it has room
    for a mirror of the mailbox."""
    free = shutil.disk_usage(root).free
    if free < needed_bytes:
        fail(
            f"{root} (tmpfs) has {free / 1e9:.1f} GB free; a mirror of this mailbox needs"
            f" {needed_bytes / 1e9:.1f} GB"
        )
    return Path(tempfile.mkdtemp(prefix="touchline-bench-sync-", dir=root))


def mbsync_config(scratch: Path, server: Any, user: Any, target: Path) -> Path:
    config = scratch / f"mbsyncrc-{target.name}"
    target.mkdir(parents=True)
    config.write_text(
        f"""FSync no

IMAPAccount bench
Host {server.host}
Port {server.imap_port}
User {user.username}
Pass {user.password}
SSLType None
AuthMechs LOGIN

IMAPStore bench-far
Account bench

MaildirStore bench-near
Path {target}/
Inbox {target}/INBOX
SubFolders Verbatim

Channel bench
Far :bench-far:
Near :bench-near:
Patterns *
Create Near
Sync Pull
SyncState *
"""
    )
    config.chmod(0o600)
    return config


def run_mbsync(
    mbsync: Path, scratch: Path, mirrors: Path, server: Any, user: Any, label: str, expected: int
) -> ProcessRun:
    """One mirror of the whole mailbox into a fresh maildir under `mirrors` (the config in `scratch`)."""
    target = mirrors / f"mirror-{label}"
    config = mbsync_config(scratch, server, user, target)
    # The previous mirror's gigabyte of writes must not still be draining to disk while this one runs.
    os.sync()
    run = run_process([str(mbsync), "-c", str(config), "-a", "-q"])
    copied = sum(1 for path in target.rglob("*") if path.parent.name in {"cur", "new"} and path.is_file())
    if copied != expected:
        fail(f"mbsync ({label}) copied {copied} messages, not {expected}")
    shutil.rmtree(target)
    return run


def python_path() -> str:
    """This checkout's touchline and bench before any installed copy of touchline."""
    return os.pathsep.join([str(REPO / "src"), str(REPO)])


def run_touchline(
    url: str,
    data_dir: Path,
    mailbox_id: uuid.UUID,
    secret_key: str,
    runs: int,
    kind: str,
    *,
    profile: Path | None,
    stages: bool,
    readers: int | None,
) -> tuple[ProcessRun, dict[str, Any]]:
    command = [sys.executable, "-m", "bench.sync.measure", url, str(mailbox_id), "--runs", str(runs)]
    if readers is not None:
        command += ["--readers", str(readers)]
    os.sync()  # as for mbsync: no earlier writes still draining to disk
    if stages:
        command.append("--stages")
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        command += ["--profile", str(profile / f"initial-{kind}.prof")]
        command += ["--profile-incremental", str(profile / f"incremental-{kind}.prof")]
    env = {
        **os.environ,
        "TOUCHLINE_DATA_DIR": str(data_dir),  # its queue, as the CLI's below
        "TOUCHLINE_DATABASE_URL": url,
        "TOUCHLINE_SECRET_KEY": secret_key,
        "TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS": "true",  # the bench's Dovecot listens on loopback
        "PYTHONPATH": python_path(),
    }
    run = run_process(command, env=env)
    return run, json.loads(run.stdout.strip().splitlines()[-1])


def cli_syncs(url: str, data_dir: Path, secret_key: str, runs: int, readers: int | None) -> list[ProcessRun]:
    """`touchline sync --once` as an operator runs it (tests/conftest.py's `run_touchline`), `runs`
    times on a mailbox already synced: each a no-change sync; stops if one checked any message."""
    env = {
        **os.environ,
        "TOUCHLINE_DATA_DIR": str(data_dir),
        "TOUCHLINE_DATABASE_URL": url,
        "TOUCHLINE_SECRET_KEY": secret_key,
        "TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS": "true",  # the bench's Dovecot listens on loopback
        "PYTHONPATH": python_path(),
        "COLUMNS": "200",  # its summary line unwrapped
    }
    if readers is not None:
        env["TOUCHLINE_SYNC_READER_PROCESSES"] = str(readers)
    # An installed touchline carries its modules' bytecode (pip compiles it as it installs); a
    # checkout run with PYTHONDONTWRITEBYTECODE set would compile every module again in each run.
    compileall.compile_dir(REPO / "src" / "touchline", quiet=1)
    command = [sys.executable, "-m", "touchline.cli", "sync", "--once"]
    done = []
    for _ in range(runs):
        os.sync()
        run = run_process(command, env=env, sample_rss=False)
        checked = re.findall(r": (\d+) checked, ", run.stdout)
        if checked != ["0"]:
            fail(f"`touchline sync --once` was to check no message, and printed:\n{run.stdout}")
        done.append(run)
    return done


# --- reporting -------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "unknown RAM"
    with suppress(OSError, StopIteration):
        total_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{total_kb / 1024 / 1024:.1f} GiB RAM"
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {ram}, Python {platform.python_version()}"


def versions(mbsync: Path) -> str:
    from tests.services.dovecot import dovecot_binary

    def first_line(command: list[str]) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        output = (result.stdout or result.stderr).strip()
        return output.splitlines()[0] if output else "?"

    dovecot_version = first_line([str(dovecot_binary()), "--version"])
    return f"Dovecot {dovecot_version}, {first_line([str(mbsync), '--version'])}"


def verdict(ok: bool) -> str:
    return "meets the goal" if ok else "MISSES the goal"


def write_docs(section: str) -> None:
    """Replace the figures of the `## sync` section of docs/benchmarks.md (or add the section), leaving
    the other sections alone, and the `### ` subsections people wrote under it (analyses) too."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "## sync"), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        kept = next((i for i in range(start + 1, end) if lines[i].startswith("### ")), end)
        written = "".join(lines[kept:end])
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + written if written else "")
        new = new.rstrip("\n") + "\n" + ("\n" + tail if tail else "")
    DOCS.write_text(new)


@dataclass
class Point:
    """mbsync's runs at one point of the alternation: into tmpfs (the reference), then on disk."""

    tmpfs: list[ProcessRun]
    disk: list[ProcessRun]


@dataclass
class TouchlineRun:
    """touchline on one database: its measure process and figures, and its no-change CLI syncs."""

    process: ProcessRun
    figures: dict[str, Any]
    around: float  # the mean of mbsync's fastest tmpfs mirrors just before and after it
    around_disk: float | None  # the same of the on-disk mirrors, when there were any
    cli: list[ProcessRun] = field(default_factory=list)

    @property
    def initial_seconds(self) -> float:
        return float(self.figures["initial_seconds"])

    @property
    def cli_median(self) -> float | None:
        return statistics.median(run.seconds for run in self.cli) if self.cli else None


@dataclass
class Outcome:
    """Everything one mailbox size measured."""

    messages: int
    expected_kept: int
    companies: int
    known_contacts: int
    folders: dict[str, int]
    mailbox_bytes: int
    disk_filesystem: str  # where the on-disk mirrors went
    load: tuple[float, float]  # the 1-minute load average before and after the timed runs
    points: list[Point]  # mbsync's runs before, between and after touchline's
    touchline: dict[str, TouchlineRun]  # by database kind

    @property
    def tmpfs_runs(self) -> list[ProcessRun]:
        return [run for point in self.points for run in point.tmpfs]

    @property
    def disk_runs(self) -> list[ProcessRun]:
        return [run for point in self.points for run in point.disk]

    @property
    def reference(self) -> float:
        """mbsync's fastest mirror into tmpfs of this size, in the whole run."""
        return fastest(self.tmpfs_runs)

    def ratio(self, run: TouchlineRun) -> float:
        return run.initial_seconds / self.reference


def fastest(runs: list[ProcessRun]) -> float:
    return min(run.seconds for run in runs)


def spread(values: Iterable[float], digits: int = 1) -> str:
    """'1.7 to 2.0' (or '1.8' when all are the same to `digits` decimals)."""
    ordered = sorted(values)
    low, high = f"{ordered[0]:.{digits}f}", f"{ordered[-1]:.{digits}f}"
    return low if low == high else f"{low} to {high}"


def mbsync_text(points: list[list[ProcessRun]], digits: int = 2) -> str:
    """'16.2, 14.9' for single runs, '(16.2 14.9) (15.0 15.3)' for repeated ones."""
    if all(len(point) == 1 for point in points):
        return ", ".join(f"{point[0].seconds:.{digits}f}" for point in points)
    return " ".join("(" + " ".join(f"{run.seconds:.{digits}f}" for run in point) + ")" for point in points)


def measure(args: argparse.Namespace, mbsync: Path) -> list[Outcome]:
    """Each mailbox size in turn, on one Dovecot; each size's figures are printed when it is done."""
    outcomes = []
    with dovecot() as server:
        for messages in args.messages:
            outcome = measure_size(args, mbsync, server, messages)
            print("\n" + "\n".join(summary_lines(outcome)) + "\n", flush=True)
            outcomes.append(outcome)
    return outcomes


def measure_size(args: argparse.Namespace, mbsync: Path, server: Any, messages: int) -> Outcome:
    from bench.sync.generate import plan_mailbox
    from cryptography.fernet import Fernet

    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    mailbox = plan_mailbox(messages)
    scratch = Path(tempfile.mkdtemp(prefix="touchline-bench-sync-"))
    mirrors: Path | None = None
    secret_key = Fernet.generate_key().decode()
    try:
        with ExitStack() as databases:
            user = server.add_user()
            say(
                f"{messages:,} messages: generating them for {user.username}"
                f" on Dovecot at {server.host}:{server.imap_port} ..."
            )
            fill_seconds, fill_bytes = fill_mailbox(server, user, mailbox)
            counts = folder_counts(server, user)
            if sum(counts.values()) != messages:
                fail(f"Dovecot holds {sum(counts.values())} messages, not {messages}: {counts}")
            say(
                f"  {len(counts)} folders, {fill_bytes / 1e6:,.0f} MB in {fill_seconds:.0f} s (untimed): "
                + ", ".join(f"{name} {count}" for name, count in counts.items())
            )
            # One mirror at a time: the maildir's files, their folders and mbsync's state files.
            mirrors = tmpfs_folder(args.tmpfs, fill_bytes * 5 // 4 + 64 * 1024 * 1024)
            prepared: list[tuple[str, str, uuid.UUID, Path]] = []
            for kind in kinds:
                db = databases.enter_context(database(kind, scratch))
                started = time.perf_counter()
                data_dir = scratch / f"data-{kind}"
                mailbox_id = prepare_touchline(db.url, data_dir, secret_key, server, user, mailbox.world)
                say(f"  touchline on {kind} prepared in {time.perf_counter() - started:.1f} s")
                prepared.append((kind, db.url, mailbox_id, data_dir))

            say("warming Dovecot (untimed): one mbsync mirror, then touchline's IMAP reads ...")
            run_mbsync(mbsync, scratch, mirrors, server, user, "warm-up", messages)
            warm_touchline_paths(server, user)

            def mbsync_point(into: Path) -> Point:
                label = len(points)
                point = Point(
                    tmpfs=[
                        run_mbsync(mbsync, scratch, into, server, user, f"{label}-tmpfs-{repeat}", messages)
                        for repeat in range(args.mbsync_repeats)
                    ],
                    disk=[
                        run_mbsync(mbsync, scratch, scratch, server, user, f"{label}-disk-{repeat}", messages)
                        for repeat in range(args.disk_repeats)
                    ],
                )
                say(
                    f"  mbsync: into tmpfs {', '.join(f'{run.seconds:.2f}' for run in point.tmpfs)} s"
                    + (
                        f"; on disk {', '.join(f'{run.seconds:.2f}' for run in point.disk)} s"
                        if point.disk
                        else ""
                    )
                )
                return point

            load_before = os.getloadavg()[0]
            points: list[Point] = []
            points.append(mbsync_point(mirrors))
            touchline: dict[str, TouchlineRun] = {}
            for kind, url, mailbox_id, data_dir in prepared:
                process, figures = run_touchline(
                    url,
                    data_dir,
                    mailbox_id,
                    secret_key,
                    args.runs,
                    kind,
                    profile=args.profile,
                    stages=args.stages,
                    readers=args.readers,
                )
                say(f"  touchline ({kind}): {figures['initial_seconds']:.2f} s")
                points.append(mbsync_point(mirrors))
                before, after = points[-2], points[-1]
                touchline[kind] = TouchlineRun(
                    process,
                    figures,
                    around=(fastest(before.tmpfs) + fastest(after.tmpfs)) / 2,
                    around_disk=(fastest(before.disk) + fastest(after.disk)) / 2
                    if args.disk_repeats
                    else None,
                )
            for kind, url, _, data_dir in prepared:
                touchline[kind].cli = cli_syncs(url, data_dir, secret_key, args.cli_runs, args.readers)
                if touchline[kind].cli:
                    say(
                        f"  touchline sync --once ({kind}, no change):"
                        f" {', '.join(f'{run.seconds:.2f}' for run in touchline[kind].cli)} s"
                    )
            load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if mirrors is not None:
            shutil.rmtree(mirrors, ignore_errors=True)
    return Outcome(
        messages=messages,
        expected_kept=sum(1 for message in mailbox.messages if message.kept),
        companies=len(mailbox.world.companies),
        known_contacts=len(mailbox.world.known_contacts),
        folders=counts,
        mailbox_bytes=fill_bytes,
        disk_filesystem=filesystem_type(scratch.parent),
        load=(load_before, load_after),
        points=points,
        touchline=touchline,
    )


def problems_of(outcome: Outcome) -> list[str]:
    """What makes the figures meaningless: touchline or mbsync did not do the whole job."""
    problems = []
    for kind, run in outcome.touchline.items():
        figures = run.figures
        initial = figures["initial"]
        where = f"{outcome.messages:,} messages, {kind}"
        if (
            initial["error"]
            or initial["seen"] != outcome.messages
            or initial["kept"] != outcome.expected_kept
        ):
            problems.append(
                f"{where}: saw {initial['seen']} of {outcome.messages}, kept {initial['kept']} of the"
                f" {outcome.expected_kept} customer messages, error {initial['error']!r}"
            )
        if initial["quarantined"] or figures["stored"]["emails"] != outcome.expected_kept:
            problems.append(f"{where}: quarantined {initial['quarantined']}, stored {figures['stored']}")
        if figures["incremental_seen"]:
            problems.append(f"{where}: the no-change syncs saw {figures['incremental_seen']} messages")
    return problems


def cli_text(run: TouchlineRun) -> str:
    if run.cli_median is None:
        return "not run (--cli-runs 0)"
    return (
        f"median {run.cli_median:.2f} s over {len(run.cli)} runs"
        f" (min {fastest(run.cli):.2f}, max {max(r.seconds for r in run.cli):.2f};"
        f" CPU {statistics.median(r.cpu_seconds for r in run.cli):.2f} s;"
        f" goal <= {CLI_GOAL_SECONDS} s: {verdict(run.cli_median <= CLI_GOAL_SECONDS)})"
    )


def summary_lines(outcome: Outcome) -> list[str]:
    tmpfs, disk = outcome.tmpfs_runs, outcome.disk_runs
    lines = [
        f"mailbox: {outcome.messages:,} messages in {len(outcome.folders)} folders,"
        f" {outcome.mailbox_bytes / 1e6:,.0f} MB; {outcome.expected_kept:,} customer messages"
        f" ({outcome.expected_kept / outcome.messages:.0%}), {outcome.companies} companies,"
        f" {outcome.known_contacts} known contacts",
        "mbsync initial mirror into tmpfs (`FSync no`), the reference:"
        f" {mbsync_text([p.tmpfs for p in outcome.points])} s,"
        f" fastest {outcome.reference:.2f} s"
        f" (CPU {statistics.mean(run.cpu_seconds for run in tmpfs):.2f} s,"
        f" peak RSS {max(run.peak_rss_mb for run in tmpfs):.0f} MB)",
        f"  its own work (user CPU) {spread((run.user_seconds for run in tmpfs), 2)} s a run,"
        " the kernel's for"
        f" it (system CPU) {spread((run.system_seconds for run in tmpfs), 2)} s",
    ]
    if disk:
        lines += [
            f"mbsync into a maildir on disk ({outcome.disk_filesystem}), for context only:"
            f" {mbsync_text([p.disk for p in outcome.points])} s"
            f" (system CPU {spread(run.system_seconds for run in disk)} s)",
        ]
    lines.append(
        f"load: 1-minute average {outcome.load[0]:.1f} before the timed runs, {outcome.load[1]:.1f} after"
    )
    for kind, run in outcome.touchline.items():
        figures = run.figures
        ratio = outcome.ratio(run)
        incremental = figures["incremental_median_ms"]
        stored = figures["stored"]
        times = figures["incremental_ms"]
        lines += [
            f"touchline on {kind}:",
            f"  initial sync: {run.initial_seconds:.2f} s (CPU {figures['initial_cpu_seconds']:.2f} s,"
            f" {figures['initial_cpu_seconds_readers']:.2f} s of it in {figures['readers']} reader"
            f" process(es); process {run.process.seconds:.2f} s with start-up),"
            f" seen {figures['initial']['seen']:,},"
            f" kept {figures['initial']['kept']:,}, stored {stored['emails']:,} emails in"
            f" {stored['conversations']:,} conversations, {stored['contacts']:,} contacts",
            f"  ratio touchline/mbsync's fastest tmpfs mirror ({outcome.reference:.2f} s): {ratio:.2f}"
            f" (goal <= {INITIAL_GOAL}: {verdict(ratio <= INITIAL_GOAL)})",
            f"  against the tmpfs mirrors around it ({run.around:.2f} s):"
            f" {run.initial_seconds / run.around:.2f}"
            + (
                f"; against the on-disk mirrors around it ({run.around_disk:.2f} s, context):"
                f" {run.initial_seconds / run.around_disk:.2f}"
                if run.around_disk is not None
                else ""
            ),
            "  CPU time touchline/mbsync (tmpfs), less sensitive to other load:"
            f" {cpu_ratio(outcome, figures):.1f}"
            " (each tool's own processes; Dovecot's and PostgreSQL's CPU counted in neither)",
            f"  no-change sync of {figures['folders_synced']} folders through the CLI"
            f" (`touchline sync --once`): {cli_text(run)}",
            f"  of which the sync itself (in process): median {incremental:.1f} ms over {len(times)} runs"
            f" (min {min(times):.1f}, max {max(times):.1f}; goal < {INCREMENTAL_GOAL_MS:.0f} ms:"
            f" {verdict(incremental < INCREMENTAL_GOAL_MS)})",
            f"  peak RSS of the sync process: {figures['peak_rss_mb']:.0f} MB"
            f" ({figures['rss_before_mb']:.0f} MB after imports, before syncing),"
            f" of its reader processes: {figures['peak_rss_readers_mb']:.0f} MB",
        ]
    return lines


def cpu_ratio(outcome: Outcome, figures: dict[str, Any]) -> float:
    return float(figures["initial_cpu_seconds"]) / statistics.mean(r.cpu_seconds for r in outcome.tmpfs_runs)


TABLE_HEADER = [
    "| messages | database | touchline initial sync | mbsync into tmpfs, fastest | ratio (goal <= 1.5)"
    " | against the tmpfs mirrors around it | mbsync on disk, for context"
    " | no-change `touchline sync --once`, 10 folders (goal <= 0.4 s) | of it the sync (goal < 50 ms)"
    " | touchline peak RSS (sync + readers) |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]


def table_rows(outcomes: list[Outcome]) -> list[str]:
    rows = []
    for outcome in outcomes:
        disk = spread(run.seconds for run in outcome.disk_runs) + " s" if outcome.disk_runs else "-"
        for kind, run in outcome.touchline.items():
            figures = run.figures
            ratio = outcome.ratio(run)
            incremental = figures["incremental_median_ms"]
            cli = (
                f"**{run.cli_median:.2f} s** ({verdict(run.cli_median <= CLI_GOAL_SECONDS)})"
                if run.cli_median is not None
                else "-"
            )
            rows.append(
                f"| {outcome.messages:,} | {kind} | {run.initial_seconds:.1f} s | {outcome.reference:.2f} s"
                f" | **{ratio:.2f}** ({verdict(ratio <= INITIAL_GOAL)})"
                f" | {run.initial_seconds / run.around:.2f} | {disk} | {cli}"
                f" | **{incremental:.0f} ms** ({verdict(incremental < INCREMENTAL_GOAL_MS)})"
                f" | {figures['peak_rss_mb']:.0f} + {figures['peak_rss_readers_mb']:.0f} MB |"
            )
    return rows


def docs_section(outcomes: list[Outcome], mbsync: Path, command: str) -> str:
    readers = next(iter(outcomes[0].touchline.values())).figures["readers"]
    sizes = []
    for outcome in outcomes:
        tmpfs, disk = outcome.tmpfs_runs, outcome.disk_runs
        kept = ", ".join(
            f"{run.figures['initial']['kept']:,} on {kind}" for kind, run in outcome.touchline.items()
        )
        text = (
            f"- {outcome.messages:,} generated messages in {len(outcome.folders)} folders"
            f" ({outcome.mailbox_bytes / 1e6:,.0f} MB), {outcome.expected_kept:,} of them customer mail;"
            f" touchline kept {kept}. mbsync into tmpfs (`FSync no`), {len(outcome.points[0].tmpfs)} runs"
            f" before and after each touchline run: {mbsync_text([p.tmpfs for p in outcome.points])} s,"
            f" the fastest {outcome.reference:.2f} s (user CPU {spread(r.user_seconds for r in tmpfs)} s,"
            f" system CPU {spread(r.system_seconds for r in tmpfs)} s a run;"
            f" peak RSS {max(r.peak_rss_mb for r in tmpfs):.0f} MB)."
        )
        if disk:
            text += (
                f" For context, into a maildir on disk ({outcome.disk_filesystem}):"
                f" {mbsync_text([p.disk for p in outcome.points], 1)} s (system CPU"
                f" {spread(r.system_seconds for r in disk)} s, mostly writing"
                f" {outcome.mailbox_bytes / 1e9:.1f} GB into the page cache)."
            )
        text += (
            f" Load: {outcome.load[0]:.1f} before the timed runs, {outcome.load[1]:.1f} after. CPU time: "
            + "; ".join(
                f"touchline on {kind} {run.figures['initial_cpu_seconds']:.1f} s,"
                f" {cpu_ratio(outcome, run.figures):.1f}x mbsync's"
                for kind, run in outcome.touchline.items()
            )
            + f" {statistics.mean(r.cpu_seconds for r in tmpfs):.1f} s."
        )
        sizes.append(text)
    return "\n".join(
        [
            "## sync",
            "",
            f"Latest run: {datetime.now(UTC):%Y-%m-%d}, `{command}`; bench/sync/run.py explains the method.",
            "",
            f"- Machine: {machine()}; {versions(mbsync)}; the 1-minute load average is given for each"
            " mailbox (2 cores, shared with other work).",
            *sizes,
            f"- The ratio divides touchline's initial sync by mbsync's fastest mirror into tmpfs of the same"
            f" mailbox; the column beside it by the mean of the fastest tmpfs mirrors just before and after"
            f" touchline's run. CPU times are each tool's own processes only (touchline's count its"
            f" {readers} reader process(es)); Dovecot's and PostgreSQL's CPU is in neither. The no-change"
            f" sync through the CLI is the median wall time of `touchline sync --once` as a process of its"
            f" own (start-up included, its modules' bytecode compiled first as an installed touchline's"
            f" is); the sync itself is the median of the same sync in process.",
            "",
            *TABLE_HEADER,
            *table_rows(outcomes),
            "",
        ]
    )


def print_stages(outcome: Outcome) -> None:
    """With --stages: where the initial sync and one no-change sync spend their wall-clock time."""
    for kind, run in outcome.touchline.items():
        figures = run.figures
        if not figures.get("stages"):
            continue
        print(
            f"\nwhere touchline's initial sync of {outcome.messages:,} on {kind} spends its time"
            " (wall clock; stages nest):"
        )
        for name, (seconds, calls) in figures["stages"].items():
            print(f"  {seconds:8.2f} s {seconds / figures['initial_seconds']:5.0%} {calls:8,} calls  {name}")
        runs = len(figures["incremental_ms"])
        mean_ms = sum(figures["incremental_ms"]) / runs
        print(f"and one no-change sync on {kind}, the mean of {runs} ({mean_ms:.1f} ms):")
        for name, (seconds, calls) in figures["incremental_stages"].items():
            if calls:
                each_ms = seconds * 1000 / runs
                print(f"  {each_ms:8.2f} ms {each_ms / mean_ms:5.0%} {calls / runs:6.1f} calls  {name}")


def say(message: str) -> None:
    print(message, flush=True)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    options.add_argument(
        "--messages", type=int, nargs="+", default=[10_000, 20_000], help="mailbox sizes, each in turn"
    )
    options.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    options.add_argument(
        "--runs", type=int, default=15, help="no-change incremental syncs in process (median)"
    )
    options.add_argument(
        "--cli-runs", type=int, default=7, help="no-change `touchline sync --once` processes (median)"
    )
    options.add_argument(
        "--mbsync-repeats",
        type=int,
        default=3,
        help="mbsync mirrors into tmpfs at each point; the fastest of the run is the reference",
    )
    options.add_argument(
        "--disk-repeats",
        type=int,
        default=1,
        help="mbsync mirrors on disk at each point, for context (0: none)",
    )
    options.add_argument(
        "--tmpfs", type=Path, default=Path("/dev/shm"), help="a tmpfs folder for mbsync's reference mirrors"
    )
    options.add_argument(
        "--readers",
        type=int,
        help="touchline's reader processes (default: TOUCHLINE_SYNC_READER_PROCESSES's default)",
    )
    options.add_argument("--profile", type=Path, help="also write cProfile output of each initial sync here")
    options.add_argument(
        "--stages", action="store_true", help="also time touchline's stages (small overhead)"
    )
    options.add_argument("--write-docs", action="store_true", help="put the figures in docs/benchmarks.md")
    args = options.parse_args()
    if (args.profile or args.stages) and args.write_docs:
        fail("--profile and --stages slow touchline down; their figures do not belong in docs/benchmarks.md")
    if args.mbsync_repeats < 1 or args.disk_repeats < 0 or args.cli_runs < 0 or args.runs < 1:
        fail("--mbsync-repeats and --runs take 1 or more, --disk-repeats and --cli-runs 0 or more")
    if args.profile and len(args.messages) > 1:
        fail("--profile writes one file per database: give one mailbox size with it")
    mbsync = require_tools()
    require_tmpfs(args.tmpfs)
    outcomes = measure(args, mbsync)
    print(f"machine: {machine()}")
    print(f"servers: {versions(mbsync)}\n")
    print("\n".join([*TABLE_HEADER, *table_rows(outcomes)]))
    if args.profile:
        print(f"(profiled with cProfile into {args.profile}: the touchline times are inflated)")
    for outcome in outcomes:
        print_stages(outcome)
    problems = [problem for outcome in outcomes for problem in problems_of(outcome)]
    if problems:
        print("\nPROBLEMS:\n" + "\n".join(problems))
        raise SystemExit(1)
    if args.write_docs:
        arguments = [a for a in sys.argv[1:] if a != "--write-docs"]
        write_docs(
            docs_section(outcomes, mbsync, " ".join([".venv/bin/python -m bench.sync.run", *arguments]))
        )
        print(f"\nwrote the ## sync section of {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
