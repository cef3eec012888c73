"""Bounces and automatic replies through the log address."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from tests.inbound.reports.samples import delivery_report
from tests.jobs_seam import sent_jobs
from tests.receive.conftest import CUSTOMER, LogWorld, message
from tests.receive.test_smtp import send
from touchline.inbound.receive.smtp import InboundServer
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB, DeliveryReport
from touchline.worker import current_queue

MEMBER = "member@team-a.example"
SENT = "<renewal-1@team-a.example>"


def _forward_as_attachment(attached: bytes, *, body: str = "FYI, this bounced.\n") -> bytes:
    forward = EmailMessage()
    forward["From"] = f"Mia Member <{MEMBER}>"
    forward["To"] = "log@log.test.example"
    forward["Subject"] = "Fwd: Undelivered Mail Returned to Sender"
    forward["Message-ID"] = "<fwd-1@team-a.example>"
    forward.set_content(body)
    forward.add_attachment(email.message_from_bytes(attached, policy=policy.default))
    return forward.as_bytes(policy=policy.SMTP)


def test_a_bounce_forwarded_as_an_attachment_is_passed_on_not_stored(
    world: LogWorld, smtp_server: InboundServer
) -> None:
    raw = _forward_as_attachment(delivery_report(SENT, f"gone@{CUSTOMER}", to=MEMBER))

    code, reply = send(smtp_server, MEMBER, [world.log_address], raw)

    assert code == 250, reply
    assert world.emails() == []
    [sent] = sent_jobs(current_queue(), DELIVERY_REPORT_JOB)
    assert sent["workspace_id"] == str(world.team.workspace_id)
    report = DeliveryReport.from_json(sent["report"])
    assert report.returned_message_ids == (SENT,)
    assert report.kind == "hard"
    assert report.mailbox_id is None
    assert sent_jobs(current_queue(), STORED_JOB) == []


def test_a_bounce_quoted_in_a_forwards_text_is_a_persons_mail(
    world: LogWorld, smtp_server: InboundServer
) -> None:
    quoted = delivery_report(SENT, f"gone@{CUSTOMER}").decode()
    raw = message("Fwd: Undelivered Mail Returned to Sender", body=f"Why did this fail?\n\n{quoted}")

    code, reply = send(smtp_server, MEMBER, [world.log_address], raw)

    assert code == 250, reply
    [record] = world.emails()
    assert sent_jobs(current_queue(), DELIVERY_REPORT_JOB) == []
    [stored] = sent_jobs(current_queue(), STORED_JOB)
    assert stored["email_ids"] == [str(record["id"])]


def test_an_automatic_reply_is_logged_with_why(world: LogWorld, smtp_server: InboundServer) -> None:
    raw = message("Automatic reply: Renewal", body="I am out of the office until Monday.\n")
    raw = raw.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:", 1)

    code, reply = send(smtp_server, MEMBER, [world.log_address], raw)

    assert code == 250, reply
    [record] = world.emails()
    assert world.email(str(record["id"])).automatic == "Auto-Submitted: auto-replied"
    assert record["companies"] == [str(world.company_id)]
