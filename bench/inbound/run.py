"""Log address throughput: touchline's SMTP server beside aiosmtpd's bare accepting sink, same run.

    .venv/bin/python -m bench.inbound.run [--clients 10] [--messages 3000] [--rounds 3]
                                          [--connection-per-message] [--with-worker] [--write-docs]

One run:
1. prepares touchline: a fresh SQLite database in a temporary data folder, migrated; a workspace
   whose user `sam@team.example` logs mail to customers of company Acme (domain acme.example, 50
   contacts that already exist, so the run measures logging rather than contact creation);
2. starts each server in a process of its own on loopback: touchline's SMTP server as the
   `touchline inbound` command runs it (every message's From and envelope sender checked against
   the workspace's users, and the message committed to the spool, in group commits, before its
   250; loopback is configured as the operator's relay, so senders are authenticated without
   DNS), and aiosmtpd's `SMTP` with a handler that answers 250 and does nothing else (the floor:
   the same protocol code, no work). By default the touchline process runs no worker, as when
   workers run elsewhere; with `--with-worker` it runs its in-process worker, which logs what is
   spooled while the load goes on (on this machine's cores, beside the clients and the sink);
3. for each round, alternating sink, touchline, sink: `--clients` threads in this process, each with
   its own smtplib connection (or a new one per message), send their share of `--messages` distinct
   messages (about 3 KB, from the user to a customer, Bcc to the log address). Time runs from the
   first MAIL to the last 250. touchline's figure is compared with the mean of the two sink runs
   around it, which cancels drift from other load on the machine;
4. logging: without `--with-worker`, one worker (`spool.log_spooled`, in this process, after the
   servers stopped) logs everything spooled, timed: messages logged per second by one worker. With
   it, the time from the last round's end until the spool is empty is reported;
5. checks that touchline stored exactly the messages it answered 250 for, each linked to Acme.

Goal: touchline / sink >= 0.5. With `--write-docs` the `## inbound` section of docs/benchmarks.md is
replaced by this run's figures; other sections are left alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## inbound"
USER = "sam@team.example"
LOOPBACK = "127.0.0.0/8"
"""The clients' network, trusted as the operator's relay (TOUCHLINE_INBOUND_TRUSTED_NETWORKS)."""
CONTACTS = 50
BODY = "\r\n".join(
    f"Line {n}: thanks for the call today, here is the summary of what we agreed on for the renewal."
    for n in range(30)
)


# --- the servers, each run as `python -m bench.inbound.run --serve KIND` -------------------------


def serve_sink(port: int) -> None:
    import asyncio

    from aiosmtpd.smtp import SMTP

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Accept(), hostname="sink.test"), "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def serve_touchline(port: int) -> None:
    from touchline.cli.processes import inbound

    inbound(host="127.0.0.1", port=port)


# --- set-up and load -----------------------------------------------------------------------------


@dataclass
class World:
    environment: dict[str, str]
    database_url: str
    log_address: str
    workspace_id: uuid.UUID


def prepare(data_dir: Path, with_worker: bool) -> World:
    from cryptography.fernet import Fernet

    from touchline.config import Settings
    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.kit.crypto import SecretBox
    from touchline.schema import upgrade
    from touchline.workspace import service
    from touchline.workspace.permissions import Actor

    key = Fernet.generate_key().decode()
    environment = {
        "TOUCHLINE_DATA_DIR": str(data_dir),
        "TOUCHLINE_SECRET_KEY": key,
        "TOUCHLINE_INBOUND_DOMAIN": "log.bench.example",
        "TOUCHLINE_IN_PROCESS_WORKER": "true" if with_worker else "false",
        "TOUCHLINE_INBOUND_TRUSTED_NETWORKS": LOOPBACK,
    }
    settings = Settings(data_dir=data_dir, secret_key=key, inbound_domain="log.bench.example")
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        workspace = service.create_workspace(
            session,
            SecretBox([key]),
            "Bench",
            internal_domains=["team.example"],
            inbound_domain="log.bench.example",
        )
        operator = Actor.operator(workspace.id)
        service.add_user(session, operator, USER, role="Member")
        acme = service.create_company(session, operator, "Acme", domains=["acme.example"])
        for number in range(CONTACTS):
            service.create_contact(session, operator, f"customer{number}@acme.example", company_id=acme.id)
        world = World(
            environment, settings.resolved_database_url, workspace.settings.log_address, workspace.id
        )
    engine.dispose()
    return world


def message(number: int, run: str) -> bytes:
    sent = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"From: Sam <{USER}>\r\nTo: Customer <customer{number % CONTACTS}@acme.example>\r\n"
        f"Subject: Renewal notes {number}\r\nDate: {sent}\r\nMessage-ID: <{run}-{number}@team.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{BODY}\r\n"
    ).encode()


def wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on port {port}")


def start(kind: str, environment: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.inbound.run", "--serve", kind, "--port", str(port)],
        cwd=REPO,
        env={**os.environ, **environment},
    )
    wait_for_port(port, process)
    return process, port


def load(port: int, recipient: str, clients: int, messages: int, run: str, per_message: bool) -> float:
    """Send `messages` with `clients` threads; returns messages per second. Every reply must be 250."""
    payloads = [message(number, run) for number in range(messages)]
    shares = [payloads[start::clients] for start in range(clients)]
    failures: list[str] = []
    barrier = threading.Barrier(clients + 1)

    def client(share: list[bytes]) -> None:
        connection: smtplib.SMTP | None = None
        try:
            barrier.wait()
            for raw in share:
                if connection is None:
                    connection = smtplib.SMTP("127.0.0.1", port, timeout=120)
                connection.sendmail(USER, [recipient], raw)
                if per_message:
                    connection.quit()
                    connection = None
        except Exception as error:
            failures.append(repr(error))
        finally:
            if connection is not None:
                connection.quit()

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        sys.exit(f"{len(failures)} clients failed, first: {failures[0]}")
    return messages / elapsed


def spooled(world: World) -> int:
    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.inbound.receive.spool import backlog

    engine = make_engine(world.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        count = int(backlog(session)["waiting"])
    engine.dispose()
    return count


def wait_until_logged(world: World, seconds: float = 600) -> float:
    """Seconds until the spool is empty (a worker in the server's process logs it)."""
    began = time.perf_counter()
    while spooled(world) and time.perf_counter() - began < seconds:
        time.sleep(0.05)
    if spooled(world):
        sys.exit(f"the spool still holds {spooled(world)} messages after {seconds:.0f} s")
    return time.perf_counter() - began


def log_with_one_worker(world: World) -> tuple[int, float]:
    """Log everything spooled with one worker in this process: (messages, seconds)."""
    from touchline.config import Settings
    from touchline.db import make_engine, make_sessionmaker
    from touchline.inbound.receive.authentication import SenderChecks
    from touchline.inbound.receive.spool import log_spooled
    from touchline.jobs import declare_all
    from touchline.kit.runtime import tune_garbage_collector

    declare_all()
    tune_garbage_collector()  # as `touchline worker` sets up its process
    engine = make_engine(world.database_url)
    sessions = make_sessionmaker(engine)
    began = time.perf_counter()
    report = log_spooled(sessions, checks=SenderChecks.of(Settings(inbound_trusted_networks=LOOPBACK)))
    elapsed = time.perf_counter() - began
    engine.dispose()
    if report.logged != report.claimed:
        sys.exit(f"one worker logged {report.logged} of the {report.claimed} messages it claimed")
    return report.logged, elapsed


def stored(world: World, run: str) -> tuple[int, int]:
    """(emails of this run, of them linked to Acme) in touchline's database."""
    from sqlalchemy import func, select

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.models import Email, EmailCompany

    engine = make_engine(world.database_url)
    with session_scope(make_sessionmaker(engine)) as session:
        ours = select(Email.id).where(
            Email.workspace_id == world.workspace_id, Email.dedup_key.like(f"{run}-%")
        )
        total = session.scalar(select(func.count()).select_from(ours.subquery())) or 0
        linked = session.scalar(select(func.count()).where(EmailCompany.email_id.in_(ours))) or 0
    engine.dispose()
    return total, linked


# --- report --------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    memory = f"{memory_kb / 1024 / 1024:.1f} GiB RAM"
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {memory}, Python {platform.python_version()}"


def write_docs(section: str) -> None:
    """Replace the `## inbound` section of docs/benchmarks.md (or add it), leaving the others alone."""
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SECTION), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + section + ("\n" + tail if tail else "")
    DOCS.write_text(new)


