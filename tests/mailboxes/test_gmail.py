"""The Gmail provider against the fake Gmail API: labels, look-back, history, quota and tokens."""

from __future__ import annotations

import datetime as dt
import email

import pytest

from tests.fakes.clock import PacingClock
from tests.fakes.gmail import FakeGmail, domain_policy_body, rate_limit_body
from tests.mailboxes.messages import email_bytes
from touchline.mailboxes.oauth import TokenHolder
from touchline.mailboxes.providers.base import (
    TRIAGE_HEADER_NAMES,
    AccessBlocked,
    AuthError,
    CursorExpired,
    HeaderBatch,
    RateLimited,
    SpecialUse,
)
from touchline.mailboxes.providers.gmail import GmailCursor, GmailProvider

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LOOK_BACK = NOW - dt.timedelta(days=90)


def subjects(batches: list[HeaderBatch[GmailCursor]]) -> list[str]:
    return [
        str(email.message_from_bytes(message.raw_headers)["Subject"])
        for batch in batches
        for message in batch.messages
    ]


def deliver(
    fake: FakeGmail, *subject_list: str, label: str = "INBOX", age: dt.timedelta | None = None
) -> list[str]:
    received_at = NOW - (age or dt.timedelta(hours=1))
    return [
        fake.deliver(email_bytes(subject), received_at=received_at, labels=[label])
        for subject in subject_list
    ]


def test_labels_are_folders_with_special_uses(fake_gmail: FakeGmail, gmail: GmailProvider) -> None:
    customers = fake_gmail.add_label("Customers/Acme")
    folders = {folder.id: folder for folder in gmail.list_folders()}

    assert folders["INBOX"].special_use is SpecialUse.INBOX
    assert folders["SENT"].special_use is SpecialUse.SENT
    assert folders["DRAFT"].special_use is SpecialUse.DRAFTS
    assert folders["SPAM"].special_use is SpecialUse.JUNK
    assert folders[customers].name == "Customers/Acme"
    assert folders[customers].special_use is None
    assert "UNREAD" not in folders  # a state, not a place


def test_first_sync_pages_through_the_look_back_window_and_reads_metadata_only(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    deliver(fake_gmail, "ancient", age=dt.timedelta(days=200))
    deliver(fake_gmail, "a", "b", "c", "d", "e")
    deliver(fake_gmail, "sent by us", label="SENT")

    batches = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK, batch_size=2))

    assert sorted(subjects(batches)) == ["a", "b", "c", "d", "e"]
    assert [len(batch.messages) for batch in batches] == [2, 2, 1]
    assert [batch.cursor.first_sync_page_token is None for batch in batches] == [False, False, True]
    # The sync point was taken before listing, so nothing delivered meanwhile can slip through.
    assert {batch.cursor.history_id for batch in batches} == {str(fake_gmail.state.history_id)}
    listings = fake_gmail.requests_to("/messages")
    assert listings[0]["labelIds"] == ["INBOX"]
    assert listings[0]["q"] == [f"after:{int(LOOK_BACK.timestamp()) - 1}"]
    message_gets = [params for path, params in fake_gmail.state.requests if "/messages/" in path]
    assert {tuple(params["format"]) for params in message_gets} == {("metadata",)}
    assert set(message_gets[0]["metadataHeaders"]) == set(TRIAGE_HEADER_NAMES)

    first = batches[0].messages[0]
    assert first.provider_thread_id == first.provider_message_id  # the fake threads each message alone
    assert first.internal_date == NOW - dt.timedelta(hours=1)
    assert first.triage_headers_complete
    parsed = email.message_from_bytes(first.raw_headers)
    assert parsed["From"] == "Jane Doe <jane@customer.example>"
    assert parsed["Message-ID"]


def test_an_interrupted_first_sync_resumes_from_its_page_token(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    deliver(fake_gmail, "a", "b", "c", "d", "e")
    batches = gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK, batch_size=2)
    first = next(batches)
    batches.close()  # the worker stopped here; only the first checkpoint was stored
    stored = first.cursor.to_json()

    resumed = list(
        gmail.fetch_new_headers("INBOX", gmail.cursor_from_json(stored), since=LOOK_BACK, batch_size=2)
    )

    assert sorted(subjects([first]) + subjects(resumed)) == ["a", "b", "c", "d", "e"]


