"""The processes: serve, the log address's SMTP server, the tracking endpoints, a worker, the demo;
and the database schema and the job queue they rely on."""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from rich.markup import escape

from touchline.cli.common import (
    configure_jobs,
    console,
    errors,
    fail,
    load_settings,
    transaction,
    upgrade_schema,
)
from touchline.kit.runtime import tune_garbage_collector

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
queue_app = typer.Typer(help="The job queue.", no_args_is_help=True)


def _redacted(url: str) -> str:
    """A URL as it may be printed: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=f"{user}{host}{port}"))


def _log_to_stderr() -> None:
    """Long-running processes log their jobs (`touchline.jobs`: one key=value line per job start,
    end and error) and warnings to stderr, for the service manager's journal."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("huey").setLevel(logging.WARNING)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database schema first")] = True,
    worker: Annotated[bool, typer.Option(help="Run jobs in this process too")] = True,
) -> None:
    """Run the API, pages and (by default) an in-process worker."""
    import uvicorn

    from touchline.app import create_app

    tune_garbage_collector()
    settings = load_settings()
    if migrate:
        upgrade_schema(settings)
    settings.in_process_worker = worker
    inbound = None
    if settings.inbound_smtp_enabled:
        from touchline.inbound.receive.smtp import InboundServer

        inbound = InboundServer(settings)
        try:
            inbound.start()
        except OSError as error:
            raise fail(
                f"the log address's SMTP port {settings.inbound_smtp_port} is taken ({error}); "
                "set TOUCHLINE_INBOUND_SMTP_PORT or TOUCHLINE_INBOUND_SMTP_ENABLED=false"
            ) from None
        console.print(f"log address SMTP on {settings.inbound_smtp_host}:{settings.inbound_smtp_port}")
    try:
        # Browsers hold notification streams open; at shutdown they are cut after a few seconds and
        # reconnect (to another process, when several serve), resuming from their last event.
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
    finally:
        if inbound is not None:
            inbound.stop()


def inbound(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: the settings')")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default: the settings')")] = None,
) -> None:
    """Run only the log address's SMTP server (serve starts it too).

    Accepted mail is logged by workers: by one in this process with the embedded defaults
    (TOUCHLINE_IN_PROCESS_WORKER), otherwise by `touchline worker` processes.
    """
    from touchline.inbound.receive.smtp import run_inbound_server
    from touchline.jobs import declare, declare_all
    from touchline.worker import configure_queue

    declare_all()  # this process sends the logging job, and may run any job
    tune_garbage_collector()
    settings = load_settings()
    queue = configure_queue(settings, declare=declare)
    try:
        if settings.in_process_worker:
            # The every-minute schedules are the other workers' (or serve's) to run.
            queue.start_in_process(settings.worker_threads, periodic=False)
        run_inbound_server(settings, host, port)
    finally:
        queue.close()


def tracking(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8001,
) -> None:
    """Run only the tracking endpoints (the open pixel and click redirects under /t; serve mounts
    them too). Stateless: several may serve one PostgreSQL database behind a load balancer."""
    import uvicorn

    from touchline.db import make_engine, make_sessionmaker
    from touchline.jobs import declare
    from touchline.outbound.track.app import create_tracking_app
    from touchline.worker import configure_queue

    tune_garbage_collector()
    settings = load_settings()
    engine = make_engine(settings.resolved_database_url)
    queue = configure_queue(settings, declare=declare)  # it sends only the engagement refresh job
    try:
        application = create_tracking_app(settings, make_sessionmaker(engine), queue, prefix="/t")
        console.print(f"tracking endpoints on http://{host}:{port}/t/")
        # uvloop and httptools (C) rather than asyncio's loop and h11 (pure Python): on one core they
        # roughly halve the server's share of each hit (docs/benchmarks.md, "tracking").
        uvicorn.run(
            application,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            loop="uvloop",
            http="httptools",
            server_header=False,
        )
    finally:
        queue.close()
        engine.dispose()


def worker(threads: Annotated[int, typer.Option(help="Jobs run at once in this process")] = 2) -> None:
    """Run a separate worker that takes jobs from the queue."""
    from touchline.inbound.readers import configure_readers
    from touchline.jobs import declare, declare_all
    from touchline.worker import configure_queue

    declare_all()
    tune_garbage_collector()
    settings = load_settings()
    _log_to_stderr()
    console.print(
        f"worker: {threads} thread(s) for quick jobs and {threads} for long ones (mailbox syncs) on the "
        f"{'Redis' if settings.uses_redis_queue else 'SQLite'} queue,"
        f" {settings.sync_reader_processes} mail reader process(es)"
    )
    configure_readers(settings.sync_reader_processes).start()
    configure_queue(settings, declare=declare).run_worker(threads)


