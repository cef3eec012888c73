"""A synced mailbox receives a bounce for a sent message and an out-of-office reply (real Dovecot)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.inbound.reports.samples import delivery_report, out_of_office
from tests.jobs_seam import sent_jobs
from tests.sync.conftest import CUSTOMER, SyncWorld, message
from touchline.db import session_scope
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB, DeliveryReport
from touchline.models import Contact, Email
from touchline.worker import current_queue

pytestmark = pytest.mark.dovecot

NOW = dt.datetime.now(dt.UTC)
SENT = "<sent-renewal@touchline-team.example>"


def test_a_bounce_is_sent_on_and_an_out_of_office_is_stored_as_automatic(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    world.dovecot.append(imap, "INBOX", delivery_report(SENT, f"gone@{CUSTOMER}"), received_at=NOW)
    world.dovecot.append(imap, "INBOX", out_of_office(f"Erin <erin@{CUSTOMER}>", SENT), received_at=NOW)
    world.dovecot.append(imap, "INBOX", message("Renewal question"), received_at=NOW)
    mailbox_id = world.connect(user_id, imap)

    world.sync(mailbox_id)

    with session_scope(world.sessions) as session:
        stored = {row.subject: row.automatic for row in session.scalars(select(Email))}
        contacts = set(session.scalars(select(Contact.email)))
    # The bounce is no conversation and creates no contact; the out-of-office is one, marked.
    assert stored == {"Automatic reply: Renewal": "Auto-Submitted: auto-replied", "Renewal question": None}
    assert f"gone@{CUSTOMER}" not in contacts
    assert not any(address.startswith("mailer-daemon") for address in contacts)
    queue = current_queue()
    [report_job] = sent_jobs(queue, DELIVERY_REPORT_JOB)
    assert report_job["workspace_id"] == str(world.workspace_id)
    report = DeliveryReport.from_json(report_job["report"])
    assert report.returned_message_ids == (SENT,)
    assert report.kind == "hard"
    assert report.mailbox_id == str(mailbox_id)
    assert [one.address for one in report.recipients] == [f"gone@{CUSTOMER}"]
    [stored_job] = sent_jobs(queue, STORED_JOB)
    with session_scope(world.sessions) as session:
        ids = {str(one) for one in session.scalars(select(Email.id))}
    assert set(stored_job["email_ids"]) == ids

    # A second run stores nothing new and sends nothing more.
    world.sync(mailbox_id)
    assert len(sent_jobs(queue, STORED_JOB)) == 1