def test_a_page_token_gmail_no_longer_honours_restarts_the_listing(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    stale = GmailCursor(history_id=str(fake_gmail.state.history_id), first_sync_page_token="expired-token")
    with pytest.raises(CursorExpired, match="Invalid pageToken"):
        list(gmail.fetch_new_headers("INBOX", stale, since=LOOK_BACK))


def test_incremental_sync_reads_history_for_the_label_only(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    deliver(fake_gmail, "before")
    cursor = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor

    deliver(fake_gmail, "new 1", "new 2", "new 3")
    deliver(fake_gmail, "ours", label="SENT")
    [filed_later] = deliver(fake_gmail, "filed into the inbox later", label="Label_x")
    fake_gmail.label_message(filed_later, "INBOX")
    deleted = deliver(fake_gmail, "gone before we looked")[0]
    fake_gmail.delete(deleted)

    batches = list(gmail.fetch_new_headers("INBOX", cursor, since=LOOK_BACK, batch_size=2))

    assert subjects(batches) == ["new 1", "new 2", "new 3", "filed into the inbox later"]
    assert len(batches) > 1  # history was paged
    checkpoints = [int(batch.cursor.history_id) for batch in batches]
    assert checkpoints == sorted(checkpoints)
    assert batches[-1].cursor == GmailCursor(history_id=str(fake_gmail.state.history_id))
    assert all(params["labelId"] == ["INBOX"] for params in fake_gmail.requests_to("/history"))

    again = list(gmail.fetch_new_headers("INBOX", batches[-1].cursor, since=LOOK_BACK))
    assert subjects(again) == []


def test_look_back_also_bounds_incremental_sync(fake_gmail: FakeGmail, gmail: GmailProvider) -> None:
    cursor = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
    [old] = deliver(fake_gmail, "old mail filed now", label="Label_archive", age=dt.timedelta(days=300))
    fake_gmail.label_message(old, "INBOX")

    assert subjects(list(gmail.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))) == []


def test_expired_history_asks_for_a_new_sync(fake_gmail: FakeGmail, gmail: GmailProvider) -> None:
    deliver(fake_gmail, "kept")
    cursor = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
    fake_gmail.forget_history()

    with pytest.raises(CursorExpired):
        list(gmail.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))
    assert subjects(list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))) == ["kept"]


def test_raw_bodies_are_fetched_only_for_the_ids_asked(fake_gmail: FakeGmail, gmail: GmailProvider) -> None:
    original = email_bytes("keep me", body="Ünïcode body with = and / to stress base64url.\n" * 3)
    kept = fake_gmail.deliver(original, received_at=NOW)
    deliver(fake_gmail, "not for us")
    vanished = deliver(fake_gmail, "deleted")[0]
    fake_gmail.delete(vanished)

    raw = gmail.fetch_raw_messages("INBOX", [kept, vanished])

    assert [(message.provider_message_id, message.raw) for message in raw] == [(kept, original)]
    raw_gets = [params for path, params in fake_gmail.state.requests if params.get("format") == ["raw"]]
    assert len(raw_gets) == 2


def test_metadata_requests_are_bounded_in_concurrency(
    fake_gmail: FakeGmail, gmail_tokens: TokenHolder, gmail_url: str
) -> None:
    deliver(fake_gmail, *[f"m{number}" for number in range(12)])
    fake_gmail.state.response_delay_seconds = 0.05
    with GmailProvider(
        gmail_tokens, api_base_url=f"{gmail_url}/gmail/v1/users/me/", max_concurrency=3
    ) as provider:
        batches = list(provider.fetch_new_headers("INBOX", None, since=LOOK_BACK))

    assert len(subjects(batches)) == 12
    assert fake_gmail.state.most_in_flight == 3


def test_a_throttled_request_waits_for_retry_after_and_is_tried_again(
    fake_gmail: FakeGmail, gmail: GmailProvider, pacing_clock: PacingClock
) -> None:
    deliver(fake_gmail, "a", "b")
    fake_gmail.state.failures.add(429, rate_limit_body(), path_contains="/messages", retry_after="7")

    assert sorted(subjects(list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK)))) == ["a", "b"]
    assert pacing_clock.slept == [7.0]


def test_throttling_that_outlasts_the_backoff_is_rate_limited(
    fake_gmail: FakeGmail, gmail: GmailProvider, pacing_clock: PacingClock
) -> None:
    fake_gmail.state.failures.add(429, rate_limit_body(), path_contains="/messages", retry_after="7", times=7)
    with pytest.raises(RateLimited) as raised:
        list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))
    assert raised.value.retry_after_seconds == 7
    assert pacing_clock.slept == [
        7.0,
        7.0,
        7.0,
        8.0,
        16.0,
        32.0,
    ]  # Retry-After, until the backoff outgrows it


def test_without_retry_after_the_backoff_grows_exponentially(
    fake_gmail: FakeGmail, gmail: GmailProvider, pacing_clock: PacingClock
) -> None:
    fake_gmail.state.failures.add(429, rate_limit_body(), path_contains="/labels", times=4)
    gmail.list_folders()
    assert pacing_clock.slept == [1.0, 2.0, 4.0, 8.0]  # the jitter's largest draw, as the test clock gives it


def test_new_mail_is_found_though_history_records_name_no_labels(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    """users.history.list: records "typically only have id and threadId"; the labelId filter also
    returns the thread's other messages. The folder is decided from the metadata's labelIds."""
    [first] = deliver(fake_gmail, "customer asks")
    cursor = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK))[-1].cursor
    fake_gmail.deliver(email_bytes("customer again"), received_at=NOW, labels=["INBOX"])
    fake_gmail.deliver(email_bytes("our answer"), received_at=NOW, labels=["SENT"], thread_id=first)

    assert subjects(list(gmail.fetch_new_headers("INBOX", cursor, since=LOOK_BACK))) == ["customer again"]
    assert subjects(list(gmail.fetch_new_headers("SENT", cursor, since=LOOK_BACK))) == ["our answer"]


