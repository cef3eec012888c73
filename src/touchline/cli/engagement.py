"""What came of the emails sent: engagement records, analytics by group, and A/B tests."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from touchline.cli.common import Workspace, console, fail, load_settings, operator_of, transaction

engagement_app = typer.Typer(help="What came of the emails touchline sent.", no_args_is_help=True)
experiment_app = typer.Typer(help="A/B tests of template variants and their decisions.", no_args_is_help=True)


@engagement_app.command("list")
def engagement_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Every sent email's Email Engagement record, newest first: rates (null: not tracked), bounce, events."""
    from touchline.outbound.engagement import service as engagement

    lines = []
    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        after = None
        while True:
            rows = engagement.list_engagements(session, operator, after=after, limit=500)
            for record, row, events in rows:
                lines.append(
                    {
                        "email_id": str(row.id),
                        "message_id": row.message_id,
                        "sender": row.from_address,
                        "first_recipient": record.recipient_address,
                        "template": record.template_name,
                        "sequence": str(record.sequence_id) if record.sequence_id else None,
                        "step": record.sequence_step,
                        "bulk_id": str(record.bulk_id) if record.bulk_id else None,
                        "variant": record.variant or None,
                        "open_rate": record.open_rate,
                        "click_rate": record.click_rate,
                        "reply_rate": record.reply_rate,
                        "human_open_rate": record.human_open_rate,
                        "human_click_rate": record.human_click_rate,
                        "bounce": record.bounce,
                        "events": events,
                    }
                )
            if len(rows) < 500:
                break
            after = (rows[-1][0].sent_at, rows[-1][0].id)
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    table = Table("sender", "to", "template", "open", "click", "reply", "human open", "human click", "bounce")
    for line in lines:
        shown = [
            "-" if line[key] is None else str(line[key])
            for key in ("open_rate", "click_rate", "reply_rate", "human_open_rate", "human_click_rate")
        ]
        table.add_row(
            str(line["sender"]),
            str(line["first_recipient"]),
            str(line["template"] or ""),
            *shown,
            str(line["bounce"] or ""),
        )
    console.print(table)


# --- analytics -----------------------------------------------------------------------------------


class AnalyticsBy(StrEnum):
    template = "template"
    sequence = "sequence"
    step = "step"
    variant = "variant"
    sender = "sender"
    company = "company"
    week = "week"


ANALYTICS_RATES = ("open_rate", "human_open_rate", "click_rate", "human_click_rate", "reply_rate")


def analytics(
    workspace: Workspace,
    by: Annotated[AnalyticsBy, typer.Option("--by", help="What to group the sent emails by")],
    start: Annotated[str | None, typer.Option("--from", help="First UTC day sent, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last UTC day sent (included), YYYY-MM-DD")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """Average open, click and reply rates (percent; raw and human-only) of every sent email, by group.
    A rate of emails sent with that tracking off is left out of its average; "-": none had it on."""
    from datetime import date

    from touchline.outbound.analytics import service as analytics_service

    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError:
        raise fail("--from and --to are dates written YYYY-MM-DD") from None
    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        groups = analytics_service.engagement_groups(
            session, operator, by.value, analytics_service.AnalyticsFilter(start=first, end=last)
        )
    # A company's metrics also say when it was last in touch and how much mail came from it and went to it.
    per_company = by is AnalyticsBy.company
    lines = [
        {"group": group.label, "sent": group.counts.sent}
        | {name: getattr(group.rates, name) for name in ANALYTICS_RATES}
        | (
            {
                "emails_in": group.emails_in,
                "emails_out": group.emails_out,
                "last_touch_at": group.last_touch_at.isoformat() if group.last_touch_at else None,
            }
            if per_company
            else {}
        )
        for group in groups
    ]
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    extra = ("emails in", "emails out", "last touch") if per_company else ()
    table = Table(by.value, "sent", "open %", "human open %", "click %", "human click %", "reply %", *extra)
    for line in lines:
        table.add_row(
            str(line["group"]),
            str(line["sent"]),
            *("-" if line[name] is None else f"{line[name]:.1f}" for name in ANALYTICS_RATES),
            *(
                (str(line["emails_in"]), str(line["emails_out"]), str(line["last_touch_at"] or "-")[:16])
                if per_company
                else ()
            ),
        )
    console.print(table)


# --- A/B tests ------------------------------------------------------------------------------------


@experiment_app.command("list")
def experiment_list(
    workspace: Workspace,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
) -> None:
    """A/B tests, newest first: metric, state and winner."""
    from touchline.outbound.experiments import service as experiments

    with transaction(load_settings()) as session:
        found = experiments.list_experiments(session, operator_of(session, workspace))
        lines = [
            {
                "id": str(one.id),
                "name": one.name,
                "metric": one.metric,
                "variants": [variant.label for variant in experiments.variants_of(one)],
                "state": one.state,
                "winner": one.winner,
                "decided_by": one.decided_by,
            }
            for one in found
        ]
    if as_json:
        for line in lines:
            typer.echo(json.dumps(line))
        return
    table = Table("id", "name", "metric", "variants", "state", "winner", "decided by")
    for line in lines:
        table.add_row(
            str(line["id"]),
            str(line["name"]),
            str(line["metric"]),
            " ".join(line["variants"]),  # type: ignore[arg-type]
            str(line["state"]),
            str(line["winner"] or ""),
            str(line["decided_by"] or ""),
        )
    console.print(table)


@experiment_app.command("show")
def experiment_show(
    workspace: Workspace,
    experiment_id: Annotated[str, typer.Argument(help="The A/B test's id")],
    as_json: Annotated[bool, typer.Option("--json", help="The test as one JSON object")] = False,
) -> None:
    """One A/B test: each variant's sends, successes, rate and interval, the test's statistic and
    bound, and the decision once made."""
    import uuid

    from touchline.outbound.experiments import schemas
    from touchline.outbound.experiments import service as experiments

    try:
        wanted = uuid.UUID(experiment_id)
    except ValueError:
        raise fail(f"{experiment_id!r} is not an A/B test id") from None
    with transaction(load_settings()) as session:
        operator = operator_of(session, workspace)
        experiment = experiments.get_experiment(session, operator, wanted)
        detail = schemas.detail_of(experiments.running_numbers(session, experiment))
    if as_json:
        typer.echo(detail.model_dump_json())
        return
    console.print(f"{detail.name} ({detail.metric}): {detail.state}", markup=False)
    if detail.warning:
        console.print(f"warning: {detail.warning}", markup=False)
    table = Table("variant", "template", "sends", "successes", "rate", "interval")
    for variant in detail.variants:
        rate = "-" if variant.rate is None else f"{variant.rate:.1%}"
        interval = f"{variant.rate_low:.1%} to {variant.rate_high:.1%}"
        table.add_row(
            variant.label, variant.template, str(variant.sends), str(variant.successes), rate, interval
        )
    console.print(table)
    test = detail.test
    console.print(
        f"test: statistic {test.statistic:.3g}, bound {test.bound:.3g},"
        f" p-value {test.p_value:.3g} ({test.reason})",
        markup=False,
    )
    if detail.winner is not None:
        console.print(
            f"decided {detail.decided_at:%Y-%m-%d %H:%M} UTC by {detail.decided_by}: winner {detail.winner}",
            markup=False,
        )
