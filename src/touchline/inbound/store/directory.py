"""The matching directory of a workspace, loaded from the database and cached per process."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from touchline.db import releasing_a_savepoint
from touchline.inbound.directory import Directory
from touchline.models import CompanyDomain, Contact, User, Workspace, WorkspaceSettings


def load_directory(session: Session, workspace_id: uuid.UUID) -> Directory:
    settings = session.get(WorkspaceSettings, workspace_id)
    if settings is None:
        raise LookupError(f"workspace {workspace_id} has no settings")
    directory = Directory(create_contacts=settings.create_contacts_automatically)
    directory.set_internal_domains(settings.internal_domains)
    directory.set_blocklist(settings.blocklist)
    for email in session.scalars(select(User.email).where(User.workspace_id == workspace_id)):
        directory.add_user(email)
    for company_id, domain in session.execute(
        select(CompanyDomain.company_id, CompanyDomain.domain).where(
            CompanyDomain.workspace_id == workspace_id
        )
    ):
        directory.add_company_domain(str(company_id), domain)
    rows = session.execute(
        select(Contact.email, Contact.company_id).where(Contact.workspace_id == workspace_id)
    ).yield_per(10_000)
    for email, contact_company in rows:
        directory.add_contact(email, str(contact_company) if contact_company else None)
    return directory


class DirectoryCache:
    """Reloads a workspace's directory only when its `directory_version` moved."""

    def __init__(self) -> None:
        self._entries: dict[uuid.UUID, tuple[int, Directory]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, workspace_id: uuid.UUID) -> Directory:
        version = session.scalar(select(Workspace.directory_version).where(Workspace.id == workspace_id))
        if version is None:
            raise LookupError(f"workspace {workspace_id} does not exist")
        with self._lock:
            cached = self._entries.get(workspace_id)
            if cached is not None and cached[0] == version:
                return cached[1]
        directory = load_directory(session, workspace_id)
        with self._lock:
            self._entries[workspace_id] = (version, directory)
        return directory

    def advanced(self, workspace_id: uuid.UUID, version: int, directory: Directory) -> None:
        """A committed transaction moved the workspace's version to `version` by creating contacts
        that `directory` was already told about: when that is the cached directory, one version
        behind, it is current again and need not be read anew. Anything else (another change in
        between, another directory) leaves the cache to reload as usual."""
        with self._lock:
            cached = self._entries.get(workspace_id)
            if cached is not None and cached[0] == version - 1 and cached[1] is directory:
                self._entries[workspace_id] = (version, directory)

    def forget(self, workspace_id: uuid.UUID) -> None:
        with self._lock:
            self._entries.pop(workspace_id, None)


directories = DirectoryCache()

_TOLD_KEY = "touchline.directories_told"


def told_in(session: Session, workspace_id: uuid.UUID) -> None:
    """The workspace's cached directory was told about contacts that `session` has yet to commit:
    should the transaction roll back instead, the directory names contacts that do not exist, and
    is read again next time."""
    session.info.setdefault(_TOLD_KEY, set()).add(workspace_id)


@event.listens_for(Session, "after_rollback")
def _forget_told(session: Session) -> None:
    for workspace_id in session.info.pop(_TOLD_KEY, ()):
        directories.forget(workspace_id)


@event.listens_for(Session, "after_commit")
def _keep_told(session: Session) -> None:
    if releasing_a_savepoint(session):
        return  # the transaction around it may still roll back
    session.info.pop(_TOLD_KEY, None)
