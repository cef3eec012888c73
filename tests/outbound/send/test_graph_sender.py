"""The Microsoft Graph sender against the fake Graph API: sendMail, Sent Items, and failures."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import replace

import pytest

from tests.fakes.graph import FakeGraph, throttled_body
from tests.outbound.send.conftest import outgoing
from touchline.mailboxes.oauth import OAuthFlow, OAuthTokens, TokenHolder
from touchline.mailboxes.providers.graph import GraphProvider
from touchline.outbound.send.contract import DeliveryError, MessageSender
from touchline.outbound.send.graph import GraphSender


class RecordedSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> RecordedSleep:
    return RecordedSleep()


@pytest.fixture
def sender(graph: GraphProvider, sleep: RecordedSleep) -> GraphSender:
    return GraphSender(graph, sent_lookups=3, sent_lookup_interval_seconds=2.0, sleep=sleep)


def test_a_sent_message_lands_in_sent_items_under_its_own_message_id(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    message = outgoing(to=("jane@customer.example",), cc=("joe@customer.example",))

    delivered = sender.deliver(message)

    assert delivered.provider_message_id == ""  # sendMail answers 202 without an id
    [copy] = fake_graph.sent_items()
    assert copy.internet_message_id == message.message_id
    assert copy.to == [("", "jane@customer.example")]
    assert copy.cc == [("", "joe@customer.example")]
    parsed = email.message_from_bytes(copy.mime, policy=email.policy.default)
    assert parsed["Subject"] == "Renewal next month"
    assert sender.find_sent(message.message_id) is True


def test_the_sender_keeps_the_message_sender_contract(sender: GraphSender, sleep: RecordedSleep) -> None:
    contract: MessageSender = sender
    assert contract.find_sent("<nothing@touchline.example>") is False
    assert sleep.waits == [2.0, 2.0]  # looked three times before saying no


def test_a_copy_that_shows_late_in_sent_items_is_still_found(
    fake_graph: FakeGraph, sender: GraphSender, sleep: RecordedSleep
) -> None:
    fake_graph.state.sent_copy_hidden_lookups = 2
    message = outgoing()
    sender.deliver(message)

    assert sender.find_sent(message.message_id) is True
    assert sleep.waits == [2.0, 2.0]


def test_throttling_is_temporary_and_says_when_to_try_again(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    fake_graph.state.failures.add(429, throttled_body(), path_contains="sendMail", retry_after="12")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert not raised.value.outcome_unknown
    assert raised.value.retry_after_seconds == 12
    assert fake_graph.sent_items() == []


@pytest.mark.parametrize(("status", "retry_after", "expected_wait"), [(502, None, None), (503, "4", 4.0)])
def test_server_errors_are_temporary(
    fake_graph: FakeGraph,
    sender: GraphSender,
    status: int,
    retry_after: str | None,
    expected_wait: float | None,
) -> None:
    body = {"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}}
    fake_graph.state.failures.add(status, body, path_contains="sendMail", retry_after=retry_after)

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert raised.value.retry_after_seconds == expected_wait


def test_a_refused_message_fails_for_good_with_graph_s_reason(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    body = {
        "error": {
            "code": "ErrorInvalidRecipients",
            "message": "At least one recipient is not valid.,\r\nRecipient 'x' is not resolved.",
            "innerError": {"echo": "Hello Jane, your renewal is due"},
        }
    }
    fake_graph.state.failures.add(400, body, path_contains="sendMail")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert not raised.value.temporary
    assert raised.value.reason.startswith(
        "Microsoft Graph refused the message (HTTP 400): ErrorInvalidRecipients"
    )
    assert "\n" not in raised.value.reason
    assert "renewal" not in raised.value.reason


def test_a_message_too_large_for_one_request_is_refused_before_sending(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    message = outgoing()
    padded = message.raw + b"x" * (3 * 1024 * 1024)

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(type(message)(padded, message.envelope_from, message.recipients, message.message_id))

    assert not raised.value.temporary
    assert fake_graph.requests_to("/sendMail") == []


def test_an_answer_lost_after_graph_took_the_message_is_an_unknown_outcome_that_sent_items_resolves(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    message = outgoing()
    fake_graph.state.failures.drop_connection(path_contains="sendMail")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(message)

    assert raised.value.outcome_unknown
    assert len(fake_graph.sent_items()) == 1
    assert sender.find_sent(message.message_id) is True


def test_a_connection_lost_before_graph_acted_is_unknown_and_sent_items_says_it_did_not_go(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    message = outgoing()
    fake_graph.state.failures.drop_connection(path_contains="sendMail", after_handling=False)

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(message)

    assert raised.value.outcome_unknown
    assert sender.find_sent(message.message_id) is False


def test_a_mailbox_connected_without_mail_send_is_told_to_reconnect(
    fake_graph: FakeGraph, microsoft_flow: OAuthFlow, graph_url: str
) -> None:
    access, refresh = fake_graph.oauth.issue_grant(
        scopes=("openid", "offline_access", "https://graph.microsoft.com/Mail.Read")
    )
    tokens = OAuthTokens(access, refresh, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    sender = GraphSender(
        GraphProvider(TokenHolder(microsoft_flow, tokens), api_base_url=f"{graph_url}/v1.0/")
    )
    try:
        with pytest.raises(DeliveryError) as raised:
            sender.deliver(outgoing())
    finally:
        sender.close()

    assert not raised.value.temporary
    assert "Allow sending on Profile > Email" in raised.value.reason
    assert fake_graph.sent_items() == []


def test_an_expired_access_token_is_refreshed_and_the_message_sent_once(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    fake_graph.oauth.expire_access_tokens()

    sender.deliver(outgoing())

    assert len(fake_graph.sent_items()) == 1


def test_sent_items_cannot_be_searched_when_graph_fails(fake_graph: FakeGraph, sender: GraphSender) -> None:
    body = {"error": {"code": "ServiceUnavailable", "message": "The service is unavailable."}}
    fake_graph.state.failures.add(500, body, path_contains="/messages")

    assert sender.find_sent(outgoing().message_id) is None


def test_a_message_id_with_a_quote_is_looked_up_as_one_odata_string(
    fake_graph: FakeGraph, sender: GraphSender
) -> None:
    message = outgoing()
    quoted_id = "<o'brien.renewal@touchline.example>"
    raw = message.raw.replace(message.message_id.encode(), quoted_id.encode())
    sender.deliver(replace(message, raw=raw, message_id=quoted_id))

    assert sender.find_sent(quoted_id) is True
    assert sender.find_sent("<o'brien.other@touchline.example>") is False
