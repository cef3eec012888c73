"""All tables; read together they are the ER diagram."""

from touchline.models.base import Base
from touchline.models.customers import Company, CompanyDomain, Contact
from touchline.models.mail import (
    BackgroundTask,
    Conversation,
    Email,
    EmailCompany,
    EmailContact,
    EmailHolder,
    Mailbox,
    MailboxFolder,
    QuarantinedMessage,
)
from touchline.models.workspace import ApiToken, AuditEntry, Role, User, Workspace, WorkspaceSettings

__all__ = [
    "ApiToken",
    "AuditEntry",
    "BackgroundTask",
    "Base",
    "Company",
    "CompanyDomain",
    "Contact",
    "Conversation",
    "Email",
    "EmailCompany",
    "EmailContact",
    "EmailHolder",
    "Mailbox",
    "MailboxFolder",
    "QuarantinedMessage",
    "Role",
    "User",
    "Workspace",
    "WorkspaceSettings",
]
