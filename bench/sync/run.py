"""Initial and incremental mailbox sync against a real Dovecot, beside mbsync in the same run.

    .venv/bin/python -m bench.sync.run [--messages 20000] [--database sqlite|postgresql|both]
        [--runs 15] [--mbsync-repeats 2] [--readers N] [--write-docs] [--stages | --profile DIR]

One run does all of this, in this order:
1. starts a private Dovecot (tests/services/dovecot.py) and fills one user's mailbox with the
   deterministic mailbox of `generate.py` (10 folders, about 30% customer mail) through IMAP
   MULTIAPPEND; the generation time is printed but is no benchmark figure;
2. prepares touchline: a fresh database (SQLite in a temporary data folder by default; PostgreSQL
   in a database created for the run and dropped after it), a workspace whose internal domain is the
   team's, the generator's companies and a few known contacts, a 180-day look-back, the mailbox
   connected and all 10 folders selected;
3. warms the server, untimed: one mbsync mirror into a scratch folder (every body read once), then
   touchline's own IMAP provider reads every folder the way a sync does (SEARCH, header batches)
   and fetches every body. After this both tools find the same warm Dovecot indexes and page cache,
   and neither is timed against a server that the other one warmed for it;
4. times, alternating: mbsync, touchline (on each database), mbsync. mbsync runs `--mbsync-repeats`
   times at each point and the fastest counts (its runs are short, so a burst of other load on this
   shared machine can double one; touchline's long run averages such bursts out). Each touchline
   time is divided by the mean of the mbsync times just before and after it. mbsync mirrors every
   folder (`Patterns *`, `Create Near`, `FSync no`) into a fresh local maildir; the run checks that
   it copied every message. touchline's time is the `sync_mailbox()` call in a fresh worker process
   (measure.py; the interpreter's start-up is not part of a sync), and the run checks that it saw
   every message, kept exactly the customer mail, stored each once and quarantined nothing;
5. in the same touchline process: no-change incremental syncs of the 10 folders (median, in ms),
   and the process's peak RSS (VmHWM).

Goals: initial sync time touchline/mbsync <= 1.5; no-change incremental sync < 50 ms.
`--write-docs` replaces the `## sync` section of docs/benchmarks.md with this run's figures.
`--stages` prints where touchline's time goes (wall clock per pipeline stage); `--profile DIR`
writes cProfile files. Both slow touchline down, so they cannot be combined with `--write-docs`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from bench.sync.procfs import status_mb

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
INITIAL_GOAL = 1.5
INCREMENTAL_GOAL_MS = 50.0
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
    import touchline.jobs  # noqa: F401 -- connecting a mailbox enqueues its first sync by name
    from touchline.config import Settings
    from touchline.db import make_engine, make_sessionmaker, session_scope
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
    queue = configure_queue(settings)
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
    from touchline.inbound.fetch.service import BATCH_SIZE
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


def run_process(command: list[str], *, env: dict[str, str] | None = None) -> ProcessRun:
    """Run to the end: wall time, CPU time (os.wait4) and peak RSS, sampled every 10 ms."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=REPO)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, status_mb("VmHWM", child.pid))
            time.sleep(0.01)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if child.returncode != 0:
        fail(f"{command[0]} failed ({child.returncode}):\n{stderr[-4000:]}\n{stdout[-2000:]}")
    return ProcessRun(seconds, usage.ru_utime, usage.ru_stime, peak, stdout)


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


def run_mbsync(mbsync: Path, scratch: Path, server: Any, user: Any, label: str, expected: int) -> ProcessRun:
    target = scratch / f"mirror-{label}"
    config = mbsync_config(scratch, server, user, target)
    # The previous mirror's gigabyte of writes must not still be draining to disk while this one runs.
    os.sync()
    run = run_process([str(mbsync), "-c", str(config), "-a", "-q"])
    copied = sum(1 for path in target.rglob("*") if path.parent.name in {"cur", "new"} and path.is_file())
    if copied != expected:
        fail(f"mbsync ({label}) copied {copied} messages, not {expected}")
    shutil.rmtree(target)
    return run


