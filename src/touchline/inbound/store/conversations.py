"""Which conversation each stored email joins: the pure decision of `touchline.inbound.thread`, with the
keys it needs (Message-IDs, provider thread ids, subject keys) kept in `conversation_links`.

A key recorded for a missing parent stays in the table, so a parent that arrives after its replies
finds their conversation, and a message linking two conversations folds them into one.

A whole batch is threaded with one look-up of the keys it needs: the messages are placed one after
the other in memory, each seeing the keys the earlier ones recorded, and what changed is written
at the end with a statement per kind of change rather than per message.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from touchline.inbound.parse import ParsedEmail
from touchline.inbound.store.bulk import (
    chunks,
    insert_returning_inserted,
    insert_rows,
    move_forward,
)
from touchline.inbound.thread import KnownThreads, ThreadMessage, lookup_for, place
from touchline.models import Conversation, ConversationLink, Email


class ThreadingContended(Exception):
    """Another writer recorded one of this batch's thread keys for another conversation meanwhile;
    the batch is placed again from what is stored now."""


@dataclass(frozen=True, slots=True)
class ToThread:
    email: ParsedEmail
    provider_thread_id: str | None
    provider: str


def _id_key(message_id: str) -> str:
    return f"id:{message_id}"


def _thread_key(item: ToThread) -> str | None:
    # Thread ids are only unique within one provider; the prefix keeps Gmail's and Graph's apart.
    return f"thread:{item.provider}:{item.provider_thread_id}" if item.provider_thread_id else None


@dataclass
class _Batch:
    known: dict[str, uuid.UUID]
    new_links: dict[str, uuid.UUID] = field(default_factory=dict)
    new_conversations: dict[uuid.UUID, str] = field(default_factory=dict)
    merged_into: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    stored_merges: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)
    latest: dict[uuid.UUID, datetime] = field(default_factory=dict)

    def resolve(self, conversation: uuid.UUID) -> uuid.UUID:
        while conversation in self.merged_into:
            conversation = self.merged_into[conversation]
        return conversation

    def lookup(self, key: str | None) -> uuid.UUID | None:
        found = self.known.get(key) if key else None
        return self.resolve(found) if found is not None else None

    def merge(self, other: uuid.UUID, into: uuid.UUID) -> None:
        if other == into:
            return
        self.merged_into[other] = into
        if other in self.new_conversations:
            del self.new_conversations[other]
        else:
            self.stored_merges.append((other, into))
        moment = self.latest.pop(other, None)
        if moment is not None:
            self.seen(into, moment)

    def seen(self, conversation: uuid.UUID, moment: datetime | None) -> None:
        if moment is not None and (conversation not in self.latest or moment > self.latest[conversation]):
            self.latest[conversation] = moment

    def record(self, conversation: uuid.UUID, keys: Iterable[str]) -> None:
        for key in keys:
            if key not in self.known:
                self.known[key] = conversation
                self.new_links[key] = conversation


def assign_conversations(
    session: Session, workspace_id: uuid.UUID, items: Sequence[ToThread]
) -> list[uuid.UUID]:
    """Place each item, in order, and record what placing them changed; returns their conversations.

    New conversations are inserted here, before the emails that point at them are.
    """
    messages = [ThreadMessage.from_parsed(item.email, provider_thread_id=_thread_key(item)) for item in items]
    wanted: set[str] = set()
    for message in messages:
        lookup = lookup_for(message)
        wanted.update(_id_key(message_id) for message_id in lookup.message_ids)
        # Every key a message may record is looked up, not only those it may join by: a key already
        # stored keeps its conversation, and the insert must know it is not new.
        wanted.update(key for key in (message.provider_thread_id, message.subject_key) if key)
    batch = _Batch(known=_stored_links(session, workspace_id, wanted))

    placed: list[uuid.UUID] = []
    for item, message in zip(items, messages, strict=True):
        lookup = lookup_for(message)
        by_id = {
            message_id: str(conversation)
            for message_id in lookup.message_ids
            if (conversation := batch.lookup(_id_key(message_id))) is not None
        }
        by_thread = batch.lookup(message.provider_thread_id)
        by_subject = batch.lookup(lookup.subject_key)
        placement = place(
            message,
            KnownThreads(
                by_message_id=by_id,
                by_provider_thread=str(by_thread) if by_thread else None,
                by_subject_key=str(by_subject) if by_subject else None,
            ),
        )
        if placement.conversation is None:
            conversation = uuid.uuid4()
            batch.new_conversations[conversation] = item.email.subject[:1000]
        else:
            conversation = uuid.UUID(placement.conversation)
        for other in placement.merge:
            batch.merge(batch.resolve(uuid.UUID(other)), conversation)
        keys = [_id_key(message_id) for message_id in placement.record_ids]
        keys += [key for key in (placement.record_provider_thread, placement.record_subject_key) if key]
        batch.record(conversation, keys)
        batch.seen(conversation, item.email.date)
        placed.append(conversation)

    _write(session, workspace_id, batch)
    return [batch.resolve(conversation) for conversation in placed]


def _stored_links(session: Session, workspace_id: uuid.UUID, keys: Iterable[str]) -> dict[str, uuid.UUID]:
    found: dict[str, uuid.UUID] = {}
    for part in chunks(sorted(keys)):
        found.update(
            session.execute(
                select(ConversationLink.key, ConversationLink.conversation_id).where(
                    ConversationLink.workspace_id == workspace_id, ConversationLink.key.in_(part)
                )
            ).all()
        )
    return found


def _write(session: Session, workspace_id: uuid.UUID, batch: _Batch) -> None:
    latest = {batch.resolve(conversation): moment for conversation, moment in batch.latest.items()}
    folded = {other for other, _ in batch.stored_merges}
    for other, moment in _last_messages(session, folded).items():
        into = batch.resolve(other)
        if moment is not None and (into not in latest or moment > latest[into]):
            latest[into] = moment
    if batch.new_conversations:
        insert_rows(
            session,
            Conversation,
            [
                {
                    "id": conversation,
                    "workspace_id": workspace_id,
                    "subject": subject,
                    "last_message_at": latest.get(conversation),
                }
                for conversation, subject in batch.new_conversations.items()
            ],
        )
    for other in folded:
        _fold_stored(session, workspace_id, other=other, into=batch.resolve(other))
    links = {key: batch.resolve(conversation) for key, conversation in batch.new_links.items()}
    inserted = insert_returning_inserted(
        session,
        ConversationLink,
        [
            {"workspace_id": workspace_id, "key": key, "conversation_id": conversation}
            for key, conversation in links.items()
        ],
        "key",
    )
    # A key that another writer recorded between the look-up and the insert keeps its conversation;
    # placing the batch again from the stored keys merges the two as any late parent would.
    if len(inserted) != len(links):
        raise ThreadingContended("another writer threaded the same conversation at the same moment")
    move_forward(
        session,
        Conversation,
        "last_message_at",
        {c: moment for c, moment in latest.items() if c not in batch.new_conversations},
    )


def _last_messages(session: Session, conversations: set[uuid.UUID]) -> dict[uuid.UUID, datetime | None]:
    if not conversations:
        return {}
    return dict(
        session.execute(
            select(Conversation.id, Conversation.last_message_at).where(Conversation.id.in_(conversations))
        ).all()
    )


def _fold_stored(session: Session, workspace_id: uuid.UUID, *, other: uuid.UUID, into: uuid.UUID) -> None:
    """A message that links two stored conversations (a missing parent arriving late) makes them one."""
    for model in (Email, ConversationLink):
        session.execute(
            update(model)
            .where(model.workspace_id == workspace_id, model.conversation_id == other)
            .values(conversation_id=into)
            .execution_options(synchronize_session=False)
        )
    session.execute(
        delete(Conversation)
        .where(Conversation.workspace_id == workspace_id, Conversation.id == other)
        .execution_options(synchronize_session=False)
    )
