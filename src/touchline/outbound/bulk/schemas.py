"""API models of bulk sends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from touchline.models import BulkSend, BulkSkip
from touchline.outbound.analytics.schemas import CohortIn
from touchline.outbound.bulk import service

Mode = Literal["each", "one"]


class BulkSendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(
        alias="from",
        max_length=320,
        description="Your address, a colleague's public address, or `account-owner` (each company's owner)",
    )
    template: str | None = Field(None, max_length=200, description="A stored template's name")
    template_id: uuid.UUID | None = Field(None, description="Or a stored template's id")
    mode: Mode = Field("each", description="each: one personalised email per enduser; one: one email to all")
    filters: list[str] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "All must hold: `company.custom.tier=gold`, `enduser.email~@acme.com`, `company.custom.seats>10`"
        ),
    )
    dry_run: bool = Field(False, description="Count and list the skipped without queueing anything")
    track_opens: bool | None = Field(None, description="Track opens; default: the template's switch")
    track_clicks: bool | None = Field(None, description="Track clicks; default: the template's switch")
    variants: list[str] = Field(
        default_factory=list,
        max_length=9,
        description="Names of further templates to A/B test against `template` (variant A); mode each only",
    )
    metric: Literal["reply_rate", "human_click_rate", "open_rate"] = Field(
        "reply_rate", description="What decides the A/B test (open rate is inflated by mail proxies)"
    )
    test_share: float = Field(0.2, gt=0, le=1, description="The share of the audience in the A/B test")
    test_days: int = Field(7, ge=1, le=90, description="Days after which an undecided A/B test keeps A")
    cohort: CohortIn | None = Field(
        None,
        description="A follow-up: only the endusers of this analytics cohort (and the filters still hold)",
    )

    def request(self, cohort: Sequence[uuid.UUID] | None = None) -> service.BulkRequest:
        return service.BulkRequest(
            self.sender,
            self.template,
            self.template_id,
            self.mode,
            tuple(self.filters),
            self.track_opens,
            self.track_clicks,
            tuple(self.variants),
            self.metric,
            self.test_share,
            self.test_days,
            contact_ids=cohort,
        )


class SkipOut(BaseModel):
    contact_id: uuid.UUID | None
    address: str
    reason: str

    @classmethod
    def of(cls, skip: service.Skip | BulkSkip) -> SkipOut:
        return cls(contact_id=skip.contact_id, address=skip.address, reason=skip.reason)


class BulkSummaryOut(BaseModel):
    """What a bulk send selected: with dry_run nothing was queued and bulk_id is null; otherwise its
    emails are being made (status `queueing`) and GET /bulk-sends/{id} shows the counts grow."""

    bulk_id: uuid.UUID | None
    status: Literal["dry-run", "queueing", "testing", "queued", "refused"]
    recipients: int
    queued: int
    skipped: int
    skipped_endusers: list[SkipOut]

    @classmethod
    def of_plan(cls, plan: service.Plan) -> BulkSummaryOut:
        return cls(
            bulk_id=None,
            status="dry-run",
            recipients=plan.recipients,
            queued=plan.queued,
            skipped=len(plan.skipped),
            skipped_endusers=[SkipOut.of(skip) for skip in plan.skipped],
        )

    @classmethod
    def of_bulk(cls, bulk: BulkSend, skipped: list[BulkSkip]) -> BulkSummaryOut:
        status = _status(bulk)
        return cls(
            bulk_id=bulk.id,
            status=status,
            recipients=bulk.recipients,
            queued=bulk.queued,
            skipped=bulk.skipped,
            skipped_endusers=[SkipOut.of(skip) for skip in skipped],
        )


class BulkSendOut(BaseModel):
    """A bulk send and where its endusers are. `waiting`: queued behind a sending budget (or a retry);
    `continues` says when the earliest of them goes on, on the workspace's clock ("continues tomorrow
    at 09:12 Europe/Berlin")."""

    id: uuid.UUID
    status: Literal["queueing", "testing", "queued", "refused"]
    """testing: the A/B test's first batch was queued; the rest wait for its winner."""
    error: str | None
    sender: str = Field(serialization_alias="from")
    template: str
    template_version: int
    mode: Mode
    filters: list[str]
    created_at: datetime
    queued_at: datetime | None
    recipients: int
    queued: int
    skipped: int
    sent: int
    failed: int
    unknown: int
    waiting: int
    in_queue: int
    continues: str | None
    waiting_reason: str | None

    @classmethod
    def of(cls, bulk: BulkSend, progress: service.Progress) -> BulkSendOut:
        status = _status(bulk)
        mode: Mode = "one" if bulk.mode == "one" else "each"
        return cls(
            id=bulk.id,
            status=status,
            error=bulk.error,
            sender=bulk.sender_choice,
            template=bulk.template_name,
            template_version=bulk.template_version,
            mode=mode,
            filters=list(bulk.filters),
            created_at=bulk.created_at,
            queued_at=bulk.queued_at,
            recipients=progress.recipients,
            queued=progress.queued,
            skipped=progress.skipped,
            sent=progress.sent,
            failed=progress.failed,
            unknown=progress.unknown,
            waiting=progress.waiting,
            in_queue=progress.in_queue,
            continues=progress.continues,
            waiting_reason=progress.waiting_reason,
        )


class CountOut(BaseModel):
    """How many endusers the filters select now, and how many of them would be skipped for their
    address or their unsubscribe (a dry run also names those missing a template's field)."""

    recipients: int
    skipped: int


def _status(bulk: BulkSend) -> Literal["queueing", "testing", "queued", "refused"]:
    shown: dict[str, Literal["testing", "queued", "refused"]] = {
        "testing": "testing",
        "queued": "queued",
        "refused": "refused",
    }
    return shown.get(bulk.status, "queueing")
