"""A crowd of endusers across companies with custom fields, beside the sending world of the outbox
tests (a member's IMAP mailbox with SMTP on the loopback sink), and a template for bulk sends."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from tests.outbound.send.conftest import (
    World,
    _gmail_server,
    _graph_server,
    dovecot,
    dovecot_oauth2_introspection_url,
    imap_user,
    open_relay,
    queue,
    relay_settings,
    smtp_sink,
    world,
)
from touchline.db import session_scope
from touchline.models import Company, CompanyDomain, Contact, CustomFieldDefinition, Template

__all__ = [
    "_gmail_server",
    "_graph_server",
    "dovecot",
    "dovecot_oauth2_introspection_url",
    "imap_user",
    "open_relay",
    "queue",
    "relay_settings",
    "smtp_sink",
    "world",
]

MEMBER = "member@team-a.example"
NEWS_HTML = (
    "<p>Hi {{ enduser.first_name }},</p><p>{{ company.name }} is on the {{ company.custom.tier }} plan.</p>"
)
ANNOUNCE_HTML = "<p>Hello all,</p><p>news for {{ company.name }} from {{ sender.name }}.</p>"

# name, owner (member/admin/None), tier, seats
COMPANIES = (
    ("Acme", "member", "gold", 50),
    ("Globex", "admin", "silver", 10),
    ("Initech", "member", "gold", 200),
    ("Umbrella", None, "bronze", 5),
)


@dataclass
class Crowd:
    world: World
    companies: dict[str, uuid.UUID]
    contacts: dict[str, uuid.UUID]
    """Address -> contact id of every enduser (Jane of the outbox world included)."""


def _slug(name: str) -> str:
    return name.lower()


@pytest.fixture
def crowd(world: World) -> Crowd:
    """Six endusers at each of four companies (custom fields tier and seats on companies, role on
    endusers), plus Jane at Acme; Acme's first enduser unsubscribed, Initech's first has an address
    touchline cannot send to, Globex's first has no name, and one template of each sort."""
    team = world.team
    world.settings = world.settings.model_copy(update={"base_url": "https://touchline.example"})
    companies: dict[str, uuid.UUID] = {}
    contacts: dict[str, uuid.UUID] = {}
    owners = {"member": team.member_id, "admin": team.admin_id, None: None}
    with session_scope(world.sessions) as session:
        for kind, key, field_type in (
            ("company", "tier", "text"),
            ("company", "seats", "number"),
            ("contact", "role", "text"),
        ):
            session.add(
                CustomFieldDefinition(
                    workspace_id=team.workspace_id, kind=kind, key=key, label=key.title(), type=field_type
                )
            )
        for name, owner, tier, seats in COMPANIES:
            company = session.scalar(
                select(Company).where(Company.workspace_id == team.workspace_id, Company.name == name)
            )
            if company is None:
                company = Company(workspace_id=team.workspace_id, name=name)
                session.add(company)
                session.flush()
                session.add(
                    CompanyDomain(
                        workspace_id=team.workspace_id, company_id=company.id, domain=f"{_slug(name)}.example"
                    )
                )
            company.account_owner_id = owners[owner]
            company.custom_fields = {"tier": tier, "seats": seats}
            companies[name] = company.id
            for index in range(6):
                address = f"user{index}@{_slug(name)}.example"
                if name == "Initech" and index == 0:
                    address = "no-one@initech.invalid"
                contact = Contact(
                    workspace_id=team.workspace_id,
                    email=address,
                    name="" if (name == "Globex" and index == 0) else f"Person{index} {name}",
                    company_id=company.id,
                    custom_fields={"role": "champion" if index % 2 == 0 else "user"},
                    unsubscribed_at=world.clock.now if (name == "Acme" and index == 0) else None,
                )
                session.add(contact)
                session.flush()
                contacts[address] = contact.id
        jane = session.scalars(select(Contact).where(Contact.email == world.contact)).one()
        contacts[jane.email] = jane.id
        for name, html in (("news", NEWS_HTML), ("announce", ANNOUNCE_HTML)):
            session.add(
                Template(
                    workspace_id=team.workspace_id,
                    name=name,
                    subject="{{ company.name }} news",
                    html=html,
                    text=None,
                    track_opens=True,
                    track_clicks=True,
                    version=1,
                    created_by=team.member_id,
                    updated_by=team.member_id,
                )
            )
    return Crowd(world, companies, contacts)
