"""Email Engagement records on both databases: refreshed from events (labels written back, idempotent,
notices once), replies attributed by In-Reply-To and References, bounces and undeliverable contacts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import touchline.outbound.engagement.tasks  # noqa: F401 -- declares the jobs this file sends
from tests.conftest import Team
from tests.outbound.engagement.conftest import (
    Notifications,
    add_contact,
    add_event,
    bare,
    link_ids,
    sent_email,
    stored_email,
)
from touchline.db import session_scope
from touchline.inbound.reports.model import DELIVERY_REPORT_JOB, STORED_JOB, DeliveryReport, RecipientReport
from touchline.models import Contact, EmailEngagement, EngagementEvent, OutboundEmail
from touchline.outbound.engagement import REFRESH_JOB, service
from touchline.worker import current_queue

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def record_of(sessions: sessionmaker[Session], outbound_id: uuid.UUID) -> EmailEngagement:
    with session_scope(sessions) as session:
        record = session.scalar(
            select(EmailEngagement).where(EmailEngagement.outbound_email_id == outbound_id)
        )
        assert record is not None
        session.expunge(record)
        return record


def refresh(sessions: sessionmaker[Session], *outbound_ids: uuid.UUID) -> None:
    with session_scope(sessions) as session:
        service.refresh_and_tell(session, outbound_ids)


def message_id_of(sessions: sessionmaker[Session], outbound_id: uuid.UUID) -> str:
    with session_scope(sessions) as session:
        row = session.get(OutboundEmail, outbound_id)
        assert row is not None
        return bare(row.message_id)


def test_a_sent_email_has_an_empty_record_credited_to_the_first_enduser(
    sessions: sessionmaker[Session], team: Team
) -> None:
    customer = add_contact(sessions, team, "ana@globex.example", company="Globex")
    outbound = sent_email(sessions, team, ["someone@elsewhere.example", customer.address], track_clicks=False)
    record = record_of(sessions, outbound)
    assert (record.contact_id, record.recipient_address) == (customer.contact_id, customer.address)
    assert (record.open_rate, record.click_rate, record.reply_rate) == (0, None, 0)
    assert (record.human_open_rate, record.human_click_rate, record.bounce) == (0, None, None)


def test_refresh_labels_machine_events_and_tells_the_sender_once(
    sessions: sessionmaker[Session], team: Team, notifications: Notifications
) -> None:
    customer = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [customer.address], links=3)
    links = link_ids(sessions, outbound)
    scanner = [
        add_event(sessions, team, outbound, "click", timedelta(seconds=30 + n / 2), link_id=link)
        for n, link in enumerate(links)
    ]
    proxy = add_event(
        sessions, team, outbound, "open", timedelta(seconds=1), machine_reason="Apple Private Relay"
    )
    soon = add_event(sessions, team, outbound, "open", timedelta(seconds=1.5))
    refresh(sessions, outbound)
    record = record_of(sessions, outbound)
    assert (record.open_rate, record.click_rate, record.human_open_rate, record.human_click_rate) == (
        100,
        100,
        None,
        None,
    )
    assert notifications.calls == []  # machine-only events tell nobody
    with session_scope(sessions) as session:
        rows = session.execute(select(EngagementEvent.id, EngagementEvent.machine_reason))
        reasons = {row.id: row.machine_reason for row in rows}
    assert {reasons[one] for one in scanner} == {"every link clicked within 2 s"}
    assert reasons[proxy] == "Apple Private Relay"  # a request-level reason is kept
    assert reasons[soon] == "open 1.5 s after sending (within 2 s)"

    add_event(sessions, team, outbound, "open", timedelta(hours=1))
    add_event(sessions, team, outbound, "click", timedelta(hours=1, minutes=1), link_id=links[1])
    refresh(sessions, outbound)
    refresh(sessions, outbound)  # idempotent: nothing new the second time
    record = record_of(sessions, outbound)
    assert (record.human_open_rate, record.human_click_rate, record.opens, record.human_opens) == (
        100,
        100,
        3,
        1,
    )
    assert (record.clicks, record.human_clicks) == (4, 1)
    assert record.first_event_at == datetime(2026, 12, 1, 9, 0, 1, tzinfo=UTC)
    [call] = notifications.calls
    assert call["workspace_id"] == str(team.workspace_id)
    assert call["user_id"] == str(team.member_id)
    assert [(n["kind"], n["detail"]) for n in call["notices"]] == [
        ("open", ""),
        ("click", "https://example.com/1"),
    ]
    assert call["notices"][0]["recipient"] == customer.address
    assert call["notices"][0]["subject"] == "Your renewal"
    assert call["notices"][0]["outbound_id"] == str(outbound)


def test_a_reply_to_a_forward_by_the_recipients_colleague_counts(
    sessions: sessionmaker[Session], team: Team, notifications: Notifications
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example", company="Globex")
    colleague = add_contact(sessions, team, "bo@globex.example", company="Globex")
    outbound = sent_email(sessions, team, [ana.address])
    ours = message_id_of(sessions, outbound)
    # Ana forwarded it to Bo; Bo answers the forward, whose id is not ours.
    reply = stored_email(
        sessions,
        team,
        colleague.address,
        in_reply_to=("fwd-1@globex.example",),
        references=(ours, "fwd-1@globex.example"),
    )
    with session_scope(sessions) as session:
        touched = service.record_replies(session, team.workspace_id, [reply], NOW)
        service.refresh_and_tell(session, touched)
    assert touched == [outbound]
    record = record_of(sessions, outbound)
    assert (record.reply_rate, record.open_rate, record.human_open_rate, record.replies) == (100, 100, 100, 1)
    assert record.contact_id == ana.contact_id  # credited to the first enduser, whoever replied
    [call] = notifications.calls
    assert [n["kind"] for n in call["notices"]] == ["reply"]  # a reply is no pixel: no open notice
    assert call["notices"][-1]["detail"] == "Re: Your renewal"


def test_a_reply_to_the_second_of_two_tracked_emails_counts_for_the_second(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    first = sent_email(sessions, team, [ana.address])
    second = sent_email(sessions, team, [ana.address], sent_at=datetime(2026, 12, 2, tzinfo=UTC))
    ids = [message_id_of(sessions, first), message_id_of(sessions, second)]
    reply = stored_email(sessions, team, ana.address, in_reply_to=(ids[1],), references=tuple(ids))
    by_references = stored_email(
        sessions, team, ana.address, in_reply_to=("unknown@x.example",), references=tuple(ids)
    )
    with session_scope(sessions) as session:
        assert service.record_replies(session, team.workspace_id, [reply], NOW) == [second]
        # No tracked email in In-Reply-To: the nearest (last) tracked one in References.
        assert service.record_replies(session, team.workspace_id, [by_references], NOW) == [second]
        # Recorded once, however often the job runs.
        assert service.record_replies(session, team.workspace_id, [reply], NOW) == []
        service.refresh_and_tell(session, [first, second])
    assert record_of(sessions, first).reply_rate == 0
    assert record_of(sessions, second).replies == 2


def test_internal_replies_and_strangers_are_ignored_and_auto_replies_recorded_as_such(
    sessions: sessionmaker[Session], team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address])
    ours = (message_id_of(sessions, outbound),)
    internal = stored_email(sessions, team, "admin@team-a.example", in_reply_to=ours)
    stranger = stored_email(sessions, team, "who@nowhere.example", in_reply_to=ours)
    away = stored_email(
        sessions, team, ana.address, in_reply_to=ours, automatic="Auto-Submitted: auto-replied"
    )
    with session_scope(sessions) as session:
        assert service.record_replies(session, team.workspace_id, [internal, stranger], NOW) == []
        assert service.record_replies(session, team.workspace_id, [away], NOW) == [outbound]
        service.refresh_and_tell(session, [outbound])
        kinds = list(session.scalars(select(EngagementEvent.kind)))
    assert kinds == ["auto_reply"]
    record = record_of(sessions, outbound)
    assert (record.reply_rate, record.auto_replies, record.open_rate) == (0, 1, 0)


def _report(message_id: str, *recipients: RecipientReport) -> DeliveryReport:
    kinds = [r.kind for r in recipients]
    return DeliveryReport(
        kind="hard" if "hard" in kinds else recipients[0].kind,
        recipients=recipients,
        returned_message_ids=(f"<{message_id}>",),
        received_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
    )


def test_a_hard_bounce_marks_the_contact_undeliverable_and_never_creates_one(
    sessions: sessionmaker[Session], team: Team, notifications: Notifications
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address, "unknown@globex.example"])
    report = _report(
        message_id_of(sessions, outbound),
        RecipientReport("ana@globex.example", "hard", "failed", "5.1.1", "550 5.1.1 user unknown"),
        RecipientReport("unknown@globex.example", "delayed", "delayed", "4.4.1", "no answer"),
    )
    with session_scope(sessions) as session:
        assert (
            service.record_bounce(session, team.workspace_id, DeliveryReport.from_json(report.to_json()), NOW)
            == outbound
        )
        service.refresh_and_tell(session, [outbound])
    with session_scope(sessions) as session:
        contact = session.get(Contact, ana.contact_id)
        assert contact is not None
        assert contact.undeliverable_reason == "hard bounce 5.1.1: 550 5.1.1 user unknown"
        assert contact.undeliverable_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        assert session.scalar(select(Contact).where(Contact.email == "unknown@globex.example")) is None
        details = sorted(
            (e.detail["address"], e.detail["kind"]) for e in session.scalars(select(EngagementEvent))
        )
    assert details == [("ana@globex.example", "hard"), ("unknown@globex.example", "delayed")]
    record = record_of(sessions, outbound)
    assert (record.bounce, record.bounces) == ("hard", 1)
    [call] = notifications.calls
    assert [(n["kind"], n["detail"]) for n in call["notices"]] == [("bounce", "hard 5.1.1")]


def test_a_report_on_no_email_of_the_workspace_records_nothing(
    sessions: sessionmaker[Session], team: Team, other_team: Team
) -> None:
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address])
    report = _report(
        message_id_of(sessions, outbound), RecipientReport(ana.address, "hard", "failed", "5.1.1")
    )
    with session_scope(sessions) as session:
        assert service.record_bounce(session, other_team.workspace_id, report, NOW) is None
        assert (
            service.record_bounce(
                session, team.workspace_id, _report("nobody@x.example", *report.recipients), NOW
            )
            is None
        )
        assert session.scalar(select(EngagementEvent.id)) is None


def test_inbounds_named_jobs_reach_engagement(
    sessions: sessionmaker[Session], team: Team, notifications: Notifications
) -> None:
    """The jobs inbound sends, with the kwargs its contract names, run on the worker's queue."""
    ana = add_contact(sessions, team, "ana@globex.example")
    outbound = sent_email(sessions, team, [ana.address])
    ours = message_id_of(sessions, outbound)
    reply = stored_email(sessions, team, ana.address, in_reply_to=(ours,))
    queue = current_queue()
    queue.send(STORED_JOB, workspace_id=str(team.workspace_id), email_ids=[str(reply)])
    report = _report(ours, RecipientReport(ana.address, "soft", "failed", "4.2.2", "mailbox full"))
    queue.send(DELIVERY_REPORT_JOB, workspace_id=str(team.workspace_id), report=report.to_json())
    queue.send(REFRESH_JOB, outbound_ids=[str(outbound)])
    record = record_of(sessions, outbound)
    assert (record.reply_rate, record.bounce) == (100, "soft")
    assert [[n["kind"] for n in call["notices"]] for call in notifications.calls] == [["reply"], ["bounce"]]