def run_touchline(
    url: str,
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
        "TOUCHLINE_SECRET_KEY": secret_key,
        "TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS": "true",  # the bench's Dovecot listens on loopback
        "PYTHONPATH": str(REPO),
    }
    run = run_process(command, env=env)
    return run, json.loads(run.stdout.strip().splitlines()[-1])


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
class Outcome:
    """Everything one run measured."""

    messages: int
    expected_kept: int
    companies: int
    known_contacts: int
    folders: dict[str, int]
    mailbox_bytes: int
    load: tuple[float, float]  # the 1-minute load average before and after the timed runs
    mbsync_points: list[list[ProcessRun]]  # the mbsync runs before, between and after touchline's
    touchline: dict[str, tuple[ProcessRun, dict[str, Any], float]]  # kind: (process, figures, mbsync mean)

    @property
    def mbsync_runs(self) -> list[ProcessRun]:
        return [run for point in self.mbsync_points for run in point]


def fastest(runs: list[ProcessRun]) -> float:
    return min(run.seconds for run in runs)


def spread(values: Iterable[float]) -> str:
    """'1.7 to 2.0' (or '1.8' when all are the same to one decimal)."""
    ordered = sorted(values)
    low, high = f"{ordered[0]:.1f}", f"{ordered[-1]:.1f}"
    return low if low == high else f"{low} to {high}"


def mbsync_text(points: list[list[ProcessRun]], digits: int = 2) -> str:
    """'16.2, 14.9' for single runs, '(16.2 14.9) (15.0 15.3)' for repeated ones."""
    if all(len(point) == 1 for point in points):
        return ", ".join(f"{point[0].seconds:.{digits}f}" for point in points)
    return " ".join("(" + " ".join(f"{run.seconds:.{digits}f}" for run in point) + ")" for point in points)


def measure(args: argparse.Namespace, mbsync: Path) -> Outcome:
    from bench.sync.generate import plan_mailbox
    from cryptography.fernet import Fernet

    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    mailbox = plan_mailbox(args.messages)
    scratch = Path(tempfile.mkdtemp(prefix="touchline-bench-sync-"))
    secret_key = Fernet.generate_key().decode()
    try:
        with dovecot() as server, ExitStack() as databases:
            user = server.add_user()
            say(f"Dovecot on {server.host}:{server.imap_port}; generating {args.messages:,} messages ...")
            fill_seconds, fill_bytes = fill_mailbox(server, user, mailbox)
            counts = folder_counts(server, user)
            if sum(counts.values()) != args.messages:
                fail(f"Dovecot holds {sum(counts.values())} messages, not {args.messages}: {counts}")
            say(
                f"  {len(counts)} folders, {fill_bytes / 1e6:,.0f} MB in {fill_seconds:.0f} s (untimed): "
                + ", ".join(f"{name} {count}" for name, count in counts.items())
            )
            prepared: list[tuple[str, str, uuid.UUID]] = []
            for kind in kinds:
                db = databases.enter_context(database(kind, scratch))
                started = time.perf_counter()
                mailbox_id = prepare_touchline(
                    db.url, scratch / f"data-{kind}", secret_key, server, user, mailbox.world
                )
                say(f"  touchline on {kind} prepared in {time.perf_counter() - started:.1f} s")
                prepared.append((kind, db.url, mailbox_id))

            say("warming Dovecot (untimed): one mbsync mirror, then touchline's IMAP reads ...")
            run_mbsync(mbsync, scratch, server, user, "warm-up", args.messages)
            warm_touchline_paths(server, user)

            def mbsync_point() -> list[ProcessRun]:
                point = [
                    run_mbsync(mbsync, scratch, server, user, f"{len(points)}-{repeat}", args.messages)
                    for repeat in range(args.mbsync_repeats)
                ]
                say(f"  mbsync: {', '.join(f'{run.seconds:.2f}' for run in point)} s")
                return point

            load_before = os.getloadavg()[0]
            points: list[list[ProcessRun]] = []
            points.append(mbsync_point())
            touchline: dict[str, tuple[ProcessRun, dict[str, Any], float]] = {}
            for kind, url, mailbox_id in prepared:
                process, figures = run_touchline(
                    url,
                    mailbox_id,
                    secret_key,
                    args.runs,
                    kind,
                    profile=args.profile,
                    stages=args.stages,
                    readers=args.readers,
                )
                say(f"  touchline ({kind}): {figures['initial_seconds']:.2f} s")
                points.append(mbsync_point())
                around = (fastest(points[-2]) + fastest(points[-1])) / 2
                touchline[kind] = (process, figures, around)
            load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return Outcome(
        messages=args.messages,
        expected_kept=sum(1 for message in mailbox.messages if message.kept),
        companies=len(mailbox.world.companies),
        known_contacts=len(mailbox.world.known_contacts),
        folders=counts,
        mailbox_bytes=fill_bytes,
        load=(load_before, load_after),
        mbsync_points=points,
        touchline=touchline,
    )


