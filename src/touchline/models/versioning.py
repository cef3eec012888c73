"""Keeps `Workspace.directory_version` moving whenever what the matching rules read changes.

Only what the rules read counts: Last Touch, names and custom fields change on every stored email and
must not make every worker reload a directory that may hold a million contacts.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, inspect, update
from sqlalchemy.orm import Session, UOWTransaction

from touchline.models.customers import Company, CompanyDomain, Contact
from touchline.models.workspace import User, Workspace, WorkspaceSettings

# For each model: the attributes whose change alters what the rules see. New and deleted rows of
# these models always count (a deleted company takes its domains and contact links with it).
_WATCHED: dict[type[Any], tuple[str, ...]] = {
    CompanyDomain: ("domain", "company_id"),
    Contact: ("email", "company_id"),
    User: ("email",),
    WorkspaceSettings: ("internal_domains", "blocklist", "create_contacts_automatically"),
    Company: (),
}


def _relevant(session: Session, instance: object) -> bool:
    watched = _WATCHED.get(type(instance))
    if watched is None:
        return False
    if instance in session.new or instance in session.deleted:
        return not (isinstance(instance, Company) and instance in session.new)
    state = inspect(instance)
    return any(state.attrs[name].history.has_changes() for name in watched)


@event.listens_for(Session, "after_flush")
def _bump_directory_versions(session: Session, _context: UOWTransaction) -> None:
    changed: set[uuid.UUID] = set()
    for instance in (*session.new, *session.dirty, *session.deleted):
        if _relevant(session, instance):
            workspace_id: Any = getattr(instance, "workspace_id", None)
            if workspace_id is not None:
                changed.add(workspace_id)
    bump_directory_versions(session, changed)


def bump_directory_versions(session: Session, workspace_ids: set[uuid.UUID]) -> None:
    """Tell every cached directory of these workspaces to reload; also for rows written in bulk,
    which never reach the flush hook above."""
    if workspace_ids:
        session.connection().execute(
            update(Workspace)
            .where(Workspace.id.in_(workspace_ids))
            .values(directory_version=Workspace.directory_version + 1)
            .execution_options(synchronize_session=False)
        )
