"""What sending reads from the database: the merge fields of recipients, typed as the compose stage
takes them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.models import Contact, User
from touchline.outbound.compose.merge import CompanyFields, EnduserFields, MergeContext, SenderFields
from touchline.workspace import service as workspace_service
from touchline.workspace.custom_fields import FieldType, typed_values
from touchline.workspace.permissions import Actor, Permission


def sender_fields(user: User) -> SenderFields:
    return SenderFields(name=user.name or user.email, email=user.email)


def _enduser_fields(contact: Contact, types: Mapping[str, FieldType]) -> EnduserFields:
    # A contact has one name; its first word is the first name, the rest the last name.
    first, _, last = contact.name.strip().partition(" ")
    return EnduserFields(
        email=contact.email,
        first_name=first or None,
        last_name=last.strip() or None,
        custom=typed_values(types, contact.custom_fields),
    )


def _company_fields(contact: Contact, types: Mapping[str, FieldType]) -> CompanyFields | None:
    company = contact.company
    if company is None:
        return None
    domains = [row.domain for row in company.domains]
    owner = company.account_owner
    return CompanyFields(
        name=company.name,
        domain=domains[0] if domains else None,
        owner_name=(owner.name or owner.email) if owner else None,
        owner_email=owner.email if owner else None,
        custom=typed_values(types, company.custom_fields),
    )


def merge_contexts(
    session: Session, actor: Actor, contact_ids: Sequence[uuid.UUID], sender: User
) -> dict[uuid.UUID, MergeContext]:
    """The merge context of each of the actor's workspace's contacts named (others are left out),
    with their companies and typed custom values, as `sender` would send to them."""
    actor.require(Permission.VIEW_CUSTOMERS)
    contacts = session.scalars(
        select(Contact).where(Contact.workspace_id == actor.workspace_id, Contact.id.in_(contact_ids))
    )
    enduser_types = workspace_service.custom_field_types(session, actor.workspace_id, "contact")
    company_types = workspace_service.custom_field_types(session, actor.workspace_id, "company")
    sending = sender_fields(sender)
    return {
        contact.id: MergeContext(
            enduser=_enduser_fields(contact, enduser_types),
            sender=sending,
            company=_company_fields(contact, company_types),
        )
        for contact in contacts
    }


def merge_context(
    session: Session, actor: Actor, contact_id: uuid.UUID, sender_id: uuid.UUID
) -> MergeContext:
    """One contact's merge context; NotFoundError when the contact or the sender is not the workspace's."""
    sender = workspace_service.get_user(session, actor, sender_id)
    contact = workspace_service.get_contact(session, actor, contact_id)
    return merge_contexts(session, actor, [contact.id], sender)[contact.id]