def problems_of(outcome: Outcome) -> list[str]:
    """What makes the figures meaningless: touchline or mbsync did not do the whole job."""
    problems = []
    for kind, (_, figures, _) in outcome.touchline.items():
        initial = figures["initial"]
        if (
            initial["error"]
            or initial["seen"] != outcome.messages
            or initial["kept"] != outcome.expected_kept
        ):
            problems.append(
                f"{kind}: saw {initial['seen']} of {outcome.messages}, kept {initial['kept']} of the"
                f" {outcome.expected_kept} customer messages, error {initial['error']!r}"
            )
        if initial["quarantined"] or figures["stored"]["emails"] != outcome.expected_kept:
            problems.append(f"{kind}: quarantined {initial['quarantined']}, stored {figures['stored']}")
        if figures["incremental_seen"]:
            problems.append(f"{kind}: the no-change syncs saw {figures['incremental_seen']} messages")
    return problems


def summary_lines(outcome: Outcome, mbsync: Path) -> list[str]:
    runs = outcome.mbsync_runs
    lines = [
        f"machine: {machine()}",
        f"servers: {versions(mbsync)}",
        f"mailbox: {outcome.messages:,} messages in {len(outcome.folders)} folders,"
        f" {outcome.mailbox_bytes / 1e6:,.0f} MB; {outcome.expected_kept:,} customer messages"
        f" ({outcome.expected_kept / outcome.messages:.0%}), {outcome.companies} companies,"
        f" {outcome.known_contacts} known contacts",
        f"mbsync initial mirror: {mbsync_text(outcome.mbsync_points)} s"
        f" (CPU {statistics.mean(run.cpu_seconds for run in runs):.2f} s,"
        f" peak RSS {max(run.peak_rss_mb for run in runs):.0f} MB)",
        f"  mbsync's own work (user CPU) {spread(run.user_seconds for run in runs)} s a run; the kernel's for"
        f" it (system CPU, mostly writing the maildir) {spread(run.system_seconds for run in runs)} s",
        f"load: 1-minute average {outcome.load[0]:.1f} before the timed runs, {outcome.load[1]:.1f} after",
    ]
    for kind, (process, figures, mbsync_seconds) in outcome.touchline.items():
        ratio = figures["initial_seconds"] / mbsync_seconds
        incremental = figures["incremental_median_ms"]
        stored = figures["stored"]
        times = figures["incremental_ms"]
        lines += [
            f"touchline on {kind}:",
            f"  initial sync: {figures['initial_seconds']:.2f} s (CPU {figures['initial_cpu_seconds']:.2f} s,"
            f" {figures['initial_cpu_seconds_readers']:.2f} s of it in {figures['readers']} reader"
            f" process(es); process {process.seconds:.2f} s with start-up),"
            f" seen {figures['initial']['seen']:,},"
            f" kept {figures['initial']['kept']:,}, stored {stored['emails']:,} emails in"
            f" {stored['conversations']:,} conversations, {stored['contacts']:,} contacts",
            f"  ratio touchline/mbsync: {ratio:.2f} (mbsync {mbsync_seconds:.2f} s, around it;"
            f" goal <= {INITIAL_GOAL}: {verdict(ratio <= INITIAL_GOAL)})",
            f"  against mbsync's fastest run of this benchmark ({fastest(runs):.2f} s):"
            f" {figures['initial_seconds'] / fastest(runs):.2f}",
            f"  CPU time touchline/mbsync, less sensitive to other load: {cpu_ratio(outcome, figures):.1f}"
            " (each tool's own processes; Dovecot's and PostgreSQL's CPU counted in neither)",
            f"  no-change incremental sync of {figures['folders_synced']} folders:"
            f" median {incremental:.1f} ms over {len(times)} runs (min {min(times):.1f},"
            f" max {max(times):.1f}; goal < {INCREMENTAL_GOAL_MS:.0f} ms:"
            f" {verdict(incremental < INCREMENTAL_GOAL_MS)})",
            f"  peak RSS of the sync process: {figures['peak_rss_mb']:.0f} MB"
            f" ({figures['rss_before_mb']:.0f} MB after imports, before syncing),"
            f" of its reader processes: {figures['peak_rss_readers_mb']:.0f} MB",
        ]
    return lines


def cpu_ratio(outcome: Outcome, figures: dict[str, Any]) -> float:
    return float(figures["initial_cpu_seconds"]) / statistics.mean(r.cpu_seconds for r in outcome.mbsync_runs)


