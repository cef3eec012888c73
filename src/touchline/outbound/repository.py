"""What sending reads from the database: the merge fields of recipients, typed as the compose stage
takes them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence, Set
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.inbound.store.bulk import chunks
from touchline.models import Company, CompanyDomain, Contact, User
from touchline.outbound.compose.merge import CompanyFields, EnduserFields, MergeContext, SenderFields
from touchline.workspace import service as workspace_service
from touchline.workspace.custom_fields import FieldType, typed_values
from touchline.workspace.permissions import Actor, Permission


def sender_fields(user: User) -> SenderFields:
    return SenderFields(name=user.name or user.email, email=user.email)


def _enduser_fields(
    email: str, name: str, custom_fields: Mapping[str, Any], types: Mapping[str, FieldType]
) -> EnduserFields:
    # A contact has one name; its first word is the first name, the rest the last name.
    first, _, last = name.strip().partition(" ")
    return EnduserFields(
        email=email,
        first_name=first or None,
        last_name=last.strip() or None,
        custom=typed_values(types, custom_fields),
    )


def _company_fields(
    session: Session, workspace_id: uuid.UUID, company_ids: Set[uuid.UUID], types: Mapping[str, FieldType]
) -> dict[uuid.UUID, CompanyFields]:
    """The merge fields of these companies: the first of their domains in order, their owner."""
    fields: dict[uuid.UUID, CompanyFields] = {}
    for some in chunks(sorted(company_ids)):
        first_domains: dict[uuid.UUID, str] = {}
        for company_id, domain in session.execute(
            select(CompanyDomain.company_id, CompanyDomain.domain)
            .where(CompanyDomain.company_id.in_(some))
            .order_by(CompanyDomain.domain)
        ):
            first_domains.setdefault(company_id, domain)
        rows = session.execute(
            select(Company.id, Company.name, Company.custom_fields, User.name, User.email)
            .outerjoin(User, User.id == Company.account_owner_id)
            .where(Company.workspace_id == workspace_id, Company.id.in_(some))
        )
        fields.update(
            (
                company_id,
                CompanyFields(
                    name=name,
                    domain=first_domains.get(company_id),
                    owner_name=(owner_name or owner_email) if owner_email is not None else None,
                    owner_email=owner_email,
                    custom=typed_values(types, custom_fields),
                ),
            )
            for company_id, name, custom_fields, owner_name, owner_email in rows
        )
    return fields


class ContactColumns(Protocol):
    """The columns of a contact its merge context is made from (a row read as plain columns)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def custom_fields(self) -> Mapping[str, Any]: ...
    @property
    def company_id(self) -> uuid.UUID | None: ...


def merge_contexts(
    session: Session, actor: Actor, contact_ids: Sequence[uuid.UUID], sender: User
) -> dict[uuid.UUID, MergeContext]:
    """The merge context of each of the actor's workspace's contacts named (others are left out),
    with their companies and typed custom values, as `sender` would send to them. Read as plain
    columns, not ORM entities: a bulk send reads thousands."""
    actor.require(Permission.VIEW_CUSTOMERS)
    contacts = session.execute(
        select(Contact.id, Contact.email, Contact.name, Contact.custom_fields, Contact.company_id).where(
            Contact.workspace_id == actor.workspace_id, Contact.id.in_(contact_ids)
        )
    ).all()
    return contexts_of(session, actor, contacts, sender)


def contexts_of(
    session: Session, actor: Actor, contacts: Sequence[ContactColumns], sender: User
) -> dict[uuid.UUID, MergeContext]:
    """`merge_contexts` of contacts already read as columns (from the actor's workspace): a bulk
    send reads its endusers once, for the merge fields and for its own decisions, and their
    companies once each (in lists of bounded length, however many there are)."""
    actor.require(Permission.VIEW_CUSTOMERS)
    enduser_types = workspace_service.custom_field_types(session, actor.workspace_id, "contact")
    company_types = workspace_service.custom_field_types(session, actor.workspace_id, "company")
    companies = _company_fields(
        session,
        actor.workspace_id,
        {row.company_id for row in contacts if row.company_id is not None},
        company_types,
    )
    sending = sender_fields(sender)
    return {
        row.id: MergeContext(
            enduser=_enduser_fields(row.email, row.name, row.custom_fields, enduser_types),
            sender=sending,
            company=companies.get(row.company_id) if row.company_id is not None else None,
        )
        for row in contacts
    }


def merge_context(
    session: Session, actor: Actor, contact_id: uuid.UUID, sender_id: uuid.UUID
) -> MergeContext:
    """One contact's merge context; NotFoundError when the contact or the sender is not the workspace's."""
    sender = workspace_service.get_user(session, actor, sender_id)
    contact = workspace_service.get_contact(session, actor, contact_id)
    return merge_contexts(session, actor, [contact.id], sender)[contact.id]
