"""Sending: one email, templates, the outbox, and bulk sends."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from touchline.cli.common import (
    REFUSED_EXIT_CODE,
    Workspace,
    configure_jobs,
    console,
    errors,
    fail,
    load_settings,
    operator_of,
    read_text_file,
    transaction,
)
from touchline.kit.errors import TouchlineError
from touchline.kit.runtime import tune_garbage_collector

if TYPE_CHECKING:
    from touchline.models import OutboundEmail

outbox_app = typer.Typer(help="Emails sent through touchline and what became of them.", no_args_is_help=True)
template_app = typer.Typer(help="Email templates with merge fields.", no_args_is_help=True)
bulk_app = typer.Typer(
    help="Bulk sends: one template to the endusers that filters select.", no_args_is_help=True
)


def _outbox_record(row: OutboundEmail) -> dict[str, str | int | list[str] | None]:
    """An outbound email as `send --json` and `outbox list --json` print it."""
    from touchline.outbound.send.schemas import OutboundOut

    out = OutboundOut.of(row)
    return {
        "id": str(out.id),
        "status": out.status,
        "message_id": out.message_id,
        "from": out.sender,
        "to": out.to,
        "cc": out.cc,
        "first_recipient": out.first_recipient,
        "template": out.template,
        "bulk_id": str(out.bulk_id) if out.bulk_id else None,
        "sequence": str(out.sequence_id) if out.sequence_id else None,
        "step": out.sequence_step,
        "error": out.error,
        "scheduled_for": out.scheduled_for.isoformat() if out.scheduled_for else None,
        "sent_at": out.sent_at.isoformat() if out.sent_at else None,
    }


TrackOpens = Annotated[
    bool | None,
    typer.Option(
        "--track-opens/--no-track-opens",
        help="Track opens with a pixel (default: the template's switch, else the workspace's setting)",
        show_default=False,
    ),
]
TrackClicks = Annotated[
    bool | None,
    typer.Option(
        "--track-clicks/--no-track-clicks",
        help="Track clicks through a redirect (default: the template's switch, else the workspace's)",
        show_default=False,
    ),
]
UtmSource = Annotated[str | None, typer.Option(help="utm_source of its tracked links")]
UtmMedium = Annotated[str | None, typer.Option(help="utm_medium of its tracked links")]
UtmCampaign = Annotated[str | None, typer.Option(help="utm_campaign (merge fields allowed)")]
UtmContent = Annotated[str | None, typer.Option(help="utm_content (merge fields allowed)")]


def send(
    workspace: Workspace,
    as_user: Annotated[str, typer.Option("--as", help="The user who sends (needs send_email)")],
    sender: Annotated[str, typer.Option("--from", help="Your address, a public address, or account-owner")],
    to: Annotated[list[str], typer.Option("--to", help="A recipient; repeat for more")],
    cc: Annotated[list[str] | None, typer.Option("--cc", help="A Cc recipient; repeat for more")] = None,
    template: Annotated[str | None, typer.Option(help="A stored template's name")] = None,
    subject: Annotated[str | None, typer.Option(help="The subject (with --html-file)")] = None,
    html_file: Annotated[
        Path | None, typer.Option("--html-file", help="The HTML body (with --subject)")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Send at this ISO 8601 time with a zone, e.g. 2027-01-04T09:00+01:00"),
    ] = None,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    utm_source: UtmSource = None,
    utm_medium: UtmMedium = None,
    utm_campaign: UtmCampaign = None,
    utm_content: UtmContent = None,
) -> None:
    """Send one email (now, or scheduled with --at); a refused send exits 2 and sends nothing."""
    from datetime import UTC, datetime

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.outbound.send import service as outbox
    from touchline.outbound.track.utm import checked_utm
    from touchline.workspace import service

    if (template is None) == (subject is None or html_file is None):
        raise fail("give either --template NAME, or --subject and --html-file", REFUSED_EXIT_CODE)
    send_at = None
    if at is not None:
        try:
            send_at = datetime.fromisoformat(at)
        except ValueError:
            raise fail(f"--at {at!r} is not an ISO 8601 time", REFUSED_EXIT_CODE) from None
        if send_at.tzinfo is None:
            raise fail("--at needs a time zone (Z or +01:00)", REFUSED_EXIT_CODE)
    html = read_text_file(html_file, "--html-file") if html_file is not None else ""
    settings = load_settings()
    configure_jobs(settings)
    draft = outbox.Draft(
        sender=sender,
        to=[outbox.Recipient(address) for address in to],
        cc=[outbox.Recipient(address) for address in cc or []],
        subject=subject or "",
        html=html,
        send_at=send_at,
        template=template,
        track_opens=track_opens,
        track_clicks=track_clicks,
        utm=checked_utm(
            {
                "utm_source": utm_source,
                "utm_medium": utm_medium,
                "utm_campaign": utm_campaign,
                "utm_content": utm_content,
            }
        ),
    )
    engine = make_engine(settings.resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            operator = operator_of(session, workspace)
            actor = service.actor_for(service.find_user_by_email(session, operator, as_user))
            row = outbox.send_email(session, actor, draft, settings=settings, now=datetime.now(UTC))
            record = _outbox_record(row)
    except TouchlineError as error:
        raise fail(f"not sent: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    summary = {key: record[key] for key in ("id", "status", "message_id", "from", "to")}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    when = f" for {record['scheduled_for']}" if record["scheduled_for"] else ""
    console.print(
        f"{record['status']}{when}: {record['message_id']} from {record['from']} to {', '.join(to)}"
    )


@template_app.command("create")
def template_create(
    workspace: Workspace,
    name: Annotated[str, typer.Argument(help="The template's name, unique in the workspace")],
    subject: Annotated[str, typer.Option(help="The subject, with merge fields")],
    html_file: Annotated[Path, typer.Option("--html-file", help="The HTML body, with merge fields")],
    text_file: Annotated[
        Path | None,
        typer.Option("--text-file", help="The text part; derived from the HTML when left out"),
    ] = None,
    track_opens: Annotated[bool, typer.Option(help="Track opens of emails sent from it")] = True,
    track_clicks: Annotated[bool, typer.Option(help="Track clicks of emails sent from it")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    utm_source: UtmSource = None,
    utm_medium: UtmMedium = None,
    utm_campaign: UtmCampaign = None,
    utm_content: UtmContent = None,
) -> None:
    """Store a template; one that cannot render (syntax, unknown fields) exits 2 naming each problem."""
    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.outbound.templates import service as templates

    utm = {
        "utm_source": utm_source,
        "utm_medium": utm_medium,
        "utm_campaign": utm_campaign,
        "utm_content": utm_content,
    }
    content = templates.TemplateText(
        subject=subject,
        html=read_text_file(html_file, "--html-file"),
        text=read_text_file(text_file, "--text-file") if text_file is not None else None,
        track_opens=track_opens,
        track_clicks=track_clicks,
        utm={key: value for key, value in utm.items() if value},
    )
    engine = make_engine(load_settings().resolved_database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            row = templates.create_template(session, operator_of(session, workspace), name, content)
            record = {"id": str(row.id), "name": row.name, "version": row.version}
    except TouchlineError as error:
        raise fail(f"template not saved: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(record))
        return
    console.print(f"template {record['name']!r} saved (version {record['version']}, id {record['id']})")


@template_app.command("list")
def template_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """The workspace's templates."""
    from touchline.outbound.templates import service as templates

    with transaction(load_settings()) as session:
        records = [
            {
                "id": str(row.id),
                "name": row.name,
                "subject": row.subject,
                "version": row.version,
                "track_opens": row.track_opens,
                "track_clicks": row.track_clicks,
            }
            for row in templates.list_templates(session, operator_of(session, workspace))
        ]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    table = Table("name", "subject", "version", "opens", "clicks")
    for record in records:
        table.add_row(
            str(record["name"]),
            str(record["subject"]),
            str(record["version"]),
            "tracked" if record["track_opens"] else "off",
            "tracked" if record["track_clicks"] else "off",
        )
    console.print(table)