def demo(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    reset: Annotated[
        bool,
        typer.Option(
            "--reset", help="Delete the demo's data (database, sent mail, IMAP mail) and start afresh"
        ),
    ] = False,
) -> None:
    """Create (or refresh) a demo workspace with mailboxes to connect, print how to log in, and serve."""
    from touchline.db import make_engine, make_sessionmaker
    from touchline.demo import (
        DEMO_TRUSTED_NETWORKS,
        DEMO_USERS,
        SINK_HOST,
        demo_relay_environment,
        ensure_demo_workspace,
        import_demo_mail,
        mark_if_new,
        start_demo_sink,
    )
    from touchline.demo_imap import start_demo_imap
    from touchline.kit.crypto import SecretBox

    if reset:
        _reset_demo()

    os.environ["TOUCHLINE_INBOUND_TRUSTED_NETWORKS"] = DEMO_TRUSTED_NETWORKS

    # A demo is tried against mail servers on this machine or its network (unless told otherwise).
    os.environ.setdefault("TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS", "true")
    mark_if_new(load_settings())
    imap = start_demo_imap(load_settings().data_dir, DEMO_USERS)
    try:
        # A demo mailbox, once connected, sends through the sink too: its SMTP login is the IMAP one.
        sink = start_demo_sink(load_settings().data_dir, {a.username: a.password for a in imap.accounts})
    except BaseException:
        imap.stop()
        raise
    # Whatever relay is configured, the demo's outbox sends to its sink: demo mail stays on this machine.
    os.environ.update(demo_relay_environment(sink))
    os.environ["TOUCHLINE_DEMO_SENT_FOLDER"] = str(sink.folder)  # listed on the Sent by the demo page
    try:
        # The Email page names the demo's mailbox to connect.
        os.environ["TOUCHLINE_DEMO_IMAP_HOST"] = imap.host
        os.environ["TOUCHLINE_DEMO_IMAP_PORT"] = str(imap.port)
        os.environ["TOUCHLINE_DEMO_IMAP_PASSWORDS"] = json.dumps(
            {a.username: a.password for a in imap.accounts}
        )
        settings = load_settings()
        upgrade_schema(settings)
        password = secrets.token_urlsafe(12)
        with transaction(settings) as session:
            email, created = ensure_demo_workspace(
                session, SecretBox(settings.secret_keys), settings, password
            )
        if created:
            configure_jobs(settings)  # storing mail sends jobs (engagement finds replies among it)
            engine = make_engine(settings.resolved_database_url)
            report = import_demo_mail(make_sessionmaker(engine))
            engine.dispose()
            console.print(f"demo mail: {report.kept} customer emails kept, {report.ignored} internal ignored")
        console.rule("touchline demo")
        console.print(f"Open  [bold]http://{host}:{port}/login[/]")
        console.print(f"Email [bold]{email}[/]   Password [bold]{password}[/]")
        console.print(
            f"Mailboxes to connect on the Email page (IMAP server {imap.host}, port {imap.port}, "
            f"security None; SMTP {SINK_HOST}, port {sink.port}, security None; "
            f"their mail is in {imap.folder}):"
        )
        for account in imap.accounts:
            console.print(
                f"  IMAP username [bold]{account.username}[/]   password [bold]{account.password}[/]"
            )
        console.print(
            f"The log address takes mail sent from this machine as authenticated "
            f"(TOUCHLINE_INBOUND_TRUSTED_NETWORKS={DEMO_TRUSTED_NETWORKS}); other senders need DKIM or SPF"
        )
        console.print(
            f"Sent mail is caught by a local sink (the demo's relay, SMTP on {SINK_HOST}:{sink.port}): "
            f"open [bold]{sink.folder}[/] (one .eml file per message) or, as an admin, the page "
            f"[bold]http://{host}:{port}/demo/sent[/]; nothing is sent on"
        )
        console.print("Start over with [bold]touchline demo --reset[/]")
        console.rule()
        serve(host=host, port=port, migrate=False, worker=True)
    finally:
        imap.stop()
        sink.stop()


def _reset_demo() -> None:
    """Delete the demo's data after saying what goes; refuse a data directory the demo did not create."""
    from touchline.demo import NotDemoDataError, delete_demo_data, demo_data_paths

    try:
        doomed = demo_data_paths(load_settings())
    except NotDemoDataError as error:
        raise fail(f"not resetting: {error}") from None
    console.print("Resetting the demo; deleting:" if doomed else "Resetting the demo: nothing to delete")
    for path in doomed:
        console.print(f"  {path}", soft_wrap=True, markup=False)
    delete_demo_data(doomed)


@queue_app.command("ping")
def queue_ping(timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker")] = 10.0) -> None:
    """Send a job through the queue and wait for a worker to answer it."""
    from touchline.jobs import declare
    from touchline.worker import configure_queue

    settings = load_settings()
    where = str(settings.queue_file)
    if settings.uses_redis_queue:
        where = f"Redis at {_redacted(settings.queue_url)}"
    try:
        queue = configure_queue(settings, declare=declare)
        try:
            queue.ping()
            round_trip = queue.ping_worker(timeout)
        finally:
            queue.close()
    except Exception as error:
        # One line an operator can act on, not a traceback: the queue itself is out of reach.
        reason = " ".join(str(error).split()) or type(error).__name__
        message = escape(f"the queue ({where}) cannot be reached: {reason}")
        errors.print(f"[bold red]error:[/] {message}", soft_wrap=True)
        raise typer.Exit(1) from None
    if round_trip is None:
        raise fail(f"no worker answered within {timeout:g} s; start one with `touchline worker`")
    console.print(f"a worker answered in {round_trip * 1000:.0f} ms")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the database schema to the newest revision."""
    settings = load_settings()
    upgrade_schema(settings)
    console.print("database schema is up to date")
