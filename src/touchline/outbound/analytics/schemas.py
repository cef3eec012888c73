"""API models of engagement analytics."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from touchline.outbound.analytics.service import CohortMember, Group, SendOut


class CountsOut(BaseModel):
    sent: int
    open_tracked: int
    """Emails sent with open tracking on: the open rate's denominator."""
    opened: int
    human_open_known: int
    """Emails whose human open rate is known: the human open rate's denominator."""
    human_opened: int
    click_tracked: int
    clicked: int
    human_click_known: int
    human_clicked: int
    replied: int
    bounced: int


class GroupOut(BaseModel):
    group: str
    """The group's id: a UUID, `sequence:step`, the variant or the period's first day ("" for none)."""
    label: str
    sent: int
    open_rate: float | None
    """Percent of the emails with open tracking on that were opened; None when none had it on."""
    human_open_rate: float | None
    click_rate: float | None
    human_click_rate: float | None
    reply_rate: float | None
    bounce_rate: float | None
    counts: CountsOut
    last_sent_at: datetime | None
    last_touch_at: datetime | None
    """Companies and endusers: the last email to or from them."""
    emails_in: int | None = None
    """Companies and endusers: the emails on their timeline from outside the team, sent in the date
    range; None for other groups."""
    emails_out: int | None = None
    """Companies and endusers: the emails on their timeline from the team's internal domains (sent
    through touchline or from a synced mailbox), sent in the date range; None for other groups."""

    @classmethod
    def of(cls, group: Group) -> GroupOut:
        rates = group.rates
        return cls(
            group=group.key,
            label=group.label,
            sent=group.counts.sent,
            open_rate=rates.open_rate,
            human_open_rate=rates.human_open_rate,
            click_rate=rates.click_rate,
            human_click_rate=rates.human_click_rate,
            reply_rate=rates.reply_rate,
            bounce_rate=rates.bounce_rate,
            counts=CountsOut(**{name: getattr(group.counts, name) for name in CountsOut.model_fields}),
            last_sent_at=group.last_sent_at,
            last_touch_at=group.last_touch_at,
            emails_in=group.emails_in,
            emails_out=group.emails_out,
        )


class EngagementAnalytics(BaseModel):
    group_by: str
    groups: list[GroupOut]


class CohortMemberOut(BaseModel):
    contact_id: uuid.UUID | None
    address: str
    company: str
    emails: int
    """How many of the send-out's emails to them have that rate known."""
    last_sent_at: datetime

    @classmethod
    def of(cls, member: CohortMember) -> CohortMemberOut:
        return cls(
            contact_id=member.contact_id,
            address=member.address,
            company=member.company,
            emails=member.emails,
            last_sent_at=member.last_sent_at,
        )


class CohortIn(BaseModel):
    """A cohort of a send-out: its recipients who did (or did not) open, click or reply."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    bulk_id: uuid.UUID | None = None
    sequence: uuid.UUID | None = None
    step: int | None = Field(None, ge=1)
    template: uuid.UUID | None = None
    start: date | None = Field(None, alias="from", description="First UTC day sent (with template)")
    end: date | None = Field(None, alias="to", description="Last UTC day sent, included")
    outcome: Literal["open", "click", "reply"]
    did: bool = False
    human: bool = Field(False, description="By the human-only rate")

    def send_out(self) -> SendOut:
        return SendOut(self.bulk_id, self.sequence, self.step, self.template, self.start, self.end)