@outbox_app.command("list")
def outbox_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Every outbound email of a workspace, newest first, with its status and error."""
    from touchline.outbound.send import service as outbox

    with transaction(load_settings()) as session:
        rows = outbox.list_outbox(session, operator_of(session, workspace))
        records = [_outbox_record(row) for row in rows]
        lines = [(row.status, row.from_address, row.message_id, row.error or "") for row in rows]
        recipients = [", ".join(r.address for r in row.recipients if r.kind == "to") for row in rows]
    if as_json:
        for record in records:
            typer.echo(json.dumps(record))
        return
    table = Table("status", "from", "to", "message id", "error")
    for (status, sender, message_id, error), to in zip(lines, recipients, strict=True):
        table.add_row(status, sender, to, message_id, error)
    console.print(table)


# --- bulk sends ------------------------------------------------------------------------------------


class BulkMode(StrEnum):
    each = "each"
    one = "one"


@bulk_app.command("send")
def bulk_send(
    workspace: Workspace,
    as_user: Annotated[str, typer.Option("--as", help="The user who sends (needs send_email)")],
    template: Annotated[str, typer.Option(help="A stored template's name")],
    mode: Annotated[BulkMode, typer.Option(help="each: one personalised email per enduser; one: one to all")],
    where: Annotated[
        list[str] | None,
        typer.Option(
            "--where", help="FIELD=VALUE, FIELD!=VALUE, FIELD<VALUE, FIELD>VALUE or FIELD~TEXT; all must hold"
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option("--from", help="Your address (the default), a public address, or account-owner"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count and list the skipped; queue nothing")
    ] = False,
    track_opens: TrackOpens = None,
    track_clicks: TrackClicks = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            "--variant", help="A further template to A/B test against --template (variant A); repeat for more"
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="What decides the A/B test: reply_rate, human_click_rate or open_rate")
    ] = "reply_rate",
    test_share: Annotated[float, typer.Option(help="The share of the audience in the A/B test")] = 0.2,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Send a template to every enduser the filters select; a refused bulk send exits 2 and sends nothing.
    With --variant, a first batch is split between the templates and the rest get the A/B test's winner."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from touchline.db import make_engine, make_sessionmaker, session_scope
    from touchline.kit.crypto import SecretBox
    from touchline.models import BulkSend
    from touchline.outbound.bulk import service as bulk
    from touchline.outbound.bulk import tasks as bulk_tasks
    from touchline.outbound.bulk.schemas import BulkSummaryOut
    from touchline.workspace import service

    tune_garbage_collector()  # it queues in this process, as the worker would
    settings = load_settings()
    configure_jobs(settings)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_sessionmaker(engine)
    try:
        with session_scope(sessions) as session:
            actor = service.actor_for(
                service.find_user_by_email(session, operator_of(session, workspace), as_user)
            )
            wanted = bulk.BulkRequest(
                sender or as_user,
                template,
                None,
                mode.value,
                tuple(where or ()),
                track_opens,
                track_clicks,
                variants=tuple(variant or ()),
                metric=metric,
                test_share=test_share,
            )
            if dry_run:
                summary = BulkSummaryOut.of_plan(bulk.plan(session, actor, wanted, settings=settings))
            else:
                bulk_id = bulk.start(session, actor, wanted, settings=settings, run_job=False).id
        if not dry_run:
            with Progress(
                TextColumn("queueing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=errors
            ) as shown:
                task = shown.add_task("queueing", total=None)
                bulk_tasks.queue_bulk(
                    sessions,
                    SecretBox(settings.secret_keys),
                    settings,
                    bulk_id,
                    on_progress=lambda done, total: shown.update(task, completed=done, total=total),
                )
            with session_scope(sessions) as session:
                row = session.get(BulkSend, bulk_id)
                assert row is not None
                if row.status == bulk.REFUSED:
                    raise bulk.BulkRefused(row.error or "refused")
                summary = BulkSummaryOut.of_bulk(
                    row, bulk.skipped_of(session, operator_of(session, workspace), bulk_id)
                )
    except TouchlineError as error:
        raise fail(f"not sent: {error}", REFUSED_EXIT_CODE) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(summary.model_dump_json())
        return
    console.print(
        f"bulk_id: {summary.bulk_id or '(dry run: nothing queued)'}\nrecipients: {summary.recipients}\n"
        f"queued: {summary.queued}\nskipped: {summary.skipped}"
    )
    for skip in summary.skipped_endusers:
        console.print(f"  skipped {skip.address}: {skip.reason}", markup=False)


@bulk_app.command("show")
def bulk_show(
    workspace: Workspace,
    bulk_id: Annotated[str, typer.Argument(help="The bulk send's id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """A bulk send's progress: queued, skipped, sent, failed, waiting for the sending budget."""
    import uuid
    from datetime import UTC, datetime

    from touchline.outbound.bulk import service as bulk
    from touchline.outbound.bulk.schemas import BulkSendOut

    try:
        wanted = uuid.UUID(bulk_id)
    except ValueError:
        raise fail(f"{bulk_id!r} is not a bulk send id") from None
    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        row = bulk.get_bulk_send(session, operator, wanted)
        shown = BulkSendOut.of(row, bulk.progress(session, operator, row.id, datetime.now(UTC)))
    if as_json:
        typer.echo(shown.model_dump_json(by_alias=True))
        return
    table = Table(
        "status",
        "recipients",
        "queued",
        "skipped",
        "sent",
        "waiting to leave",
        "waiting for budget",
        "failed",
        "unknown",
    )
    table.add_row(
        *(str(value) for value in (shown.status, shown.recipients, shown.queued, shown.skipped, shown.sent)),
        str(shown.in_queue),
        str(shown.waiting),
        str(shown.failed),
        str(shown.unknown),
    )
    console.print(table)
    if shown.continues:
        console.print(f"{shown.continues}: {shown.waiting_reason}", markup=False)
