"""Conversation threading, pure: which conversation a message belongs to, and the reply tree.

Messages are linked, in this order of trust, by
1. Message-IDs: a message's own id and the ids it answers (In-Reply-To, References). Any shared id
   puts two messages in one conversation, including the id of a message nobody has, so two replies
   to a missing message still end up together; the reply tree inside a conversation is built as in
   Jamie Zawinski's threading algorithm, with placeholder containers for the missing messages;
2. the provider's thread id (Gmail, Outlook), when there is one;
3. the subject, only for a reply or forward (`Re:`, `Fwd:`, `Fw:`, `AW:`, `SV:`) that carries no
   id at all, and only into an earlier conversation with exactly the same participants. Subjects
   alone never start a link between messages that are not replies.

`place` decides for one new message from what a store already knows (the incremental path);
`thread_messages` threads a whole batch. Fed the same messages in date order, both group them alike.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from touchline.inbound.parse.model import ParsedEmail

# One `\s*` before the optional counter, one after it only when it is there: two in a row would be
# tried in every split of a long run of blanks before a missing colon.
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|sv)\s*(?:(?:\[\d+\]|\^\d+)\s*)?:\s*)+", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def base_subject(subject: str) -> tuple[str, bool]:
    """The subject without reply and forward prefixes, case-folded, spaces squeezed; and whether it
    had such a prefix: `"RE: Fw:  Budget"` -> `("budget", True)`."""
    found = _REPLY_PREFIX.match(subject)
    rest = subject[found.end() :] if found else subject
    return _WHITESPACE.sub(" ", rest).strip().casefold(), found is not None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading needs to know about one message.

    `key` identifies the message (its dedup key); `ancestors` are the ids it answers, oldest first
    (References, then In-Reply-To when it is not already last).
    """

    key: str
    message_id: str | None
    ancestors: tuple[str, ...]
    subject: str
    participants: frozenset[str]
    date: datetime | None = None
    provider_thread_id: str | None = None

    @classmethod
    def from_parsed(cls, email: ParsedEmail, provider_thread_id: str | None = None) -> ThreadMessage:
        ancestors = list(dict.fromkeys(email.references))
        for parent in email.in_reply_to[:1]:
            if parent in ancestors:
                ancestors.remove(parent)
            ancestors.append(parent)
        if email.message_id in ancestors:
            ancestors.remove(email.message_id)
        people = frozenset(mailbox.address for mailbox in (*email.from_, *email.to, *email.cc))
        return cls(
            key=email.dedup_key,
            message_id=email.message_id,
            ancestors=tuple(ancestors),
            subject=email.subject,
            participants=people,
            date=email.date,
            provider_thread_id=provider_thread_id,
        )

    @property
    def has_id_links(self) -> bool:
        """Whether anything but the subject could link this message: ancestors or a provider thread."""
        return bool(self.ancestors or self.provider_thread_id)

    @property
    def subject_key(self) -> str | None:
        """For a reply or forward with no id links: its base subject and exact participants, hashed.

        Every message registers its subject key with its conversation (a reply-less original too,
        computed as if prefixed), but only a prefixed, id-less message ever looks one up.
        """
        subject, _ = base_subject(self.subject)
        if not subject or not self.participants:
            return None
        material = "\n".join((subject, *sorted(self.participants)))
        return "subject:" + hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    @property
    def may_join_by_subject(self) -> bool:
        return not self.has_id_links and base_subject(self.subject)[1]

    @property
    def ids(self) -> tuple[str, ...]:
        """Its own id and every id it answers: what links it to other messages."""
        return (*self.ancestors, *((self.message_id,) if self.message_id else ()))


# ----- incremental ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadLookup:
    """What a store looks up for a new message before calling `place`."""

    message_ids: tuple[str, ...]
    provider_thread_id: str | None
    subject_key: str | None


