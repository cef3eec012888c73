"""The outcome of the keep-or-ignore rules, with its explanation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["keep", "ignore", "unassigned", "refuse"]
Role = Literal["from", "to", "cc"]
Outcome = Literal[
    "blocklisted",  # disregarded: neither matches nor creates a contact
    "internal",  # a user or an internal domain: never matches
    "contact",  # an existing contact: counts for the contact's company, if any
    "company-domain",  # its domain (or a parent up to the registrable domain) is a company's
    "free-mail",  # a free-mail address that is not a contact
    "unknown",  # nothing in the workspace knows it
]


@dataclass(frozen=True, slots=True)
class NewContact:
    """A contact the decision creates: an address at a company domain that was not a contact yet."""

    email: str
    name: str
    company: str


@dataclass(frozen=True, slots=True)
class ParticipantMatch:
    """How one participant fared: what it is to the workspace and what it contributed."""

    address: str
    roles: tuple[Role, ...]
    outcome: Outcome
    company: str | None
    detail: str
    created: bool = False

    @property
    def matched(self) -> bool:
        return self.outcome in {"contact", "company-domain"}


@dataclass(frozen=True, slots=True)
class Decision:
    """Which rule decided, why, and what the message is linked to when kept.

    `contacts` lists every linked contact, the newly created ones included; `matches` explains every
    participant, sorted by address, so that the same message always gets the same decision.
    """

    action: Action
    rule: str
    reason: str
    companies: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()
    created_contacts: tuple[NewContact, ...] = ()
    matches: tuple[ParticipantMatch, ...] = ()

    @property
    def kept(self) -> bool:
        return self.action == "keep"
