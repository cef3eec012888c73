"""All tables; read together they are the ER diagram.

The workspace, customer, mail and job tables load with this package. The outbound half's tables
(sending, templates, bulk sends, sequences, send budgets, tracking, experiments and notifications) load
when one of their names is first asked of this package: a process that only syncs or reads mail never
builds their mappings, which cost a command such as `touchline sync` about a tenth of its start-up.
They refer to the tables loaded here and never the other way round, so either order maps the same.

`Base` asked of this package loads every table first: what needs the whole schema (migrations,
creating or emptying every table) gets all of it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import touchline.models.versioning  # noqa: F401 -- registers the directory-version listener
from touchline.models.customers import Company, CompanyDomain, Contact, CustomFieldDefinition
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

if TYPE_CHECKING:
    from touchline.models.base import Base
    from touchline.models.bulk import BulkSend, BulkSkip
    from touchline.models.engagement import EmailEngagement, EngagementEvent, EngagementRollup, TrackedLink
    from touchline.models.experiments import Experiment
    from touchline.models.notifications import NotificationDelivery, NotificationSetting
    from touchline.models.outbound import OutboundEmail, OutboundRecipient
    from touchline.models.send_budgets import SendBudget, SendBudgetEntry
    from touchline.models.sequences import Enrolment, Sequence, SequenceStep, StepRun
    from touchline.models.templates import Template

# Each outbound-half name, by the module that maps it.
_LOADED_WHEN_ASKED = {
    "BulkSend": "bulk",
    "BulkSkip": "bulk",
    "EmailEngagement": "engagement",
    "EngagementEvent": "engagement",
    "EngagementRollup": "engagement",
    "TrackedLink": "engagement",
    "Experiment": "experiments",
    "NotificationDelivery": "notifications",
    "NotificationSetting": "notifications",
    "OutboundEmail": "outbound",
    "OutboundRecipient": "outbound",
    "SendBudget": "send_budgets",
    "SendBudgetEntry": "send_budgets",
    "Enrolment": "sequences",
    "Sequence": "sequences",
    "SequenceStep": "sequences",
    "StepRun": "sequences",
    "Template": "templates",
}


def _load_all() -> None:
    """Map every table (the outbound half's too)."""
    for module in sorted(set(_LOADED_WHEN_ASKED.values())):
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str) -> object:
    if name == "Base":
        _load_all()
        from touchline.models.base import Base

        value: object = Base
    elif name in _LOADED_WHEN_ASKED:
        value = getattr(importlib.import_module(f"{__name__}.{_LOADED_WHEN_ASKED[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # asked once
    return value


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