def report(args: argparse.Namespace, rounds: list[tuple[float, float]], logging: str) -> str:
    """Print the figures; returns the `## inbound` section for docs/benchmarks.md."""
    ratios = [rate / floor for rate, floor in rounds]
    median = statistics.median(ratios)
    touchline_median = statistics.median(rate for rate, _ in rounds)
    sink_median = statistics.median(floor for _, floor in rounds)
    verdict = "meets the goal" if median >= 0.5 else "MISSES the goal"
    mode = "a new connection per message" if args.connection_per_message else "one connection per client"
    shown = " ".join(argument for argument in sys.argv[1:] if argument != "--write-docs")
    command = f"`.venv/bin/python -m bench.inbound.run{' ' + shown if shown else ''}`"
    worker = "with its in-process worker logging meanwhile" if args.with_worker else "workers elsewhere"
    print(f"touchline {touchline_median:,.0f} msg/s, sink {sink_median:,.0f} msg/s, ratio {median:.2f}")
    print(verdict)
    print(logging)
    return (
        f"{SECTION}\n\n"
        f"Latest run: {datetime.now(UTC).date()}, {command}; bench/inbound/run.py explains the method.\n\n"
        f"- Machine: {machine()}.\n"
        f"- Load: {args.clients} parallel smtplib clients ({mode}), {args.messages:,} messages of "
        f"{len(message(0, 'x')):,} bytes per timed run, {args.rounds} rounds; SQLite; touchline's process "
        f"with {worker}; every message checked logged and linked afterwards.\n"
        f"- Logging: {logging}\n\n"
        "| round | touchline (`touchline inbound`) | aiosmtpd bare sink (mean around it) "
        "| ratio (goal >= 0.5) |\n"
        "| --- | --- | --- | --- |\n"
        + "".join(
            f"| {n + 1} | {rate:,.0f} msg/s | {floor:,.0f} msg/s | {rate / floor:.2f} |\n"
            for n, (rate, floor) in enumerate(rounds)
        )
        + f"| median | {touchline_median:,.0f} msg/s | {sink_median:,.0f} msg/s "
        f"| **{median:.2f}** ({verdict}) |\n"
        '\nWhere the time goes, and what would change it: docs/decisions/0005-log-address.md, "Throughput".\n'
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=3000, help="per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connection-per-message", action="store_true")
    parser.add_argument("--with-worker", action="store_true", help="log in touchline's process meanwhile")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--serve", choices=["sink", "touchline"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "sink":
        serve_sink(args.port)
        return
    if args.serve == "touchline":
        serve_touchline(args.port)
        return

    with tempfile.TemporaryDirectory(prefix="touchline-bench-inbound-") as folder:
        world = prepare(Path(folder), args.with_worker)
        sink, sink_port = start("sink", world.environment)
        touchline, touchline_port = start("touchline", world.environment)
        try:
            # Untimed warm-up of both: connections, imports, the directory cache, SQLite's pages.
            load(sink_port, world.log_address, args.clients, 200, "warm-sink", args.connection_per_message)
            load(touchline_port, world.log_address, args.clients, 200, "warm", args.connection_per_message)
            sink_rates: list[float] = []
            rounds: list[tuple[float, float]] = []
            runs: list[str] = []
            sink_rates.append(
                load(
                    sink_port,
                    world.log_address,
                    args.clients,
                    args.messages,
                    "s0",
                    args.connection_per_message,
                )
            )
            for number in range(args.rounds):
                run = f"r{number}"
                runs.append(run)
                rate = load(
                    touchline_port,
                    world.log_address,
                    args.clients,
                    args.messages,
                    run,
                    args.connection_per_message,
                )
                sink_rates.append(
                    load(
                        sink_port,
                        world.log_address,
                        args.clients,
                        args.messages,
                        f"s{number + 1}",
                        args.connection_per_message,
                    )
                )
                rounds.append((rate, (sink_rates[-2] + sink_rates[-1]) / 2))
                print(
                    f"round {number + 1}: touchline {rate:,.0f} msg/s, sink {rounds[-1][1]:,.0f} msg/s, "
                    f"ratio {rate / rounds[-1][1]:.2f}",
                    flush=True,
                )
            if args.with_worker:
                backlog = spooled(world)
                seconds = wait_until_logged(world)
                logging = (
                    f"the in-process worker logged as the load went on; {backlog:,} messages were still "
                    f"spooled when the last round ended, logged {seconds:.1f} s later."
                )
        finally:
            for process in (sink, touchline):
                process.terminate()
                process.wait(timeout=60)
        if not args.with_worker:
            logged, seconds = log_with_one_worker(world)
            logging = (
                f"afterwards one worker logged the {logged:,} spooled messages in {seconds:.1f} s: "
                f"{logged / seconds:,.0f} msg/s (parse, DKIM, match, contacts, snippet, store)."
            )
        for run in runs:
            total, linked = stored(world, run)
            if (total, linked) != (args.messages, args.messages):
                sys.exit(f"run {run}: stored {total} and linked {linked} of {args.messages} answered 250")

    section = report(args, rounds, logging)
    if args.write_docs:
        write_docs(section)
        print(f"wrote the {SECTION} section of {DOCS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