def docs_section(outcome: Outcome, mbsync: Path, command: str) -> str:
    runs = outcome.mbsync_runs
    rows = []
    kept = ""
    readers = 0
    for kind, (_, figures, mbsync_seconds) in outcome.touchline.items():
        readers = figures["readers"]
        ratio = figures["initial_seconds"] / mbsync_seconds
        incremental = figures["incremental_median_ms"]
        kept = f"{figures['initial']['kept']:,}"
        rows.append(
            f"| {kind} | {figures['initial_seconds']:.1f} s | {mbsync_seconds:.1f} s"
            f" | **{ratio:.2f}** ({verdict(ratio <= INITIAL_GOAL)})"
            f" | {figures['initial_seconds'] / fastest(runs):.2f}"
            f" | **{incremental:.0f} ms** ({verdict(incremental < INCREMENTAL_GOAL_MS)})"
            f" | {figures['peak_rss_mb']:.0f} + {figures['peak_rss_readers_mb']:.0f} MB |"
        )
    return "\n".join(
        [
            "## sync",
            "",
            f"Latest run: {datetime.now(UTC):%Y-%m-%d}, `{command}`; bench/sync/run.py explains the method.",
            "",
            f"- Machine: {machine()}; {versions(mbsync)}.",
            f"- Mailbox: {outcome.messages:,} generated messages in {len(outcome.folders)} folders"
            f" ({outcome.mailbox_bytes / 1e6:,.0f} MB), {outcome.expected_kept:,} of them customer mail;"
            f" touchline kept {kept}.",
            f"- mbsync initial mirror (`FSync no`, local maildir), the runs before and after each touchline"
            f" run: {mbsync_text(outcome.mbsync_points, 1)} s;"
            f" peak RSS {max(run.peak_rss_mb for run in runs):.0f} MB. Its own work (user CPU) is"
            f" {spread(run.user_seconds for run in runs)} s a run; the kernel's for it (system CPU, mostly"
            f" writing {outcome.mailbox_bytes / 1e9:.1f} GB of maildir into the page cache) is"
            f" {spread(run.system_seconds for run in runs)} s and decides its wall time.",
            f"- Load: the 1-minute load average was {outcome.load[0]:.1f} before the timed runs and"
            f" {outcome.load[1]:.1f} after them (2 cores, shared with other work). The table counts mbsync's"
            " fastest run at each point. CPU time: "
            + "; ".join(
                f"touchline on {kind} {figures['initial_cpu_seconds']:.0f} s,"
                f" {cpu_ratio(outcome, figures):.1f}x mbsync's mean"
                for kind, (_, figures, _) in outcome.touchline.items()
            )
            + f" of {statistics.mean(r.cpu_seconds for r in runs):.1f} s (each tool's own processes only:"
            f" touchline's counts its {readers} reader process(es)).",
            "",
            "| database | touchline initial sync | mbsync (around it) | ratio (goal <= 1.5)"
            f" | against mbsync's fastest run ({fastest(runs):.1f} s)"
            " | no-change sync, 10 folders (goal < 50 ms) | touchline peak RSS (sync + readers) |",
            "| --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )


def print_stages(outcome: Outcome) -> None:
    """With --stages: where the initial sync and one no-change sync spend their wall-clock time."""
    for kind, (_, figures, _) in outcome.touchline.items():
        if not figures.get("stages"):
            continue
        print(f"\nwhere touchline's initial sync on {kind} spends its time (wall clock; stages nest):")
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
    options.add_argument("--messages", type=int, default=20_000)
    options.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="sqlite")
    options.add_argument("--runs", type=int, default=15, help="no-change incremental syncs (median)")
    options.add_argument(
        "--mbsync-repeats", type=int, default=2, help="mbsync runs at each point; the fastest counts"
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
    mbsync = require_tools()
    outcome = measure(args, mbsync)
    print("\n" + "\n".join(summary_lines(outcome, mbsync)))
    if args.profile:
        print(f"(profiled with cProfile into {args.profile}: the touchline times are inflated)")
    print_stages(outcome)
    problems = problems_of(outcome)
    if problems:
        print("\nPROBLEMS:\n" + "\n".join(problems))
        raise SystemExit(1)
    if args.write_docs:
        arguments = [a for a in sys.argv[1:] if a != "--write-docs"]
        write_docs(
            docs_section(outcome, mbsync, " ".join([".venv/bin/python -m bench.sync.run", *arguments]))
        )
        print(f"\nwrote the ## sync section of {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
