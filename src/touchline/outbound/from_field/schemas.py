"""API models for the From field and the public account switch."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from touchline.outbound.compose.senders import FromChoice, FromDecision
from touchline.outbound.from_field.service import PublicAccountState


class PublicAccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    public: bool = Field(description="Let colleagues send from your address")


class PublicAccountOut(BaseModel):
    switched_on: bool
    public: bool = Field(description="Colleagues can send from the address now")
    address: str
    may_switch_on: bool
    why_not: str | None = Field(description="Why it cannot be switched on, when it cannot")

    @classmethod
    def of(cls, state: PublicAccountState) -> PublicAccountOut:
        return cls(
            switched_on=state.switched_on,
            public=state.public,
            address=state.address,
            may_switch_on=state.may_switch_on,
            why_not=state.why_not,
        )


class FromChoiceOut(BaseModel):
    kind: str = Field(description="account-owner, own or public")
    key: str = Field(description='What to send as `from`: an address or "account-owner"')
    label: str
    user_id: uuid.UUID | None

    @classmethod
    def of(cls, choice: FromChoice) -> FromChoiceOut:
        return cls(kind=choice.kind, key=choice.key, label=choice.label, user_id=choice.user_id)


class FromChoicesOut(BaseModel):
    choices: list[FromChoiceOut]


class FromCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    sender: str = Field(alias="from", description='An address or "account-owner"')
    company_id: uuid.UUID | None = Field(default=None, description="Set when sending on behalf of a company")
    reply_to: uuid.UUID | None = Field(default=None, description="The id of the stored email being answered")


class FromCheckOut(BaseModel):
    allowed: bool
    reason: str
    choice: FromChoiceOut | None

    @classmethod
    def of(cls, decision: FromDecision) -> FromCheckOut:
        return cls(
            allowed=decision.allowed,
            reason=decision.reason,
            choice=FromChoiceOut.of(decision.choice) if decision.choice else None,
        )