def test_quota_is_budgeted_so_a_large_label_syncs_without_a_429(
    fake_gmail: FakeGmail, gmail_tokens: TokenHolder, gmail_url: str, pacing_clock: PacingClock
) -> None:
    fake_gmail.state.quota_units_per_minute = 600
    deliver(fake_gmail, *[f"m{number}" for number in range(300)])
    with GmailProvider(
        gmail_tokens,
        api_base_url=f"{gmail_url}/gmail/v1/users/me/",
        pacing=pacing_clock.pacing(),
        units_per_minute=600,
        # One request at a time: the test clock cannot keep the wake-up order of parallel sleepers.
        max_concurrency=1,
    ) as budgeted:
        batches = list(budgeted.fetch_new_headers("INBOX", None, since=LOOK_BACK, batch_size=100))

    assert len(subjects(batches)) == 300
    assert fake_gmail.state.throttled_requests == 0
    assert pacing_clock.now - 1_000_000.0 >= 60 * (fake_gmail.state.units_spent - 600) / 600 - 1


def test_quota_429s_back_off_until_the_label_is_synced(
    fake_gmail: FakeGmail, gmail: GmailProvider, pacing_clock: PacingClock
) -> None:
    """Gmail's limit is lower than the budget (another client of the same user spends quota too):
    its 429s are waited out, and nothing fetched before one is fetched again."""
    fake_gmail.state.quota_units_per_minute = 600
    deliver(fake_gmail, *[f"m{number}" for number in range(300)])

    batches = list(gmail.fetch_new_headers("INBOX", None, since=LOOK_BACK, batch_size=100))

    assert len(subjects(batches)) == 300
    assert fake_gmail.state.throttled_requests > 0
    assert len(fake_gmail.requests_to("/messages")) == 3  # the listing pages, each fetched once


def test_a_history_page_cut_short_by_quota_keeps_what_was_fetched(
    fake_gmail: FakeGmail, gmail_tokens: TokenHolder, gmail_url: str, pacing_clock: PacingClock
) -> None:
    cursor = list(
        GmailProvider(gmail_tokens, api_base_url=f"{gmail_url}/gmail/v1/users/me/").fetch_new_headers(
            "INBOX", None, since=LOOK_BACK
        )
    )[-1].cursor
    deliver(fake_gmail, *[f"m{number:03d}" for number in range(150)])
    fake_gmail.state.quota_units_per_minute = 400  # about 80 metadata fetches a minute
    impatient = GmailProvider(
        gmail_tokens,
        api_base_url=f"{gmail_url}/gmail/v1/users/me/",
        pacing=pacing_clock.pacing(max_retries=0),
    )

    batches: list[HeaderBatch[GmailCursor]] = []
    pages = impatient.fetch_new_headers("INBOX", cursor, since=LOOK_BACK, batch_size=500)
    with pytest.raises(RateLimited):
        batches.extend(pages)

    [partial] = batches
    assert 0 < len(partial.messages) < 150
    assert int(cursor.history_id) < int(partial.cursor.history_id) < fake_gmail.state.history_id
    pacing_clock.advance(60)
    rest = list(impatient.fetch_new_headers("INBOX", partial.cursor, since=LOOK_BACK, batch_size=500))
    assert sorted(subjects([partial, *rest])) == [f"m{number:03d}" for number in range(150)]


def test_an_administrators_policy_is_not_a_reason_to_reconnect(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    fake_gmail.state.failures.add(403, domain_policy_body(), path_contains="/labels")
    with pytest.raises(AccessBlocked, match="administrator"):
        gmail.list_folders()


def test_a_403_over_quota_is_rate_limited_but_other_403s_are_auth_errors(
    fake_gmail: FakeGmail, gmail: GmailProvider
) -> None:
    fake_gmail.state.failures.add(
        403, rate_limit_body("userRateLimitExceeded", code=403), path_contains="/labels", times=7
    )
    with pytest.raises(RateLimited):
        gmail.list_folders()

    insufficient = {"error": {"code": 403, "errors": [{"reason": "insufficientPermissions"}]}}
    fake_gmail.state.failures.add(403, insufficient, path_contains="/labels")
    with pytest.raises(AuthError):
        gmail.list_folders()


def test_an_expired_access_token_is_refreshed_once(
    fake_gmail: FakeGmail, gmail: GmailProvider, gmail_tokens: TokenHolder
) -> None:
    before = gmail_tokens.tokens
    fake_gmail.oauth.expire_access_tokens()

    assert gmail.list_folders()

    assert len(fake_gmail.oauth.token_requests) == 1
    assert gmail_tokens.tokens.access_token != before.access_token
    assert gmail_tokens.tokens.refresh_token == before.refresh_token  # Google keeps it


def test_a_revoked_grant_is_an_auth_error(fake_gmail: FakeGmail, gmail: GmailProvider) -> None:
    fake_gmail.oauth.revoke_all_grants()
    with pytest.raises(AuthError, match="no longer accepts this mailbox"):
        gmail.list_folders()
