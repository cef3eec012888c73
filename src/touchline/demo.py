"""The demo workspace behind the README's first command: a few customers and two users."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import NotFoundError
from touchline.models import User, Workspace
from touchline.workspace import importing, service
from touchline.workspace.permissions import Actor

DEMO_WORKSPACE = "Demo"
DEMO_DOMAIN = "touchline-demo.example"
DEMO_ADMIN = f"admin@{DEMO_DOMAIN}"
DEMO_MEMBER = f"casey@{DEMO_DOMAIN}"


def ensure_demo_workspace(session: Session, box: SecretBox, settings: Settings, password: str) -> str:
    """Create the demo workspace once; on every run give its admin `password`. Returns the admin's email."""
    workspace = session.scalar(select(Workspace).where(Workspace.name == DEMO_WORKSPACE))
    if workspace is None:
        workspace = service.create_workspace(
            session,
            box,
            DEMO_WORKSPACE,
            internal_domains=[DEMO_DOMAIN],
            inbound_domain=settings.inbound_domain,
        )
        operator = Actor.operator(workspace.id)
        service.add_user(session, operator, DEMO_ADMIN, name="Demo Admin", role="Admin", password=password)
        service.add_user(session, operator, DEMO_MEMBER, name="Casey Member", role="Member")
        data = files("touchline.demo_data")
        importing.import_companies(session, operator, data.joinpath("companies.csv").read_bytes())
        importing.import_contacts(session, operator, data.joinpath("contacts.csv").read_bytes())
        return DEMO_ADMIN
    admin = session.scalar(select(User).where(User.email == DEMO_ADMIN))
    if admin is None:
        raise NotFoundError(f"the demo workspace exists but {DEMO_ADMIN} is gone; remove the data folder")
    service.update_user(session, Actor.operator(workspace.id), admin.id, password=password, active=True)
    return DEMO_ADMIN
