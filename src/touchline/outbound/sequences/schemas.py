"""API models of sequences."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Annotated, Literal, cast

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from touchline.models import Enrolment, Sequence, StepRun
from touchline.outbound.sequences import service

State = Literal["active", "paused", "finished", "exited", "unenrolled", "failed"]
StepOutcome = Literal["queued", "skipped", "unsubscribed", "failed"]


def _local_time(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("a send window's times are local to the sequence's time zone: leave out the offset")
    return value


LocalTime = Annotated[
    time,
    AfterValidator(_local_time),
    Field(description="A local time of day (HH:MM), in the sequence's or the enduser's time zone"),
]


class StepIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template_id: uuid.UUID
    delay_days: int = Field(
        0, ge=0, le=service.MAX_DELAY_DAYS, description="After the step before (or enrolling)"
    )
    condition: str = Field(
        "",
        max_length=2000,
        description="One condition a line, all must hold: `step 1 not opened`, `company.custom.tier=gold`",
    )


class SequenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=service.MAX_NAME_CHARS)
    sender: str = Field(
        alias="from", max_length=320, description="Your address, a public one, or `account-owner`"
    )
    steps: list[StepIn] = Field(min_length=1, max_length=service.MAX_STEPS)
    exit_on_reply: bool = True
    time_zone: str | None = Field(
        None,
        max_length=64,
        description="IANA zone; omitted, the workspace's time zone. An enduser's `time_zone` custom field "
        "overrides it",
    )
    window_start: LocalTime = time(9, 0)
    window_end: LocalTime = time(17, 0)
    business_days_only: bool = True

    def spec(self) -> service.SequenceSpec:
        return service.SequenceSpec(
            name=self.name,
            sender=self.sender,
            steps=[service.StepSpec(s.template_id, s.delay_days, s.condition) for s in self.steps],
            exit_on_reply=self.exit_on_reply,
            time_zone=self.time_zone,
            window_start=self.window_start,
            window_end=self.window_end,
            business_days_only=self.business_days_only,
        )


class StepFileIn(BaseModel):
    """A step in a sequence file, its template named."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=200)
    delay_days: int = Field(0, ge=0, le=service.MAX_DELAY_DAYS)
    condition: str = Field("", max_length=2000)


class SequenceFile(BaseModel):
    """`touchline sequence create --file`: a sequence as JSON, templates by name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=service.MAX_NAME_CHARS)
    sender: str = Field(alias="from", max_length=320)
    steps: list[StepFileIn] = Field(min_length=1, max_length=service.MAX_STEPS)
    exit_on_reply: bool = True
    time_zone: str | None = Field(None, max_length=64, description="omitted: the workspace's time zone")
    window_start: LocalTime = time(9, 0)
    window_end: LocalTime = time(17, 0)
    business_days_only: bool = True


class StepOut(BaseModel):
    position: int
    template_id: uuid.UUID
    delay_days: int
    condition: str


class SequenceOut(BaseModel):
    id: uuid.UUID
    name: str
    sender: str = Field(serialization_alias="from")
    owner_id: uuid.UUID | None = Field(description="The user the steps are sent as")
    status: Literal["active", "paused"]
    exit_on_reply: bool
    time_zone: str
    window_start: time
    window_end: time
    business_days_only: bool
    steps: list[StepOut]
    enrolments: dict[str, int] = Field(description="How many enrolments are in each state")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Sequence, counts: dict[str, int] | None = None) -> SequenceOut:
        return cls(
            id=row.id,
            name=row.name,
            sender=row.sender,
            owner_id=row.owner_id,
            status="paused" if row.status == service.PAUSED else "active",
            exit_on_reply=row.exit_on_reply,
            time_zone=row.time_zone,
            window_start=row.window_start,
            window_end=row.window_end,
            business_days_only=row.business_days_only,
            steps=[
                StepOut(
                    position=s.position,
                    template_id=s.template_id,
                    delay_days=s.delay_days,
                    condition=s.condition,
                )
                for s in row.steps
            ],
            enrolments=counts or {},
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class EnrolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    where: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Filters that must all hold, as `touchline bulk send --where` takes them",
    )


class StepRunOut(BaseModel):
    position: int
    outcome: StepOutcome
    outbound_id: uuid.UUID | None
    reason: str | None
    ran_at: datetime

    @classmethod
    def of(cls, run: StepRun) -> StepRunOut:
        return cls(
            position=run.position,
            outcome=cast(StepOutcome, run.outcome),
            outbound_id=run.outbound_id,
            reason=run.reason,
            ran_at=run.ran_at,
        )


class EnrolmentOut(BaseModel):
    id: uuid.UUID
    sequence_id: uuid.UUID
    contact_id: uuid.UUID
    email: str
    state: State
    reason: str | None
    current_step: int = Field(description="The position of the next step to run")
    next_due_at: datetime | None
    enrolled_by: uuid.UUID | None
    enrolled_at: datetime
    ended_at: datetime | None
    steps: list[StepRunOut]

    @classmethod
    def of(cls, row: Enrolment, runs: list[StepRun] | None = None) -> EnrolmentOut:
        return cls(
            id=row.id,
            sequence_id=row.sequence_id,
            contact_id=row.contact_id,
            email=row.contact.email,
            state=cast(State, row.state),
            reason=row.reason,
            current_step=row.current_step,
            next_due_at=row.next_due_at,
            enrolled_by=row.enrolled_by,
            enrolled_at=row.enrolled_at,
            ended_at=row.ended_at,
            steps=[StepRunOut.of(run) for run in runs or []],
        )


class EnrolOut(BaseModel):
    enrolled: list[EnrolmentOut]
    already: list[str] = Field(description="Endusers already in the sequence (active or paused)")
    unsubscribed: list[str] = Field(description="Endusers left out: they unsubscribed")
