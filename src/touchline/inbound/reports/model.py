"""What inbound tells outbound about mail that reports on mail touchline sent.

Inbound never imports outbound: after a commit it sends these named jobs, which engagement tracking
registers. `STORED_JOB` names newly stored customer emails (replies are found among them);
`DELIVERY_REPORT_JOB` carries a delivery report, which is not stored as a conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

STORED_JOB: Final = "mail.stored"
"""kwargs: workspace_id (str), email_ids (list of str): emails stored for the first time."""
DELIVERY_REPORT_JOB: Final = "mail.delivery_report"
"""kwargs: workspace_id (str), report (dict, `DeliveryReport.to_json()`)."""

ReportKind = Literal["hard", "soft", "blocked", "delayed", "auto_reply"]


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """One recipient's line of a delivery report."""

    address: str
    kind: Literal["hard", "soft", "blocked", "delayed"]
    action: str = ""
    """RFC 3464 Action (failed, delayed, ...), empty when the report had none."""
    status: str = ""
    """The enhanced status code (5.1.1), empty when none was given."""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """A bounce or delay report: which sent messages it is about, and what became of whom."""

    kind: Literal["hard", "soft", "blocked", "delayed"]
    """The report's overall class: the worst of its recipients' (hard > blocked > soft > delayed)."""
    recipients: tuple[RecipientReport, ...]
    returned_message_ids: tuple[str, ...]
    """Message-IDs (in angle brackets) of the returned message, from the report's returned headers;
    the sent email is found by these."""
    received_at: datetime | None = None
    reporter: str = ""
    """The report's From address (a mailer daemon or postmaster)."""
    mailbox_id: str | None = None
    """The mailbox it was synced from (None: logged)."""
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "recipients": [
                {
                    "address": one.address,
                    "kind": one.kind,
                    "action": one.action,
                    "status": one.status,
                    "diagnostic": one.diagnostic,
                }
                for one in self.recipients
            ],
            "returned_message_ids": list(self.returned_message_ids),
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "reporter": self.reporter,
            "mailbox_id": self.mailbox_id,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> DeliveryReport:
        raw_recipients = data.get("recipients")
        recipients = tuple(
            RecipientReport(
                address=str(one["address"]),
                kind=one["kind"],
                action=str(one.get("action", "")),
                status=str(one.get("status", "")),
                diagnostic=str(one.get("diagnostic", "")),
            )
            for one in (raw_recipients if isinstance(raw_recipients, list) else [])
            if isinstance(one, dict)
        )
        received = data.get("received_at")
        ids = data.get("returned_message_ids")
        notes = data.get("notes")
        mailbox = data.get("mailbox_id")
        return cls(
            kind=data["kind"],  # type: ignore[arg-type]  # written by to_json from a ReportKind
            recipients=recipients,
            returned_message_ids=tuple(str(one) for one in ids) if isinstance(ids, list) else (),
            received_at=datetime.fromisoformat(received) if isinstance(received, str) else None,
            reporter=str(data.get("reporter", "")),
            mailbox_id=str(mailbox) if mailbox is not None else None,
            notes=tuple(str(one) for one in notes) if isinstance(notes, list) else (),
        )
