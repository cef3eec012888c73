"""Recording notices (coalescing), and delivering them by webhook, Slack and email, with retries."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.outbound.notify.conftest import WebhookReceiver, make_sent_email
from tests.outbound.notify.helpers import configure, deliveries, notice
from tests.services.smtp_sink import SmtpSink
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.outbound.notify import channels, service, signature, tasks
from touchline.outbound.notify.service import MAX_ATTEMPTS, SettingsChange

ALL = ("open", "click", "reply", "bounce")


def test_repeated_events_within_the_window_make_one_notification_whose_count_grows(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
) -> None:
    configure(
        sessions, box, notify_settings, team, SettingsChange({"browser": ALL}, coalesce_minutes=10), clock.now
    )
    other_email = make_sent_email(sessions, team, "Other")
    tell = lambda *notices: tasks.record_and_deliver(  # noqa: E731
        sessions, box, notify_settings, team.workspace_id, team.member_id, list(notices), clock=clock
    )
    tell(notice(sent_email, clock.now))
    clock.advance(minutes=4)
    tell(notice(sent_email, clock.now, detail="https://acme.example/terms"), notice(sent_email, clock.now))
    tell(
        notice(other_email, clock.now),
        notice(sent_email, clock.now, kind="reply", detail="Re: Renewal plans"),
    )
    rows = deliveries(sessions, "browser")
    assert [(row.outbound_email_id, row.kind, row.coalesced_count) for row in rows] == [
        (sent_email, "click", 3),
        (other_email, "click", 1),
        (sent_email, "reply", 1),
    ]
    assert rows[0].detail == "https://acme.example/pricing"  # the latest event's detail
    assert rows[0].status == "sent"
    # Past the window, a repeat is a new notification.
    clock.advance(minutes=7)
    tell(notice(sent_email, clock.now))
    assert [row.coalesced_count for row in deliveries(sessions, "browser") if row.kind == "click"] == [
        3,
        1,
        1,
    ]


def test_a_zero_window_coalesces_nothing_and_unwanted_kinds_make_nothing(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"browser": ("click",)}, coalesce_minutes=0),
        clock.now,
    )
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [
            notice(sent_email, clock.now),
            notice(sent_email, clock.now),
            notice(sent_email, clock.now, kind="open"),
        ],
        clock=clock,
    )
    assert [(row.kind, row.coalesced_count) for row in deliveries(sessions)] == [("click", 1), ("click", 1)]


def test_an_email_of_another_workspace_is_never_notified(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    other_team: Team,
    clock: FakeClock,
) -> None:
    foreign = make_sent_email(sessions, other_team)
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [notice(foreign, clock.now)],
        clock=clock,
    )
    assert deliveries(sessions) == []


def test_the_generic_webhook_is_signed_and_a_receiver_verifies_it(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    secret = configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"webhook": ALL}, webhook_url=receiver.url, generate_secret=True),
        clock.now,
    )
    assert secret is not None
    assert secret.startswith("whsec_")
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [posted] = receiver.posted
    assert posted.path == "/hooks/touchline?team=a"
    timestamp = posted.headers["x-touchline-timestamp"]
    assert timestamp == str(int(clock.now.timestamp()))
    assert posted.headers["x-touchline-signature"].startswith("sha256=")
    now = clock.now.timestamp()
    assert signature.verify(secret, timestamp, posted.headers["x-touchline-signature"], posted.body, now)
    # A receiver refuses a changed body, another secret, and a replay outside its tolerance.
    assert not signature.verify(
        secret, timestamp, posted.headers["x-touchline-signature"], posted.body + b" ", now
    )
    assert not signature.verify(
        "whsec_other", timestamp, posted.headers["x-touchline-signature"], posted.body, now
    )
    assert not signature.verify(
        secret, timestamp, posted.headers["x-touchline-signature"], posted.body, now + 301
    )
    body = json.loads(posted.body)
    assert (body["kind"], body["outbound_id"], body["recipient"], body["detail"], body["count"]) == (
        "click",
        str(sent_email),
        "jo@customer.example",
        "https://acme.example/pricing",
        1,
    )
    [row] = deliveries(sessions, "webhook")
    assert (row.status, row.attempts, row.sent_at, row.last_error) == ("sent", 1, clock.now, None)


def test_slack_gets_a_text_message(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"slack": ("bounce",)}, slack_url=receiver.url),
        clock.now,
    )
    bounce = notice(sent_email, clock.now, kind="bounce", detail="hard · 5.1.1")
    tasks.record_and_deliver(
        sessions, box, notify_settings, team.workspace_id, team.member_id, [bounce], clock=clock
    )
    [posted] = receiver.posted
    assert posted.headers["content-type"] == "application/json"
    assert "x-touchline-signature" not in posted.headers
    assert json.loads(posted.body) == {"text": "“Renewal plans” to jo@customer.example bounced\nhard · 5.1.1"}


def test_failed_posts_are_retried_with_backoff_and_recorded(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"slack": ALL}, slack_url=receiver.url),
        clock.now,
    )
    receiver.answer(503, times=2)
    receiver.answer(429, {"Retry-After": "600"})
    start = clock.now
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [row] = deliveries(sessions)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, start + timedelta(seconds=30))
    assert row.last_error == "the webhook answered 503 Service Unavailable"
    clock.advance(seconds=29)
    assert tasks.retry_due(sessions, box, notify_settings, clock=clock) == {}  # not due yet
    clock.advance(seconds=1)
    assert tasks.retry_due(sessions, box, notify_settings, clock=clock) == {row.id: "pending"}
    [row] = deliveries(sessions)
    assert (row.attempts, row.next_attempt_at) == (2, clock.now + timedelta(minutes=1))  # twice as long
    clock.advance(minutes=1)
    tasks.retry_due(sessions, box, notify_settings, clock=clock)
    [row] = deliveries(sessions)
    # 429 asks for ten minutes, longer than the backoff's two: the server's wish wins.
    assert (row.attempts, row.next_attempt_at, row.last_error) == (
        3,
        clock.now + timedelta(minutes=10),
        "the webhook answered 429 Too Many Requests",
    )
    clock.advance(minutes=10)
    assert tasks.retry_due(sessions, box, notify_settings, clock=clock) == {row.id: "sent"}
    [row] = deliveries(sessions)
    assert (row.status, row.attempts, row.last_error, row.sent_at) == ("sent", 4, None, clock.now)
    assert len(receiver.posted) == 4


def test_a_client_error_fails_at_once_and_retries_stop_after_the_last_attempt(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"slack": ALL}, slack_url=receiver.url),
        clock.now,
    )
    receiver.answer(404)
    receiver.answer(500, times=MAX_ATTEMPTS)
    other = make_sent_email(sessions, team, "Other")
    tell = [notice(sent_email, clock.now), notice(other, clock.now)]
    tasks.record_and_deliver(
        sessions, box, notify_settings, team.workspace_id, team.member_id, tell, clock=clock
    )
    failed, retried = deliveries(sessions)
    assert (failed.status, failed.attempts, failed.next_attempt_at) == ("failed", 1, None)
    assert failed.last_error == "the webhook answered 404 Not Found"
    for _ in range(MAX_ATTEMPTS - 1):
        clock.advance(hours=1)
        tasks.retry_due(sessions, box, notify_settings, clock=clock)
    _, retried = deliveries(sessions)
    assert (retried.status, retried.attempts, retried.next_attempt_at) == ("failed", MAX_ATTEMPTS, None)
    assert len(receiver.posted) == 1 + MAX_ATTEMPTS


def test_a_timeout_is_retried(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"slack": ALL}, slack_url=receiver.url),
        clock.now,
    )
    monkeypatch.setattr(channels, "WEBHOOK_TIMEOUT_SECONDS", 0.3)
    receiver.hold = True
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [row] = deliveries(sessions)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "127.0.0.1 did not answer within 0.3 seconds"


def test_email_goes_to_the_users_own_address_through_the_relay(
    sessions: sessionmaker[Session],
    box: SecretBox,
    relay_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    open_relay: SmtpSink,
) -> None:
    configure(sessions, box, relay_settings, team, SettingsChange({"email": ("reply",)}), clock.now)
    reply = notice(sent_email, clock.now, kind="reply", detail="Re: Renewal plans")
    tasks.record_and_deliver(
        sessions, box, relay_settings, team.workspace_id, team.member_id, [reply], clock=clock
    )
    [received] = open_relay.received
    assert received.recipients == ("member@team-a.example",)
    assert received.message["Subject"] == "jo@customer.example replied to “Renewal plans”"
    assert "Re: Renewal plans" in received.part("text/plain")
    [row] = deliveries(sessions, "email")
    assert (row.status, row.attempts) == ("sent", 1)


def test_email_refused_by_the_relay_is_retried(
    sessions: sessionmaker[Session],
    box: SecretBox,
    relay_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    open_relay: SmtpSink,
) -> None:
    configure(sessions, box, relay_settings, team, SettingsChange({"email": ALL}), clock.now)
    open_relay.reply_next("MAIL", "451 4.3.0 try again later")
    tasks.record_and_deliver(
        sessions,
        box,
        relay_settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [row] = deliveries(sessions, "email")
    assert (row.status, row.attempts) == ("pending", 1)
    assert "451" in (row.last_error or "")
    clock.advance(seconds=30)
    tasks.retry_due(sessions, box, relay_settings, clock=clock)
    assert deliveries(sessions, "email")[0].status == "sent"
    assert len(open_relay.received) == 1


def test_a_delivery_whose_worker_died_mid_attempt_is_taken_again_when_its_lease_ends(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    sent_email: uuid.UUID,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({"slack": ("click",)}, slack_url=receiver.url),
        clock.now,
    )
    with session_scope(sessions) as session:
        [delivery_id] = service.record_notices(
            session,
            notify_settings,
            team.workspace_id,
            team.member_id,
            [notice(sent_email, clock.now)],
            clock.now,
        )
    with session_scope(sessions) as session:
        assert service.claim(session, box, delivery_id, clock.now) is not None  # then the worker dies
    with session_scope(sessions) as session:
        assert service.claim(session, box, delivery_id, clock.now) is None  # held: nobody else takes it
    clock.advance(seconds=service.ATTEMPT_LEASE.total_seconds() - 1)
    assert tasks.retry_due(sessions, box, notify_settings, clock=clock) == {}
    clock.advance(seconds=1)
    assert tasks.retry_due(sessions, box, notify_settings, clock=clock) == {delivery_id: "sent"}
    assert len(receiver.posted) == 1