@dataclass(frozen=True, slots=True)
class KnownThreads:
    """The store's answers: conversations of the ids it knows (placeholders included), of the
    provider thread, and of the subject key; absent keys are unknown."""

    by_message_id: Mapping[str, str] = field(default_factory=dict)
    by_provider_thread: str | None = None
    by_subject_key: str | None = None


PlacementRule = Literal["message-id", "provider-thread", "subject", "new"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a message goes.

    `conversation` None means: start a new one. `merge` lists other conversations the message links
    to, which the store folds into `conversation`. `record` holds the keys the store should map to
    the conversation from now on: ids (placeholders for missing parents included), the provider
    thread and the subject key.
    """

    conversation: str | None
    rule: PlacementRule
    reason: str
    parent_id: str | None
    merge: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()
    record_provider_thread: str | None = None
    record_subject_key: str | None = None


def lookup_for(message: ThreadMessage) -> ThreadLookup:
    return ThreadLookup(
        message_ids=message.ids,
        provider_thread_id=message.provider_thread_id,
        subject_key=message.subject_key if message.may_join_by_subject else None,
    )


def place(message: ThreadMessage, known: KnownThreads) -> Placement:
    """Decide which conversation a new message joins, from the store's answers to `lookup_for`."""
    # The nearest link wins: the direct parent, then older ancestors, then the message's own id
    # (recorded as a placeholder by a reply that arrived first).
    found: list[str] = []
    linking_id: str | None = None
    for message_id in (*reversed(message.ancestors), *([message.message_id] if message.message_id else [])):
        conversation = known.by_message_id.get(message_id)
        if conversation is not None and conversation not in found:
            found.append(conversation)
            linking_id = linking_id or message_id
    by_thread = known.by_provider_thread if message.provider_thread_id else None
    if by_thread is not None and by_thread not in found:
        found.append(by_thread)
    parent_id = message.ancestors[-1] if message.ancestors else None
    if found and linking_id is not None:
        rule: PlacementRule = "message-id"
        reason = f"it is linked by Message-ID {linking_id}"
    elif found:
        rule, reason = "provider-thread", f"the provider puts it in thread {message.provider_thread_id}"
    elif message.may_join_by_subject and known.by_subject_key is not None:
        found.append(known.by_subject_key)
        rule = "subject"
        reason = f"a reply to the subject {base_subject(message.subject)[0]!r} with the same participants"
    else:
        rule, reason = "new", "nothing links it to a known conversation"
    return Placement(
        conversation=found[0] if found else None,
        rule=rule,
        reason=reason,
        parent_id=parent_id,
        merge=tuple(found[1:]),
        record_ids=message.ids,
        record_provider_thread=message.provider_thread_id,
        record_subject_key=message.subject_key,
    )


# ----- batch -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadNode:
    """One container of the reply tree: a message, or a placeholder for a referenced message that is
    not among those threaded (`message_key` None)."""

    message_id: str | None
    message_key: str | None
    children: tuple[ThreadNode, ...] = ()


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation: its messages in date order and its reply trees (one per root)."""

    key: str
    message_keys: tuple[str, ...]
    roots: tuple[ThreadNode, ...]


class _Container:
    __slots__ = ("children", "message", "message_id", "parent")

    def __init__(self, message_id: str | None, message: ThreadMessage | None = None) -> None:
        self.message_id = message_id
        self.message = message
        self.parent: _Container | None = None
        self.children: list[_Container] = []

    def is_ancestor_of(self, other: _Container) -> bool:
        walker: _Container | None = other
        while walker is not None:
            if walker is self:
                return True
            walker = walker.parent
        return False

    def adopt(self, child: _Container) -> None:
        if child is self or child.is_ancestor_of(self):
            return  # the link would make a loop
        if child.parent is not None:
            child.parent.children.remove(child)
        child.parent = self
        self.children.append(child)


def thread_messages(messages: Sequence[ThreadMessage]) -> tuple[Conversation, ...]:
    """Thread a batch: reply trees by Message-ID, then provider threads, then id-less replies by subject.

    Conversations come in the order of their first message; each is keyed by its first message.
    """
    ordered = sorted(messages, key=_date_order)
    by_id: dict[str, _Container] = {}
    containers: dict[str, _Container] = {}
    for message in ordered:
        containers[message.key] = _link(message, by_id)

    # Conversations are the messages connected by any shared id. The reply tree keeps at most one
    # parent per message and may drop a reference to keep that so; the conversation never does.
    groups = _Groups(message.key for message in ordered)
    first_with_id: dict[str, str] = {}
    for message in ordered:
        for message_id in message.ids:
            groups.join(first_with_id.setdefault(message_id, message.key), message.key)
    first_in_thread: dict[str, str] = {}
    first_with_subject: dict[str, str] = {}
    for message in ordered:
        if message.provider_thread_id is not None:
            earlier = first_in_thread.setdefault(message.provider_thread_id, message.key)
            groups.join(message.key, earlier)
        subject_key = message.subject_key
        if subject_key is None:
            continue
        earlier_subject = first_with_subject.get(subject_key)
        if earlier_subject is not None and message.may_join_by_subject:
            groups.join(message.key, earlier_subject)
        first_with_subject.setdefault(subject_key, message.key)

    members: dict[str, list[ThreadMessage]] = {}
    for message in ordered:
        members.setdefault(groups.find(message.key), []).append(message)
    conversations = []
    for group in members.values():
        roots: dict[int, _Container] = {}
        for message in group:
            root = _root(containers[message.key])
            roots.setdefault(id(root), root)
        conversations.append(
            Conversation(
                key=group[0].key,
                message_keys=tuple(message.key for message in group),
                roots=tuple(_freeze(root) for root in roots.values()),
            )
        )
    return tuple(conversations)


def _date_order(message: ThreadMessage) -> tuple[datetime, str]:
    date = message.date
    if date is not None and date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return (date or _EARLIEST, message.key)


def _link(message: ThreadMessage, by_id: dict[str, _Container]) -> _Container:
    """Put a message into the id table and link it under its ancestors (JWZ steps 1A-1C)."""
    container: _Container | None = None
    if message.message_id is not None:
        existing = by_id.get(message.message_id)
        if existing is None:
            container = by_id[message.message_id] = _Container(message.message_id, message)
        elif existing.message is None:
            existing.message = message
            container = existing
    if container is None:
        # No id, or a second message with an id already taken: its own container, beside the first.
        container = _Container(message.message_id, message)
        if message.message_id is not None:
            twin = by_id[message.message_id]
            if twin.parent is not None:
                twin.parent.adopt(container)
            else:
                twin.adopt(container)
    previous: _Container | None = None
    for ancestor_id in message.ancestors:
        ancestor = by_id.get(ancestor_id)
        if ancestor is None:
            ancestor = by_id[ancestor_id] = _Container(ancestor_id)
        if previous is not None and ancestor.parent is None:
            previous.adopt(ancestor)
        previous = ancestor
    if previous is not None:
        previous.adopt(container)
    return container


def _root(container: _Container) -> _Container:
    while container.parent is not None:
        container = container.parent
    return container


def _freeze(container: _Container) -> ThreadNode:
    children = sorted(
        (_freeze(child) for child in container.children),
        key=lambda node: (node.message_key is None, node.message_key or node.message_id or ""),
    )
    key = container.message.key if container.message is not None else None
    return ThreadNode(container.message_id, key, tuple(children))


class _Groups:
    """Union-find over message keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._parent = {key: key for key in keys}

    def find(self, key: str) -> str:
        root = key
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[key] != root:
            self._parent[key], key = root, self._parent[key]
        return root

    def join(self, first: str, second: str) -> None:
        first_root, second_root = self.find(first), self.find(second)
        if first_root != second_root:
            self._parent[second_root] = first_root
