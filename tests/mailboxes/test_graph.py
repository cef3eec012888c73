"""The Microsoft Graph provider against the fake Graph API: folders, delta rounds, throttling, tokens."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fakes.clock import PacingClock
from tests.fakes.graph import FakeGraph, throttled_body
from touchline.mailboxes.oauth import TokenHolder
from touchline.mailboxes.providers.base import (
    AuthError,
    CursorExpired,
    FolderNotFound,
    HeaderBatch,
    RateLimited,
    SpecialUse,
)
from touchline.mailboxes.providers.graph import GraphCursor, GraphProvider

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
LOOK_BACK = NOW - dt.timedelta(days=90)


def subjects(batches: list[HeaderBatch[GraphCursor]]) -> list[str]:
    return [
        str(email.message_from_bytes(message.raw_headers, policy=email.policy.default)["Subject"])
        for batch in batches
        for message in batch.messages
    ]


def deliver(
    fake: FakeGraph, *subject_list: str, folder: str = "inbox", age: dt.timedelta | None = None
) -> list[str]:
    received_at = NOW - (age or dt.timedelta(hours=1))
    return [fake.deliver(folder=folder, subject=subject, received_at=received_at) for subject in subject_list]


def test_folders_get_their_special_use_from_well_known_names(
    fake_graph: FakeGraph, graph: GraphProvider
) -> None:
    customers = fake_graph.add_folder("Customers", parent_id=fake_graph.folder_id("inbox"))
    folders = {folder.id: folder for folder in graph.list_folders()}

    assert folders[fake_graph.folder_id("inbox")].special_use is SpecialUse.INBOX
    assert folders[fake_graph.folder_id("sentitems")].special_use is SpecialUse.SENT
    assert folders[fake_graph.folder_id("deleteditems")].special_use is SpecialUse.TRASH
    assert folders[fake_graph.folder_id("junkemail")].special_use is SpecialUse.JUNK
    assert folders[customers].name == "Inbox/Customers"
    assert folders[customers].special_use is None
    assert fake_graph.folder_id("msgfolderroot") not in folders


def test_first_round_pages_through_the_look_back_window(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    deliver(fake_graph, "ancient", age=dt.timedelta(days=200))
    deliver(fake_graph, "a", "b", "c", "d", "e")
    deliver(fake_graph, "ours", folder="sentitems")

    batches = list(
        graph.fetch_new_headers(fake_graph.folder_id("inbox"), None, since=LOOK_BACK, batch_size=2)
    )

    assert subjects(batches) == ["a", "b", "c", "d", "e"]
    # The whole folder is listed, the ancient message too, and the look-back applied here.
    assert [len(batch.messages) for batch in batches] == [1, 2, 2]
    assert [batch.cursor.next_link is not None for batch in batches] == [True, True, False]
    assert batches[-1].cursor.delta_link is not None
    params, headers = fake_graph.requests_to("/messages/delta")[0]
    assert "internetMessageHeaders" not in params["$select"]
    assert set(params["$select"].split(",")) >= {"from", "toRecipients", "ccRecipients", "internetMessageId"}
    assert "$filter" not in params  # a filtered round stops at 5,000 messages
    assert "odata.maxpagesize=2" in headers["prefer"]
    assert 'IdType="ImmutableId"' in headers["prefer"]


def test_headers_are_built_from_the_selected_properties(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    fake_graph.deliver(
        sender=("Zoë Ürban", "zoe@customer.example"),
        to=[("Sam", "sam@touchline.example"), ("Kim", "kim@touchline.example")],
        cc=[("", "cc@customer.example")],
        subject="Prix spécial\r\nBcc: attacker@evil.example",
        received_at=NOW,
        conversation_id="AAQkADconversation=",
    )

    [batch] = list(graph.fetch_new_headers(fake_graph.folder_id("inbox"), None, since=LOOK_BACK))
    [message] = batch.messages
    parsed = email.message_from_bytes(message.raw_headers, policy=email.policy.default)

    assert parsed["From"].addresses[0].display_name == "Zoë Ürban"
    assert parsed["From"].addresses[0].addr_spec == "zoe@customer.example"
    assert [address.addr_spec for address in parsed["To"].addresses] == [
        "sam@touchline.example",
        "kim@touchline.example",
    ]
    assert parsed["Cc"] == "cc@customer.example"
    assert parsed["Subject"] == "Prix spécial  Bcc: attacker@evil.example"
    assert parsed["Bcc"] is None  # a line break in a property cannot forge a header
    assert parsed["Message-ID"].startswith("<message-")
    assert parsed["Date"].datetime == NOW
    assert message.provider_thread_id == "AAQkADconversation="
    assert message.internal_date == NOW
    assert not message.triage_headers_complete
    assert message.raw_headers.isascii()


def test_later_rounds_return_only_new_messages(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    inbox = fake_graph.folder_id("inbox")
    [gone] = deliver(fake_graph, "before")
    cursor = list(graph.fetch_new_headers(inbox, None, since=LOOK_BACK))[-1].cursor

    deliver(fake_graph, "new 1", "new 2", "new 3")
    deliver(fake_graph, "elsewhere", folder="sentitems")
    fake_graph.delete(gone)
    batches = list(graph.fetch_new_headers(inbox, cursor, since=LOOK_BACK, batch_size=2))

    assert subjects(batches) == ["new 1", "new 2", "new 3"]  # the deletion yields nothing
    assert batches[-1].cursor.delta_link is not None
    assert subjects(list(graph.fetch_new_headers(inbox, batches[-1].cursor, since=LOOK_BACK))) == []


def test_an_interrupted_round_resumes_from_its_next_link(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    inbox = fake_graph.folder_id("inbox")
    deliver(fake_graph, "a", "b", "c", "d", "e")
    batches = graph.fetch_new_headers(inbox, None, since=LOOK_BACK, batch_size=2)
    first, second = next(batches), next(batches)
    batches.close()  # the worker died after storing the first checkpoint only; the second is redone

    resumed = list(
        graph.fetch_new_headers(
            inbox, graph.cursor_from_json(first.cursor.to_json()), since=LOOK_BACK, batch_size=2
        )
    )

    assert subjects([first]) + subjects(resumed) == ["a", "b", "c", "d", "e"]
    assert subjects(resumed)[:2] == subjects([second])


def test_a_dropped_sync_state_asks_for_a_new_sync(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    inbox = fake_graph.folder_id("inbox")
    deliver(fake_graph, "kept")
    cursor = list(graph.fetch_new_headers(inbox, None, since=LOOK_BACK))[-1].cursor
    fake_graph.drop_sync_state()

    with pytest.raises(CursorExpired):
        list(graph.fetch_new_headers(inbox, cursor, since=LOOK_BACK))
    assert subjects(list(graph.fetch_new_headers(inbox, None, since=LOOK_BACK))) == ["kept"]


def test_a_link_older_than_the_folder_keeps_asks_for_a_new_sync(
    fake_graph: FakeGraph, graph: GraphProvider
) -> None:
    """delta-query-messages: skip and delta tokens expire; an expired one answers 410."""
    inbox = fake_graph.folder_id("inbox")
    deliver(fake_graph, "a", "b", "c", "d", "e")
    fake_graph.state.link_generations_kept = 3
    batches = graph.fetch_new_headers(inbox, None, since=LOOK_BACK, batch_size=2)
    first = next(batches)
    batches.close()
    assert first.cursor.next_link is not None

    fake_graph.hand_out_links("inbox", 2)  # still among the newest three
    resumed = list(graph.fetch_new_headers(inbox, first.cursor, since=LOOK_BACK, batch_size=2))
    assert subjects([first]) + subjects(resumed) == ["a", "b", "c", "d", "e"]

    # Resuming handed out newer links again: the first one is now too old.
    with pytest.raises(CursorExpired):
        list(graph.fetch_new_headers(inbox, first.cursor, since=LOOK_BACK, batch_size=2))
    # The delta link that ended the round is the newest, and goes on.
    assert subjects(list(graph.fetch_new_headers(inbox, resumed[-1].cursor, since=LOOK_BACK))) == []


def test_a_cursor_pointing_elsewhere_is_never_followed(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    foreign = GraphCursor(
        delta_link="https://attacker.example/v1.0/me/mailFolders/x/messages/delta?$deltatoken=1"
    )
    with pytest.raises(CursorExpired, match="does not point at the configured Graph API"):
        list(graph.fetch_new_headers("x", foreign, since=LOOK_BACK))
    assert fake_graph.state.requests == []


def test_a_missing_folder_is_reported_as_such(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    with pytest.raises(FolderNotFound):
        list(graph.fetch_new_headers("AAMkADnothing=", None, since=LOOK_BACK))


def test_raw_mime_is_fetched_for_the_ids_asked(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    kept, vanished = deliver(fake_graph, "keep me", "deleted")
    fake_graph.delete(vanished)

    raw = graph.fetch_raw_messages(fake_graph.folder_id("inbox"), [kept, vanished])

    assert [message.provider_message_id for message in raw] == [kept]
    assert raw[0].raw == fake_graph.state.messages[kept].mime


def test_throttling_with_retry_after_is_rate_limited(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    fake_graph.state.failures.add(
        429, throttled_body(), path_contains="/messages/delta", retry_after="12", times=7
    )
    with pytest.raises(RateLimited) as raised:
        list(graph.fetch_new_headers(fake_graph.folder_id("inbox"), None, since=LOOK_BACK))
    assert raised.value.retry_after_seconds == 12


def test_a_folder_over_5000_messages_is_listed_whole(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    """delta-query-messages: a round with $filter returns at most 5,000 messages."""
    inbox = fake_graph.folder_id("inbox")
    for number in range(5_050):
        fake_graph.deliver(subject=f"m{number}", received_at=NOW - dt.timedelta(minutes=number))

    batches = list(graph.fetch_new_headers(inbox, None, since=LOOK_BACK, batch_size=1000))

    assert sum(len(batch.messages) for batch in batches) == 5_050


def test_an_update_naming_only_changed_properties_is_passed_over(
    fake_graph: FakeGraph, graph: GraphProvider
) -> None:
    inbox = fake_graph.folder_id("inbox")
    [read_later] = deliver(fake_graph, "read later")
    cursor = list(graph.fetch_new_headers(inbox, None, since=LOOK_BACK))[-1].cursor
    fake_graph.update(read_later, subject="read later (edited)")
    [new] = deliver(fake_graph, "new")

    batches = list(graph.fetch_new_headers(inbox, cursor, since=LOOK_BACK))

    assert [m.provider_message_id for batch in batches for m in batch.messages] == [new]


def test_a_throttled_body_fetch_is_retried_and_loses_nothing(
    fake_graph: FakeGraph, graph: GraphProvider, pacing_clock: PacingClock
) -> None:
    ids = deliver(fake_graph, *[f"m{number}" for number in range(8)])
    fake_graph.state.failures.add(429, throttled_body(), path_contains="/$value", retry_after="3", times=2)

    raw = graph.fetch_raw_messages(fake_graph.folder_id("inbox"), ids)

    assert [message.provider_message_id for message in raw] == ids
    assert pacing_clock.slept == [3.0, 3.0]


def test_clients_of_one_mailbox_share_its_four_request_limit(
    fake_graph: FakeGraph, graph_tokens: TokenHolder, graph_url: str, pacing_clock: PacingClock
) -> None:
    """Outlook answers 429 beyond four concurrent requests per mailbox; a sync and a send in one
    process share the mailbox's four slots."""
    ids = deliver(fake_graph, *[f"m{number}" for number in range(12)])
    fake_graph.state.response_delay_seconds = 0.02
    providers = [
        GraphProvider(
            graph_tokens, api_base_url=f"{graph_url}/v1.0/", pacing=pacing_clock.pacing(), mailbox_key="box-1"
        )
        for _ in range(2)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda p: p.fetch_raw_messages("inbox", ids), providers))

    assert [len(result) for result in results] == [12, 12]
    assert fake_graph.state.throttled_requests == 0
    assert fake_graph.state.most_in_flight <= 4


