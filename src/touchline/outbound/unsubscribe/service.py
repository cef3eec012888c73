"""Unsubscribe links and what they change. A link names the workspace and the contact in a signed
token; the token alone is the authority (the RFC 8058 one-click POST comes from a mail client, with
no cookie and no form token), so a token that was not issued by this installation matches nothing."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError
from touchline.kit.signing import SignedTokens
from touchline.models import Contact
from touchline.outbound.compose.mime import Unsubscribe
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

PURPOSE = "unsubscribe"
LINK_NOT_FOUND = "this unsubscribe link is not valid; it may have been altered or its contact removed"


def _tokens(box: SecretBox) -> SignedTokens:
    return SignedTokens(box, PURPOSE)


def unsubscribe_url(base_url: str, box: SecretBox, workspace_id: uuid.UUID, contact_id: uuid.UUID) -> str:
    return UnsubscribeLinks(base_url, box, workspace_id).url(contact_id)


class UnsubscribeLinks:
    """The unsubscribe links of one workspace's contacts, signed with one signer: deriving its key
    is most of the time of making one link, and a bulk send makes thousands."""

    def __init__(self, base_url: str, box: SecretBox, workspace_id: uuid.UUID) -> None:
        self._prefix = f"{base_url.rstrip('/')}/u/"
        self._tokens = _tokens(box)
        self._workspace = workspace_id.hex

    def url(self, contact_id: uuid.UUID) -> str:
        return self._prefix + self._tokens.issue(self._workspace, contact_id.hex)


def unsubscribe_headers_for(contact: Contact, *, base_url: str, box: SecretBox) -> Unsubscribe:
    """The List-Unsubscribe target of a bulk or sequence email to `contact` (one-click POST)."""
    return Unsubscribe(url=unsubscribe_url(base_url, box, contact.workspace_id, contact.id))


def contact_of_link(session: Session, box: SecretBox, token: str) -> Contact:
    parts = _tokens(box).read(token)
    if parts is None or len(parts) != 2:
        raise NotFoundError(LINK_NOT_FOUND)
    try:
        workspace_id, contact_id = uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1])
    except ValueError:
        raise NotFoundError(LINK_NOT_FOUND) from None
    contact = session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == workspace_id)
    )
    if contact is None:
        raise NotFoundError(LINK_NOT_FOUND)
    return contact


def unsubscribe(session: Session, box: SecretBox, token: str, now: datetime, *, via: str) -> Contact:
    """Records the unsubscribe the link's holder asked for; using the link again changes nothing."""
    contact = contact_of_link(session, box, token)
    if contact.unsubscribed_at is None:
        contact.unsubscribed_at = now
        enduser = Actor(contact.workspace_id, None, f"{contact.email} (unsubscribe link)", frozenset())
        workspace_service.record_audit(
            session,
            enduser,
            "contact.unsubscribe",
            "contact",
            contact.id,
            {"email": contact.email, "via": via},
        )
        session.flush()
    return contact


def clear_unsubscribe(session: Session, actor: Actor, contact_id: uuid.UUID) -> Contact:
    """An editor's undo (the enduser asked to hear from us again): bulk and sequence emails reach them."""
    actor.require(Permission.EDIT_CUSTOMERS)
    contact = workspace_service.get_contact(session, actor, contact_id)
    if contact.unsubscribed_at is not None:
        workspace_service.record_audit(
            session,
            actor,
            "contact.resubscribe",
            "contact",
            contact.id,
            {"email": contact.email, "unsubscribed_at": contact.unsubscribed_at.isoformat()},
        )
        contact.unsubscribed_at = None
        session.flush()
    return contact
