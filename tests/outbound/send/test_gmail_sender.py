"""The Gmail sender against the fake Gmail API: sending, finding in Sent, and every kind of failure."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import replace

import pytest

from tests.fakes.gmail import FakeGmail, rate_limit_body
from tests.mailboxes.messages import email_bytes
from tests.outbound.send.conftest import outgoing
from touchline.mailboxes.oauth import OAuthFlow, OAuthTokens, TokenHolder
from touchline.mailboxes.providers.gmail import GmailProvider
from touchline.outbound.send.contract import DeliveryError, MessageSender
from touchline.outbound.send.gmail import GmailSender


@pytest.fixture
def sender(gmail: GmailProvider) -> GmailSender:
    return GmailSender(gmail)


def test_a_sent_message_is_filed_in_sent_with_its_own_message_id_and_recipients(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    message = outgoing(to=("jane@customer.example",), cc=("joe@customer.example",))

    delivered = sender.deliver(message)

    stored = fake_gmail.state.messages[delivered.provider_message_id]
    assert stored.label_ids == {"SENT"}
    assert stored.raw == message.raw
    assert fake_gmail.state.sent[-1].recipients == ("jane@customer.example", "joe@customer.example")
    assert sender.find_sent(message.message_id) is True
    assert sender.find_sent(outgoing("Another").message_id) is False


def test_the_sender_keeps_the_message_sender_contract(sender: GmailSender) -> None:
    contract: MessageSender = sender
    assert contract.find_sent("<nothing@touchline.example>") is False


def in_thread(fake_gmail: FakeGmail, subject: str, thread_id: str) -> str:
    """Put a customer's email in the mailbox's Gmail thread `thread_id`; returns its Message-ID."""
    message = email_bytes(subject)
    received_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    fake_gmail.deliver(message, received_at=received_at, thread_id=thread_id)
    return str(email.message_from_bytes(message)["Message-ID"])


def test_a_reply_is_filed_in_the_gmail_thread_of_the_email_it_answers(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    answered = in_thread(fake_gmail, "Question", "thread-7")
    in_thread(fake_gmail, "Other", "thread-8")

    delivered = sender.deliver(outgoing("Re: Question", in_reply_to=answered))

    assert fake_gmail.state.messages[delivered.provider_message_id].thread_id == "thread-7"


def test_a_reply_to_an_email_this_mailbox_does_not_hold_starts_a_thread_of_its_own(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    in_thread(fake_gmail, "Question", "thread-7")

    delivered = sender.deliver(outgoing("Re: Question", in_reply_to="<elsewhere@customer.example>"))

    sent = fake_gmail.state.messages[delivered.provider_message_id]
    assert sent.thread_id != "thread-7"
    assert b"In-Reply-To: <elsewhere@customer.example>" in sent.raw  # the recipients still thread it


def test_a_reply_whose_thread_cannot_be_looked_up_is_still_sent(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    answered = in_thread(fake_gmail, "Question", "thread-7")
    fake_gmail.state.failures.add(500, {"error": {"message": "Backend Error"}}, path_contains="/messages")

    delivered = sender.deliver(outgoing("Re: Question", in_reply_to=answered))

    assert fake_gmail.state.messages[delivered.provider_message_id].thread_id != "thread-7"
    assert len(fake_gmail.state.sent) == 1


def test_a_message_in_the_trash_still_counts_as_sent(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    message = outgoing()
    delivered = sender.deliver(message)
    fake_gmail.state.messages[delivered.provider_message_id].label_ids.add("TRASH")

    assert sender.find_sent(message.message_id) is True


def test_throttling_is_temporary_and_says_when_to_try_again(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    fake_gmail.state.failures.add(429, rate_limit_body(), path_contains="messages/send", retry_after="7")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert not raised.value.outcome_unknown
    assert raised.value.retry_after_seconds == 7
    assert fake_gmail.state.sent == []


def test_without_retry_after_gmail_s_own_retry_moment_is_used(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    retry_at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    body = rate_limit_body("userRateLimitExceeded")
    body["error"]["message"] = f"User-rate limit exceeded.  Retry after {retry_at} (Mail sending)"
    fake_gmail.state.failures.add(429, body, path_contains="messages/send")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert raised.value.retry_after_seconds is not None
    assert 7000 < raised.value.retry_after_seconds <= 7200


def test_the_daily_sending_limit_is_temporary(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    fake_gmail.state.failures.add(
        403, rate_limit_body("dailyLimitExceeded", code=403), path_contains="messages/send"
    )

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert "dailyLimitExceeded" in raised.value.reason


@pytest.mark.parametrize(("status", "retry_after", "expected_wait"), [(500, None, None), (503, "30", 30.0)])
def test_server_errors_are_temporary(
    fake_gmail: FakeGmail,
    sender: GmailSender,
    status: int,
    retry_after: str | None,
    expected_wait: float | None,
) -> None:
    body = {"error": {"code": status, "message": "Backend Error", "status": "UNAVAILABLE"}}
    fake_gmail.state.failures.add(status, body, path_contains="messages/send", retry_after=retry_after)

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert raised.value.temporary
    assert not raised.value.outcome_unknown
    assert raised.value.retry_after_seconds == expected_wait


def test_a_refused_recipient_fails_for_good_with_gmail_s_reason_on_one_line(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "Invalid To header:\n  bounced@customer.example",
            "errors": [{"message": "Invalid To header", "domain": "global", "reason": "invalidArgument"}],
            "status": "INVALID_ARGUMENT",
            "details": [{"echo": "Hello Jane, your renewal is due"}],
        }
    }
    fake_gmail.state.failures.add(400, body, path_contains="messages/send")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert not raised.value.temporary
    assert "Invalid To header: bounced@customer.example" in raised.value.reason
    assert "\n" not in raised.value.reason
    assert "renewal" not in raised.value.reason
    assert fake_gmail.state.sent == []


def test_a_message_without_recipients_is_refused_by_gmail(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    message = outgoing()
    headerless = message.raw.replace(b"\r\nTo: jane@customer.example", b"")
    assert headerless != message.raw

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(replace(message, raw=headerless))

    assert not raised.value.temporary
    assert "Recipient address required" in raised.value.reason


def test_an_answer_lost_after_gmail_sent_the_message_is_an_unknown_outcome_that_sent_resolves(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    message = outgoing()
    fake_gmail.state.failures.drop_connection(path_contains="messages/send")

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(message)

    assert raised.value.outcome_unknown
    assert len(fake_gmail.state.sent) == 1
    assert sender.find_sent(message.message_id) is True


def test_a_connection_lost_before_gmail_acted_is_unknown_too_and_sent_says_it_did_not_go(
    fake_gmail: FakeGmail, sender: GmailSender
) -> None:
    message = outgoing()
    fake_gmail.state.failures.drop_connection(path_contains="messages/send", after_handling=False)

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(message)

    assert raised.value.outcome_unknown
    assert sender.find_sent(message.message_id) is False


def test_a_mailbox_connected_without_the_send_scope_is_told_to_reconnect(
    fake_gmail: FakeGmail, google_flow: OAuthFlow, gmail_url: str
) -> None:
    access, refresh = fake_gmail.oauth.issue_grant(
        scopes=("openid", "email", "https://www.googleapis.com/auth/gmail.readonly")
    )
    tokens = OAuthTokens(access, refresh, expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    provider = GmailProvider(TokenHolder(google_flow, tokens), api_base_url=f"{gmail_url}/gmail/v1/users/me/")
    sender = GmailSender(provider)
    try:
        with pytest.raises(DeliveryError) as raised:
            sender.deliver(outgoing())
        assert provider.list_folders()  # reading still works
    finally:
        sender.close()

    assert not raised.value.temporary
    assert "Allow sending on Profile > Email" in raised.value.reason
    assert fake_gmail.state.sent == []


def test_an_expired_access_token_is_refreshed_and_the_message_sent_once(
    fake_gmail: FakeGmail, sender: GmailSender, gmail_tokens: TokenHolder
) -> None:
    fake_gmail.oauth.expire_access_tokens()

    sender.deliver(outgoing())

    assert len(fake_gmail.state.sent) == 1
    assert fake_gmail.oauth.token_requests[-1]["grant_type"] == "refresh_token"


def test_sent_cannot_be_searched_when_gmail_fails(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    body = {"error": {"code": 500, "message": "Backend Error", "status": "INTERNAL"}}
    fake_gmail.state.failures.add(500, body, path_contains="/messages")

    assert sender.find_sent(outgoing().message_id) is None


def test_the_message_goes_out_byte_for_byte(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    message = outgoing("Café au lait")

    delivered = sender.deliver(message)

    stored = email.message_from_bytes(
        fake_gmail.state.messages[delivered.provider_message_id].raw, policy=email.policy.default
    )
    assert stored["Message-ID"] == message.message_id
    assert stored["Subject"] == "Café au lait"


def test_a_withdrawn_grant_fails_for_good(fake_gmail: FakeGmail, sender: GmailSender) -> None:
    fake_gmail.oauth.revoke_all_grants()
    fake_gmail.oauth.expire_access_tokens()

    with pytest.raises(DeliveryError) as raised:
        sender.deliver(outgoing())

    assert not raised.value.temporary
    assert "no longer accepts this mailbox's grant" in raised.value.reason
