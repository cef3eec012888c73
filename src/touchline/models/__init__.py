"""All tables; read together they are the ER diagram."""

import touchline.models.versioning  # noqa: F401 -- registers the directory-version listener
from touchline.models.base import Base
from touchline.models.bulk import BulkSend, BulkSkip
from touchline.models.customers import Company, CompanyDomain, Contact, CustomFieldDefinition
from touchline.models.engagement import EmailEngagement, EngagementEvent, EngagementRollup, TrackedLink
from touchline.models.experiments import Experiment
from touchline.models.inbound import InboundRefusal, SpooledMessage
from touchline.models.jobs import PendingJob
from touchline.models.mail import (
    BackgroundTask,
    Conversation,
    ConversationLink,
    Email,
    EmailCompany,
    EmailContact,
    EmailHolder,
    Mailbox,
    MailboxFolder,
    QuarantinedMessage,
)
from touchline.models.notifications import NotificationDelivery, NotificationSetting
from touchline.models.outbound import OutboundEmail, OutboundRecipient
from touchline.models.send_budgets import SendBudget, SendBudgetEntry
from touchline.models.sequences import Enrolment, Sequence, SequenceStep, StepRun
from touchline.models.templates import Template
from touchline.models.workspace import (
    AccountLink,
    ApiToken,
    AuditEntry,
    Role,
    Throttle,
    User,
    UserSession,
    Workspace,
    WorkspaceSettings,
)

__all__ = [
    "AccountLink",
    "ApiToken",
    "AuditEntry",
    "BackgroundTask",
    "Base",
    "BulkSend",
    "BulkSkip",
    "Company",
    "CompanyDomain",
    "Contact",
    "Conversation",
    "ConversationLink",
    "CustomFieldDefinition",
    "Email",
    "EmailCompany",
    "EmailContact",
    "EmailEngagement",
    "EmailHolder",
    "EngagementEvent",
    "EngagementRollup",
    "Enrolment",
    "Experiment",
    "InboundRefusal",
    "Mailbox",
    "MailboxFolder",
    "NotificationDelivery",
    "NotificationSetting",
    "OutboundEmail",
    "OutboundRecipient",
    "PendingJob",
    "QuarantinedMessage",
    "Role",
    "SendBudget",
    "SendBudgetEntry",
    "Sequence",
    "SequenceStep",
    "SpooledMessage",
    "StepRun",
    "Template",
    "Throttle",
    "TrackedLink",
    "User",
    "UserSession",
    "Workspace",
    "WorkspaceSettings",
]
