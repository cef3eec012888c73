"""Which conversation a stored email joins: the pure decision of `touchline.inbound.thread`, with the
keys it needs (Message-IDs, provider thread ids, subject keys) kept in `conversation_links`.

A key recorded for a missing parent stays in the table, so a parent that arrives after its replies
finds their conversation, and a message linking two conversations folds them into one.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from touchline.inbound.parse import ParsedEmail
from touchline.inbound.thread import KnownThreads, ThreadMessage, lookup_for, place
from touchline.models import Conversation, ConversationLink, Email


def _id_key(message_id: str) -> str:
    return f"id:{message_id}"


def assign_conversation(
    session: Session,
    workspace_id: uuid.UUID,
    email: ParsedEmail,
    *,
    provider_thread_id: str | None,
    provider: str,
    sent_at: datetime | None,
) -> uuid.UUID:
    # Thread ids are only unique within one provider; the prefix keeps Gmail's and Graph's apart.
    thread_key = f"thread:{provider}:{provider_thread_id}" if provider_thread_id else None
    message = ThreadMessage.from_parsed(email, provider_thread_id=thread_key)
    lookup = lookup_for(message)
    wanted = [_id_key(message_id) for message_id in lookup.message_ids]
    if thread_key:
        wanted.append(thread_key)
    if lookup.subject_key:
        wanted.append(lookup.subject_key)
    found = dict(
        session.execute(
            select(ConversationLink.key, ConversationLink.conversation_id).where(
                ConversationLink.workspace_id == workspace_id, ConversationLink.key.in_(wanted)
            )
        ).all()
    )
    known = KnownThreads(
        by_message_id={
            message_id: str(found[_id_key(message_id)])
            for message_id in lookup.message_ids
            if _id_key(message_id) in found
        },
        by_provider_thread=str(found[thread_key]) if thread_key and thread_key in found else None,
        by_subject_key=str(found[lookup.subject_key])
        if lookup.subject_key and lookup.subject_key in found
        else None,
    )
    placement = place(message, known)
    if placement.conversation is None:
        conversation = Conversation(workspace_id=workspace_id, subject=email.subject[:1000])
        session.add(conversation)
        session.flush()
        conversation_id = conversation.id
    else:
        conversation_id = uuid.UUID(placement.conversation)
    for other in placement.merge:
        _merge(session, workspace_id, into=conversation_id, other=uuid.UUID(other))
    keys = [_id_key(message_id) for message_id in placement.record_ids]
    keys += [key for key in (placement.record_provider_thread, placement.record_subject_key) if key]
    _add_links(session, workspace_id, conversation_id, keys)
    row = session.get(Conversation, conversation_id)
    if (
        row is not None
        and sent_at is not None
        and (row.last_message_at is None or sent_at > row.last_message_at)
    ):
        row.last_message_at = sent_at
    return conversation_id


def _add_links(
    session: Session, workspace_id: uuid.UUID, conversation_id: uuid.UUID, keys: list[str]
) -> None:
    keys = list(dict.fromkeys(keys))
    existing = set(
        session.scalars(
            select(ConversationLink.key).where(
                ConversationLink.workspace_id == workspace_id, ConversationLink.key.in_(keys)
            )
        )
    )
    for key in keys:
        if key not in existing:
            session.add(ConversationLink(workspace_id=workspace_id, key=key, conversation_id=conversation_id))
    session.flush()


def _merge(session: Session, workspace_id: uuid.UUID, *, into: uuid.UUID, other: uuid.UUID) -> None:
    """A message that links two conversations (a missing parent arriving late) makes them one."""
    if other == into:
        return
    for model in (Email, ConversationLink):
        session.execute(
            update(model)
            .where(model.workspace_id == workspace_id, model.conversation_id == other)
            .values(conversation_id=into)
            .execution_options(synchronize_session=False)
        )
    merged = session.get(Conversation, other)
    target = session.get(Conversation, into)
    if merged is not None and target is not None:
        if merged.last_message_at and (
            target.last_message_at is None or merged.last_message_at > target.last_message_at
        ):
            target.last_message_at = merged.last_message_at
        session.delete(merged)
    session.flush()
