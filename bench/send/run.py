"""Sending speed, each beside its reference in the same run.

    .venv/bin/python bench/send/run.py [--emails 10000] [--deliveries 2000] [--rounds 3]

1. Rendering personalised emails: touchline's sandboxed template (`outbound.compose.templates.render`,
   with its work budget and all-or-nothing check) for N endusers, beside bare Jinja2 rendering the same
   subject, HTML and text with the same values (autoescaped HTML, no sandbox). Also beside the
   reference: rendering plus the queue-time check of each message (`outbound.compose.mime.
   validate_outgoing`, every rule `build_message` applies, without writing the bytes), which is what
   queueing an email costs. Shown, not compared: rendering plus building each MIME message
   (`build_message`), which is done once per email when it is claimed for delivery. Storing the outbox
   rows is not measured here: bulk sends, which queue many at once, do not exist yet.
2. Delivery: N messages to an aiosmtpd sink on loopback over one connection, through touchline's
   `SmtpSender` (a reply checked per command, refused recipients recorded), beside a bare
   `smtplib.SMTP.sendmail` loop on one connection.

Rounds alternate touchline and its reference; each ratio is touchline's rate over the reference's,
from each side's fastest round (goal: at least 0.5). Times are wall-clock (the sink runs in this
process's event-loop thread, so CPU time would miss half the work).
"""

from __future__ import annotations

import argparse
import datetime as dt
import smtplib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from aiosmtpd.controller import Controller

from touchline.kit.net import AddressPolicy
from touchline.mailboxes.providers.imap import ConnectionSecurity
from touchline.mailboxes.providers.smtp import SmtpAccount
from touchline.outbound.compose import mime
from touchline.outbound.compose.merge import CompanyFields, EnduserFields, MergeContext, SenderFields
from touchline.outbound.compose.mime import Mailbox, OutgoingEmail, build_message, validate_outgoing
from touchline.outbound.compose.templates import EmailTemplate, RenderedEmail, compile_template, render
from touchline.outbound.send.contract import Outgoing
from touchline.outbound.send.smtp import SmtpSender

SUBJECT = "Your {{ company.name }} renewal, {{ enduser.first_name }}"
HTML = """<p>Hello {{ enduser.first_name }},</p>
<p>{{ company.name }}'s plan renews on {{ company.custom.renewal_date }}
for {{ company.custom.seats }} seats.
{% if company.custom.tier == "gold" %}As a gold customer you keep priority support.{% endif %}</p>
<ul>{% for n in range(3) %}
<li>Step {{ n + 1 }} for {{ enduser.first_name | default("you") }}</li>{% endfor %}</ul>
<p>Best,<br>{{ sender.name }}</p>"""
TEXT = """Hello {{ enduser.first_name }},

{{ company.name }}'s plan renews on {{ company.custom.renewal_date }} for {{ company.custom.seats }} seats.

Best,
{{ sender.name }}"""
SENDER = SenderFields(name="Sam Seller", email="sam@touchline.example")


def contexts(count: int) -> list[MergeContext]:
    return [
        MergeContext(
            enduser=EnduserFields(
                email=f"user{n}@customer{n % 97}.example", first_name=f"Pat{n}", last_name="Lee"
            ),
            company=CompanyFields(
                name=f"Customer {n % 97} <Ltd & Co>",
                domain=f"customer{n % 97}.example",
                custom={
                    "renewal_date": dt.date(2027, 1 + n % 12, 1 + n % 28),
                    "seats": 10 + n % 40,
                    "tier": "gold" if n % 3 == 0 else "silver",
                },
            ),
            sender=SENDER,
        )
        for n in range(count)
    ]


def as_plain_values(context: MergeContext) -> dict[str, Any]:
    """The same values as plain dictionaries, for bare Jinja2."""
    company = context.company
    assert company is not None
    return {
        "enduser": {"first_name": context.enduser.first_name, "email": context.enduser.email},
        "company": {"name": company.name, "custom": dict(company.custom)},
        "sender": {"name": context.sender.name},
    }


def touchline_render(items: list[MergeContext]) -> None:
    compiled = compile_template(EmailTemplate(subject=SUBJECT, html=HTML, text=TEXT))
    for context in items:
        rendered = render(compiled, context)
        assert isinstance(rendered, RenderedEmail), rendered


