"""All tables; read together they are the ER diagram."""

from touchline.models.base import Base
from touchline.models.customers import Company, CompanyDomain, Contact
from touchline.models.workspace import ApiToken, AuditEntry, Role, User, Workspace, WorkspaceSettings

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Company",
    "CompanyDomain",
    "Contact",
    "Role",
    "User",
    "Workspace",
    "WorkspaceSettings",
]
