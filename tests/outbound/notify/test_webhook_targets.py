"""Webhook URLs are checked before any connection: https only, never private, loopback or link-local
addresses unless the operator allows them, and checked again at every delivery."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import FakeClock, Team
from tests.outbound.notify.conftest import WebhookReceiver
from tests.outbound.notify.helpers import configure, deliveries, notice
from touchline.config import Settings
from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError
from touchline.kit.net import AddressPolicy
from touchline.models import NotificationSetting
from touchline.outbound.notify import channels, tasks
from touchline.outbound.notify.service import SettingsChange


def resolving_to(*addresses: str) -> AddressPolicy:
    def resolver(host: str, port: int) -> Sequence[str]:
        return addresses

    return AddressPolicy(resolver=resolver)


@pytest.mark.parametrize(
    ("url", "addresses", "refusal"),
    [
        (
            "https://hooks.internal.example/x",
            ("10.1.2.3",),
            "resolves to 10.1.2.3, which is a private address",
        ),
        ("https://metadata.example/x", ("169.254.169.254",), "which is a link-local address"),
        ("https://127.0.0.1:8443/x", ("127.0.0.1",), "127.0.0.1 is a loopback address"),
        ("https://[::1]/x", ("::1",), "::1 is a loopback address"),
        ("https://mapped.example/x", ("::ffff:192.168.0.10",), "which is a private address"),
        ("https://split.example/x", ("93.184.215.14", "10.0.0.1"), "resolves to 10.0.0.1"),
        ("http://hooks.example.com/x", ("93.184.215.14",), "must use https"),
        ("ftp://hooks.example.com/x", ("93.184.215.14",), "starts with https://"),
        ("https://user:pw@hooks.example.com/x", ("93.184.215.14",), "no user name or password"),
        ("https://hooks.example.com/a b", ("93.184.215.14",), "without spaces"),
        ("https:///nohost", ("93.184.215.14",), "names a host"),
    ],
)
def test_refused_webhook_urls(url: str, addresses: tuple[str, ...], refusal: str) -> None:
    with pytest.raises(InvalidInputError, match=refusal.replace("[", r"\[").replace("?", r"\?")):
        channels.check_webhook_url(url, resolving_to(*addresses))


def test_a_private_refusal_tells_the_operator_how_to_allow_it(settings: Settings) -> None:
    policy = channels.webhook_policy(settings, resolver=lambda host, port: ["10.0.0.7"])
    with pytest.raises(InvalidInputError, match="TOUCHLINE_ALLOW_PRIVATE_WEBHOOK_HOSTS"):
        channels.check_webhook_url("https://hooks.corp.example/x", policy)


def test_a_public_https_url_is_pinned_to_its_checked_addresses() -> None:
    target = channels.check_webhook_url(
        "https://hooks.example.com:8443/a/b?c=d", resolving_to("93.184.215.14")
    )
    assert target.host_header == "hooks.example.com:8443"
    assert target.url_for(target.checked.addresses[0]) == "https://93.184.215.14:8443/a/b?c=d"


def test_plain_http_only_to_loopback_and_only_when_the_operator_allows_it(settings: Settings) -> None:
    loopback = lambda host, port: ["127.0.0.1"]  # noqa: E731
    with pytest.raises(InvalidInputError, match="loopback address"):
        channels.check_webhook_url("http://127.0.0.1:9000/x", channels.webhook_policy(settings, loopback))
    allowed = settings.model_copy(update={"allow_private_webhook_hosts": True})
    assert channels.check_webhook_url("http://127.0.0.1:9000/x", channels.webhook_policy(allowed, loopback))
    private = lambda host, port: ["192.168.1.20"]  # noqa: E731
    with pytest.raises(InvalidInputError, match="must use https"):
        channels.check_webhook_url("http://printer.lan/x", channels.webhook_policy(allowed, private))


def test_saving_a_private_url_is_refused_without_the_operators_leave(
    sessions: sessionmaker[Session], box: SecretBox, settings: Settings, team: Team, clock: FakeClock
) -> None:
    with pytest.raises(InvalidInputError, match="loopback address"):
        configure(
            sessions, box, settings, team, SettingsChange({}, slack_url="http://127.0.0.1:9/x"), clock.now
        )
    with pytest.raises(InvalidInputError, match="link-local"):
        configure(
            sessions,
            box,
            settings,
            team,
            SettingsChange({}, webhook_url="https://169.254.169.254/"),
            clock.now,
        )


def test_a_url_refused_at_delivery_fails_without_any_connection(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    settings: Settings,
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
    # The operator withdrew the leave for private hosts after the URL was stored.
    tasks.record_and_deliver(
        sessions,
        box,
        settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [row] = deliveries(sessions, "slack")
    assert (row.status, row.attempts) == ("failed", 1)
    assert "127.0.0.1 is a loopback address" in (row.last_error or "")
    assert receiver.posted == []


def test_redirects_are_not_followed(
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
    receiver.answer(307, {"Location": "http://169.254.169.254/latest/meta-data/"})
    tasks.record_and_deliver(
        sessions,
        box,
        notify_settings,
        team.workspace_id,
        team.member_id,
        [notice(sent_email, clock.now)],
        clock=clock,
    )
    [row] = deliveries(sessions, "slack")
    assert row.status == "failed"
    assert row.last_error == "the webhook answered 307 Temporary Redirect: redirects are not followed"
    assert len(receiver.posted) == 1


def test_urls_and_the_secret_are_stored_encrypted(
    sessions: sessionmaker[Session],
    box: SecretBox,
    notify_settings: Settings,
    team: Team,
    clock: FakeClock,
    receiver: WebhookReceiver,
) -> None:
    secret = configure(
        sessions,
        box,
        notify_settings,
        team,
        SettingsChange({}, slack_url=receiver.url + "&s=1", webhook_url=receiver.url, generate_secret=True),
        clock.now,
    )
    with session_scope(sessions) as session:
        row = session.query(NotificationSetting).one()
        stored = (row.slack_url_encrypted, row.webhook_url_encrypted, row.webhook_secret_encrypted)
    assert all(value and "127.0.0.1" not in value and "whsec_" not in value for value in stored)
    assert box.decrypt(stored[2] or "") == secret
    assert box.decrypt(stored[1] or "") == receiver.url