def personalised(items: list[MergeContext]) -> Iterator[OutgoingEmail]:
    """Each recipient's email, rendered by touchline."""
    compiled = compile_template(EmailTemplate(subject=SUBJECT, html=HTML, text=TEXT))
    date = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
    for context in items:
        rendered = render(compiled, context)
        assert isinstance(rendered, RenderedEmail), rendered
        yield OutgoingEmail(
            sender=Mailbox(SENDER.email, SENDER.name),
            to=(Mailbox(context.enduser.email),),
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            date=date,
        )


def touchline_render_and_validate(items: list[MergeContext]) -> None:
    # Every round checks its recipients' addresses anew, as a send to people not seen before would:
    # only the sender's is remembered from one email to the next.
    mime._address_spec.cache_clear()
    for email in personalised(items):
        validate_outgoing(email, "touchline.example")


def touchline_render_and_build(items: list[MergeContext]) -> None:
    mime._address_spec.cache_clear()
    for email in personalised(items):
        build_message(email, "touchline.example")


def bare_render(items: list[dict[str, Any]]) -> None:
    html_env = jinja2.Environment(autoescape=True)
    text_env = jinja2.Environment(autoescape=False)  # noqa: S701 -- subject and text are not HTML
    subject, html, text = (
        text_env.from_string(SUBJECT),
        html_env.from_string(HTML),
        text_env.from_string(TEXT),
    )
    for values in items:
        subject.render(values)
        html.render(values)
        text.render(values)


@dataclass
class CountingSink:
    received: int = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.received += 1
        return "250 2.0.0 queued as bench"


def messages(count: int) -> list[Outgoing]:
    date = dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC)
    built = []
    for n in range(count):
        message = build_message(
            OutgoingEmail(
                sender=Mailbox("sam@touchline.example", "Sam Seller"),
                to=(Mailbox(f"user{n}@customer.example"),),
                subject=f"Renewal {n}",
                text="Hello,\n\nyour renewal is due next month.\n" * 20,
                html="<p>Hello,</p><p>your renewal is due next month.</p>" * 20,
                date=date,
            ),
            "touchline.example",
        )
        built.append(Outgoing(message.raw, "sam@touchline.example", message.recipients, message.message_id))
    return built


def touchline_deliver(port: int, items: list[Outgoing]) -> None:
    account = SmtpAccount(
        host="127.0.0.1",
        port=port,
        security=ConnectionSecurity.PLAIN,
        addresses=AddressPolicy(allow_private=True),
    )
    sender = SmtpSender(account)
    try:
        for outgoing in items:
            sender.deliver(outgoing)
    finally:
        sender.close()


def bare_deliver(port: int, items: list[Outgoing]) -> None:
    with smtplib.SMTP("127.0.0.1", port) as client:
        for outgoing in items:
            client.sendmail(outgoing.envelope_from, list(outgoing.recipients), outgoing.raw)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def fastest(rounds: int, runs: dict[str, Callable[[], None]]) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--deliveries", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    items = contexts(options.emails)
    plain = [as_plain_values(context) for context in items]
    render_times = fastest(
        options.rounds,
        {
            "touchline": lambda: touchline_render(items),
            "jinja2": lambda: bare_render(plain),
            "touchline+check": lambda: touchline_render_and_validate(items),
            "touchline+mime": lambda: touchline_render_and_build(items),
        },
    )
    n = options.emails
    print(f"render {n} personalised emails (fastest of {options.rounds}):")
    for name, seconds in render_times.items():
        print(f"  {name:15} {seconds:7.2f} s  {n / seconds:9.0f} emails/s")
    ratio = render_times["jinja2"] / render_times["touchline"]
    print(f"  ratio touchline / bare Jinja2: {ratio:.2f} (goal >= 0.5)")
    ratio = render_times["jinja2"] / render_times["touchline+check"]
    print(f"  ratio touchline render + queue-time check / bare Jinja2: {ratio:.2f} (goal >= 0.5)")

    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        outgoing = messages(options.deliveries)
        deliver_times = fastest(
            options.rounds,
            {
                "touchline": lambda: touchline_deliver(port, outgoing),
                "smtplib": lambda: bare_deliver(port, outgoing),
            },
        )
    finally:
        controller.stop()
    assert sink.received == 2 * options.rounds * options.deliveries, sink.received
    d = options.deliveries
    print(f"deliver {d} messages to a loopback sink on one connection (fastest of {options.rounds}):")
    for name, seconds in deliver_times.items():
        print(f"  {name:15} {seconds:7.2f} s  {d / seconds:9.0f} messages/s")
    ratio = deliver_times["smtplib"] / deliver_times["touchline"]
    print(f"  ratio touchline / bare smtplib: {ratio:.2f} (goal >= 0.5)")


if __name__ == "__main__":
    main()