def test_a_message_over_the_size_limit_is_not_read_past_it(
    fake_graph: FakeGraph, graph: GraphProvider
) -> None:
    small, huge = deliver(fake_graph, "small", "huge")
    fake_graph.set_mime(huge, b"Subject: huge\r\n\r\n" + b"x" * 5000)
    graph.max_message_bytes = 4096

    raw = {
        message.provider_message_id: message for message in graph.fetch_raw_messages("inbox", [small, huge])
    }

    assert not raw[small].oversized
    assert raw[small].raw
    assert raw[huge].oversized
    assert raw[huge].raw == b""


def test_an_expired_access_token_is_refreshed_and_the_new_refresh_token_kept(
    fake_graph: FakeGraph, graph: GraphProvider, graph_tokens: TokenHolder
) -> None:
    before = graph_tokens.tokens
    fake_graph.oauth.expire_access_tokens()

    assert graph.list_folders()

    [refresh] = fake_graph.oauth.token_requests
    assert refresh["grant_type"] == "refresh_token"
    assert "https://graph.microsoft.com/Mail.Read" in refresh["scope"].split()
    # Microsoft rotates refresh tokens: the holder must carry the new one forward.
    assert graph_tokens.tokens.refresh_token not in (None, before.refresh_token)


def test_a_revoked_grant_is_an_auth_error(fake_graph: FakeGraph, graph: GraphProvider) -> None:
    fake_graph.oauth.revoke_all_grants()
    with pytest.raises(AuthError):
        graph.list_folders()
