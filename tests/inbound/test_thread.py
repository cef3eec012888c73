"""Threading: reply trees by Message-ID with placeholders, provider threads, the narrow subject rule,
and the incremental path agreeing with the batch one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import enron_files
from tests.inbound.samples import fixture_bytes
from touchline.inbound.parse import parse_headers
from touchline.inbound.thread import (
    KnownThreads,
    ThreadMessage,
    ThreadNode,
    base_subject,
    lookup_for,
    place,
    thread_messages,
)

START = datetime(2025, 3, 1, tzinfo=UTC)
PEOPLE = frozenset({"jane@acme.com", "success@touchline.example"})


def message(
    key: str,
    minute: int,
    *,
    ancestors: tuple[str, ...] = (),
    subject: str = "Renewal",
    people: frozenset[str] = PEOPLE,
    thread: str | None = None,
    message_id: str | None = "",
) -> ThreadMessage:
    return ThreadMessage(
        key=key,
        message_id=key if message_id == "" else message_id,
        ancestors=ancestors,
        subject=subject,
        participants=people,
        date=START + timedelta(minutes=minute),
        provider_thread_id=thread,
    )


def groups(messages: list[ThreadMessage]) -> set[frozenset[str]]:
    return {frozenset(conversation.message_keys) for conversation in thread_messages(messages)}


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Budget", ("budget", True)),
        ("RE: Fw:  FWD: re[2]: Budget ", ("budget", True)),
        ("AW: SV: Budget", ("budget", True)),
        ("Budget: Re: Q3", ("budget: re: q3", False)),
        ("Regarding the budget", ("regarding the budget", False)),
        ("", ("", False)),
    ],
)
def test_base_subject(subject: str, expected: tuple[str, bool]) -> None:
    assert base_subject(subject) == expected


def test_replies_join_through_in_reply_to_and_references() -> None:
    root = message("a", 0)
    reply = message("b", 1, ancestors=("a",), subject="Re: Renewal")
    reply_to_reply = message("c", 2, ancestors=("a", "b"), subject="Re: Renewal")
    unrelated = message("d", 3, subject="Other")
    assert groups([reply_to_reply, unrelated, reply, root]) == {frozenset("abc"), frozenset("d")}


def test_a_missing_parent_keeps_its_replies_together_under_a_placeholder() -> None:
    first = message("b", 1, ancestors=("lost",))
    second = message("c", 2, ancestors=("lost",), people=frozenset({"kim@acme.com"}))
    (conversation,) = thread_messages([first, second])
    assert conversation.key == "b"
    assert conversation.roots == (ThreadNode("lost", None, (ThreadNode("b", "b"), ThreadNode("c", "c"))),)


def test_the_reply_tree_follows_references() -> None:
    messages = [
        message("a", 0),
        message("b", 1, ancestors=("a",)),
        message("c", 2, ancestors=("a",)),
        message("d", 3, ancestors=("a", "b")),
    ]
    (conversation,) = thread_messages(messages)
    assert conversation.message_keys == ("a", "b", "c", "d")
    assert conversation.roots == (
        ThreadNode("a", "a", (ThreadNode("b", "b", (ThreadNode("d", "d"),)), ThreadNode("c", "c"))),
    )


def test_reference_loops_do_not_hang_or_lose_messages() -> None:
    messages = [message("a", 0, ancestors=("b",)), message("b", 1, ancestors=("a",))]
    assert groups(messages) == {frozenset("ab")}


def test_the_same_message_id_twice_stays_in_one_conversation() -> None:
    messages = [message("k1", 0, message_id="same"), message("k2", 1, message_id="same")]
    assert groups(messages) == {frozenset({"k1", "k2"})}


def test_provider_threads_join_messages_without_ids() -> None:
    messages = [
        message("a", 0, message_id=None, thread="gmail:t1"),
        message("b", 1, message_id=None, thread="gmail:t1", subject="Different"),
        message("c", 2, message_id=None, thread="gmail:t2"),
    ]
    assert groups(messages) == {frozenset("ab"), frozenset("c")}


def test_a_reply_without_ids_joins_by_subject_only_with_the_same_participants() -> None:
    original = message("a", 0, message_id=None)
    reply = message("b", 1, message_id=None, subject="RE: renewal ")
    stranger = message("c", 2, message_id=None, subject="Re: Renewal", people=frozenset({"kim@acme.com"}))
    plain = message("d", 3, message_id=None, subject="Renewal")
    assert groups([original, reply, stranger, plain]) == {
        frozenset("ab"),
        frozenset("c"),
        frozenset("d"),
    }


def test_a_reply_with_ids_is_never_joined_by_subject() -> None:
    original = message("a", 0)
    reply = message("b", 1, ancestors=("elsewhere",), subject="Re: Renewal")
    assert groups([original, reply]) == {frozenset("a"), frozenset("b")}


def test_from_parsed_orders_ancestors_oldest_first() -> None:
    parsed = parse_headers(fixture_bytes("reply_with_references.eml"))
    threadable = ThreadMessage.from_parsed(parsed, provider_thread_id="gmail:t9")
    assert threadable.ancestors == ("root-0@acme.com", "reply-1@touchline.example")
    assert threadable.ids == ("root-0@acme.com", "reply-1@touchline.example", "reply-2@acme.com")
    assert threadable.participants == frozenset({"kate@acme.com", "success@touchline.example"})


def test_place_prefers_the_nearest_parent_and_asks_to_merge_the_rest() -> None:
    reply = message("c", 2, ancestors=("a", "b"))
    known = KnownThreads(by_message_id={"a": "conv-1", "b": "conv-2"})
    placement = place(reply, known)
    assert (placement.conversation, placement.rule, placement.merge) == ("conv-2", "message-id", ("conv-1",))
    assert placement.parent_id == "b"
    assert placement.record_ids == ("a", "b", "c")


def test_place_uses_a_placeholder_recorded_by_an_earlier_reply() -> None:
    late_parent = message("a", 0)
    placement = place(late_parent, KnownThreads(by_message_id={"a": "conv-1"}))
    assert (placement.conversation, placement.rule) == ("conv-1", "message-id")


def test_place_by_provider_thread_subject_or_new() -> None:
    threaded = message("x", 0, message_id=None, thread="t")
    assert place(threaded, KnownThreads(by_provider_thread="conv-t")).rule == "provider-thread"
    reply = message("y", 1, message_id=None, subject="Re: Renewal")
    lookup = lookup_for(reply)
    assert lookup.subject_key == message("z", 0, message_id=None).subject_key
    assert place(reply, KnownThreads(by_subject_key="conv-s")).conversation == "conv-s"
    assert place(reply, KnownThreads()).rule == "new"
    assert lookup_for(message("w", 0)).subject_key is None


@dataclass
class MemoryStore:
    """A store as `place` expects one: key -> conversation maps, merged on request."""

    by_key: dict[str, str] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)

    def add(self, message: ThreadMessage) -> None:
        lookup = lookup_for(message)
        known = KnownThreads(
            by_message_id={i: self.by_key[f"id:{i}"] for i in lookup.message_ids if f"id:{i}" in self.by_key},
            by_provider_thread=self.by_key.get(f"thread:{lookup.provider_thread_id}"),
            by_subject_key=self.by_key.get(lookup.subject_key) if lookup.subject_key else None,
        )
        placement = place(message, known)
        conversation = placement.conversation or message.key
        self.members.setdefault(conversation, set()).add(message.key)
        for other in placement.merge:
            self.members[conversation] |= self.members.pop(other)
            for key, value in self.by_key.items():
                if value == other:
                    self.by_key[key] = conversation
        keys = [f"id:{i}" for i in placement.record_ids]
        if placement.record_provider_thread:
            keys.append(f"thread:{placement.record_provider_thread}")
        if placement.record_subject_key:
            keys.append(placement.record_subject_key)
        for key in keys:
            self.by_key.setdefault(key, conversation)


@st.composite
def message_batches(draw: st.DrawFn) -> list[ThreadMessage]:
    count = draw(st.integers(min_value=1, max_value=12))
    ids = [f"m{n}" for n in range(count)]
    messages = []
    for index in range(count):
        pool = [*ids[:index], "ghost-1", "ghost-2"]
        ancestors = tuple(dict.fromkeys(draw(st.lists(st.sampled_from(pool), max_size=3))))
        messages.append(
            message(
                ids[index],
                index,
                ancestors=ancestors,
                subject=draw(st.sampled_from(("Renewal", "Re: Renewal", "Fwd: renewal", "Other"))),
                people=draw(st.sampled_from((PEOPLE, frozenset({"kim@acme.com"})))),
                thread=draw(st.sampled_from((None, None, "t1", "t2"))),
                message_id=draw(st.sampled_from((ids[index], ids[index], None))),
            )
        )
    return messages


@settings(max_examples=300, deadline=None)
@given(message_batches())
def test_incremental_placement_groups_like_the_batch(messages: list[ThreadMessage]) -> None:
    store = MemoryStore()
    for item in messages:
        store.add(item)
    assert {frozenset(keys) for keys in store.members.values()} == groups(messages)


@pytest.mark.corpus
def test_threading_the_enron_corpus_joins_only_same_subject_replies() -> None:
    messages = [ThreadMessage.from_parsed(parse_headers(path.read_bytes())) for path in enron_files()]
    conversations = thread_messages(messages)
    by_key = {item.key: item for item in messages}
    joined = [conversation for conversation in conversations if len(conversation.message_keys) > 1]
    assert sum(len(conversation.message_keys) for conversation in conversations) == len(messages)
    assert joined, "some replies share subject and participants with an earlier message"
    for conversation in joined:
        subjects = {base_subject(by_key[key].subject)[0] for key in conversation.message_keys}
        assert len(subjects) == 1
        for key in conversation.message_keys[1:]:
            assert base_subject(by_key[key].subject)[1]


def _reply(key: str, in_reply_to: str, subject: str) -> bytes:
    return (
        f"From: Sam <sam{key}@acme.com>\r\nTo: Lee <lee@other.example>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 03 Mar 2025 09:1{key}:00 +0000\r\nMessage-ID: <{key}@acme.com>\r\n"
        f"In-Reply-To: {in_reply_to}\r\n\r\nHi\r\n"
    ).encode()


def test_replies_naming_one_author_in_the_older_style_are_not_merged() -> None:
    # Two replies to different messages of one author, In-Reply-To written as older clients do.
    first = parse_headers(
        _reply("1", 'Message from Lee <lee@other.example> of "Mon." <budget@other.example>', "Re: Budget")
    )
    second = parse_headers(
        _reply("2", 'Message from Lee <lee@other.example> of "Tue." <picnic@other.example>', "Re: Picnic")
    )
    messages = [ThreadMessage.from_parsed(first), ThreadMessage.from_parsed(second)]
    assert groups(messages) == {frozenset({"1@acme.com"}), frozenset({"2@acme.com"})}
    assert [m.ancestors for m in messages] == [("budget@other.example",), ("picnic@other.example",)]
    assert lookup_for(messages[0]).message_ids == ("budget@other.example", "1@acme.com")
