"""API models for workspaces, settings, users, roles, companies, contacts and imports."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from touchline.kit.zones import MAX_ZONE_NAME_CHARS, zone_named, zone_problem
from touchline.models import (
    AccountLink,
    AuditEntry,
    Company,
    Contact,
    CustomFieldDefinition,
    Role,
    User,
    WorkspaceSettings,
)
from touchline.workspace.permissions import Permission
from touchline.workspace.service import MAX_COMPANY_NAME_CHARS

T = TypeVar("T")

CustomValue = StrictStr | StrictInt | StrictFloat
"""A custom field's value: text as a string, a number as a JSON number, a date as `YYYY-MM-DD`."""
CUSTOM_VALUES_OUT = "Custom field values by key: text, number, or a date as YYYY-MM-DD"
CUSTOM_VALUES_IN = (
    "Custom field values by key, each of its field's type (text: a string, number: a JSON number, "
    "date: YYYY-MM-DD); keys must be defined custom fields"
)
CUSTOM_VALUES_PATCH = CUSTOM_VALUES_IN + "; only the keys given change, and null clears one"


def custom_values_of(stored: dict[str, Any]) -> dict[str, str | int | float]:
    """The stored values the API shows: the typed ones (a value kept from before custom fields had
    types, such as a nested object, is not one)."""
    return {
        key: value
        for key, value in stored.items()
        if isinstance(value, str | int | float) and not isinstance(value, bool)
    }


# Bounds on what a caller may store: without them one request could write megabytes into a row that
# every page and export then reads.
MAX_CUSTOM_FIELDS = 100
MAX_CUSTOM_FIELDS_BYTES = 16 * 1024
MAX_LIST_ITEMS = 1000

Name = Annotated[str, Field(max_length=200)]
# The rule of `normalise_address`, as far as a pattern can say it: a local part of at most 64
# characters without spaces, then a domain of at least two labels. What the pattern cannot check (an
# invalid internationalised label) is a documented 422.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f]{1,64}@[^@\s.\x00-\x1f]+(\.[^@\s.\x00-\x1f]+)+$"
EmailAddress = Annotated[
    str, Field(max_length=320, pattern=EMAIL_PATTERN, json_schema_extra={"format": "email"})
]
DomainName = Annotated[str, Field(min_length=1, max_length=253)]
AddressOrDomain = Annotated[str, Field(min_length=1, max_length=320)]
# Hashing cost grows with a password's length.
Password = Annotated[str, Field(max_length=1024)]


def _known_zone(name: str) -> str:
    if zone_named(name) is None:
        raise ValueError(zone_problem(name))
    return name.strip()


TimeZoneName = Annotated[
    str,
    Field(max_length=MAX_ZONE_NAME_CHARS, description="An IANA time zone name, e.g. Europe/Berlin"),
    AfterValidator(_known_zone),
]


def _bounded_custom_fields(fields: dict[str, Any]) -> dict[str, Any]:
    if len(fields) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"custom_fields may hold at most {MAX_CUSTOM_FIELDS} fields")
    size = len(json.dumps(fields, ensure_ascii=False).encode())
    if size > MAX_CUSTOM_FIELDS_BYTES:
        raise ValueError(f"custom_fields may take at most {MAX_CUSTOM_FIELDS_BYTES} bytes as JSON")
    return fields


CustomFields = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=100)], CustomValue | None],
    AfterValidator(_bounded_custom_fields),
]


class FieldErrorOut(BaseModel):
    """One field the request got wrong: where it is (`body`, `query`, ... then the field's path) and why."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """Every error the API answers (RFC 9457 problem details, `application/problem+json`): `detail`
    is always a sentence for a person; `errors` lists the fields when the request broke the schema.
    Some answers add members of their own (a template's `problems`, a log address's `outcome`)."""

    type: str = "about:blank"
    title: str = Field(description="The HTTP status's phrase, such as Not Found")
    status: int
    detail: str
    errors: list[FieldErrorOut] | None = Field(
        default=None, description="The fields that broke the schema (422 answers to malformed requests)"
    )

    MEDIA_TYPE: ClassVar[str] = "application/problem+json"

    @classmethod
    def of(cls, status: int, detail: str, **members: Any) -> Self:
        return cls(title=HTTPStatus(status).phrase, status=status, detail=detail, **members)

    def body(self) -> dict[str, Any]:
        """The JSON answer; `errors` only when there are field errors to tell."""
        return self.model_dump(mode="json", exclude={"errors"} if self.errors is None else None)


class PageOut(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class SettingsOut(BaseModel):
    internal_domains: list[str]
    blocklist: list[str]
    lookback_days: int
    create_contacts_automatically: bool
    default_sync_inbox: bool
    default_sync_sent: bool
    unauthenticated_sender_domains: list[str] = Field(
        description="From domains whose mail the log address takes without authentication"
    )
    unauthenticated_senders_warning: str | None = Field(
        description="Set while unauthenticated_sender_domains is not empty: anyone can forge their mail"
    )
    log_address: str | None = Field(
        description="Where to BCC mail to log it; null for roles that may not edit customers"
    )
    time_zone: str = Field(
        description="IANA zone the workspace types and reads times in (scheduled sends, the outbox); "
        "new sequences take it unless they name their own"
    )

    @classmethod
    def of(cls, row: WorkspaceSettings, *, log_address: str | None, warning: str | None) -> SettingsOut:
        return cls(
            internal_domains=list(row.internal_domains),
            blocklist=list(row.blocklist),
            lookback_days=row.lookback_days,
            create_contacts_automatically=row.create_contacts_automatically,
            default_sync_inbox=row.default_sync_inbox,
            default_sync_sent=row.default_sync_sent,
            unauthenticated_sender_domains=list(row.unauthenticated_sender_domains),
            unauthenticated_senders_warning=warning,
            log_address=log_address,
            time_zone=row.time_zone,
        )


class SettingsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    internal_domains: list[DomainName] | None = Field(None, max_length=MAX_LIST_ITEMS)
    blocklist: list[AddressOrDomain] | None = Field(
        None, max_length=MAX_LIST_ITEMS, description="Addresses and domains; a domain covers its subdomains"
    )
    lookback_days: int | None = Field(None, ge=1, le=3650)
    create_contacts_automatically: bool | None = None
    default_sync_inbox: bool | None = None
    default_sync_sent: bool | None = None
    unauthenticated_sender_domains: list[str] | None = Field(
        None,
        description="From domains whose mail the log address takes without DKIM, SPF or ARC "
        "authentication; anyone can then forge mail from them (each change is audited)",
    )
    time_zone: TimeZoneName | None = None


class RoleOut(BaseModel):
    id: uuid.UUID
    name: str
    permissions: list[str]

    @classmethod
    def of(cls, row: Role) -> RoleOut:
        return cls(id=row.id, name=row.name, permissions=list(row.permissions))


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    permissions: list[Permission] = Field(default_factory=list, max_length=100)


class RolePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=100)
    permissions: list[Permission] | None = Field(None, max_length=100)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    role_id: uuid.UUID
    role: str
    active: bool
    public_account_usage: bool
    created_at: datetime

    @classmethod
    def of(cls, row: User) -> UserOut:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            role_id=row.role_id,
            role=row.role.name,
            active=row.active,
            public_account_usage=row.public_account_usage,
            created_at=row.created_at,
        )


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Name = ""
    role_id: uuid.UUID | None = Field(None, description="Defaults to the Member role")
    password: Password | None = Field(
        None, repr=False, description="Optional; without one the user cannot log in to pages"
    )


class AccountLinkOut(BaseModel):
    """A pending invitation or password reset link (the link itself is never stored)."""

    id: uuid.UUID
    user_id: uuid.UUID
    purpose: Literal["invitation", "reset"]
    created_at: datetime
    expires_at: datetime
    emailed: bool = Field(description="Sent to the user through the workspace's relay")

    @classmethod
    def of(cls, row: AccountLink) -> AccountLinkOut:
        purpose: Literal["invitation", "reset"] = "invitation" if row.purpose == "invitation" else "reset"
        return cls(
            id=row.id,
            user_id=row.user_id,
            purpose=purpose,
            created_at=row.created_at,
            expires_at=row.expires_at,
            emailed=row.emailed,
        )


class AccountLinkIssued(AccountLinkOut):
    link: str | None = Field(
        description="The link, given this once when no relay is set (pass it on to the user); "
        "null when it was emailed"
    )


class UserCreated(UserOut):
    invitation: AccountLinkIssued | None = Field(
        description="Made for a user added without a password: they set one through its link"
    )


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role_id: uuid.UUID | None = None
    active: bool | None = None
    password: Password | None = Field(None, repr=False)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("API token", max_length=200)


class TokenOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it now")


class CompanyOut(BaseModel):
    id: uuid.UUID
    name: str
    domains: list[str]
    account_owner_id: uuid.UUID | None
    account_owner_email: str | None
    custom_fields: dict[str, CustomValue] = Field(description=CUSTOM_VALUES_OUT)
    last_touch_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: Company) -> CompanyOut:
        return cls(
            id=row.id,
            name=row.name,
            domains=[domain.domain for domain in row.domains],
            account_owner_id=row.account_owner_id,
            account_owner_email=row.account_owner.email if row.account_owner else None,
            custom_fields=custom_values_of(row.custom_fields),
            last_touch_at=row.last_touch_at,
            created_at=row.created_at,
        )


class CompanyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_COMPANY_NAME_CHARS)
    domains: list[DomainName] = Field(default_factory=list, max_length=100)
    account_owner_id: uuid.UUID | None = None
    custom_fields: CustomFields = Field({}, description=CUSTOM_VALUES_IN)


class CompanyPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=MAX_COMPANY_NAME_CHARS)
    account_owner_id: uuid.UUID | None = Field(None, description="null removes the account owner")
    custom_fields: CustomFields | None = Field(None, description=CUSTOM_VALUES_PATCH)


class DomainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(min_length=1, max_length=253, examples=["acme.com"])


class ContactOut(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    company_id: uuid.UUID | None
    company_name: str | None
    custom_fields: dict[str, CustomValue] = Field(description=CUSTOM_VALUES_OUT)
    last_touch_at: datetime | None
    unsubscribed_at: datetime | None = Field(
        description="When the contact unsubscribed from bulk and sequence emails through their link"
    )
    undeliverable_at: datetime | None = Field(
        None, description="When a hard bounce marked the address undeliverable: later sends skip it"
    )
    undeliverable_reason: str | None = None
    created_at: datetime

    @classmethod
    def of(cls, row: Contact) -> ContactOut:
        return cls(
            id=row.id,
            email=row.email,
            name=row.name,
            company_id=row.company_id,
            company_name=row.company.name if row.company else None,
            custom_fields=custom_values_of(row.custom_fields),
            last_touch_at=row.last_touch_at,
            unsubscribed_at=row.unsubscribed_at,
            undeliverable_at=row.undeliverable_at,
            undeliverable_reason=row.undeliverable_reason,
            created_at=row.created_at,
        )


class ContactCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Name = ""
    company_id: uuid.UUID | None = None
    custom_fields: CustomFields = Field({}, description=CUSTOM_VALUES_IN)


class ContactPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress | None = None
    name: Name | None = None
    company_id: uuid.UUID | None = Field(None, description="null detaches the contact from its company")
    custom_fields: CustomFields | None = Field(None, description=CUSTOM_VALUES_PATCH)


class CustomFieldOut(BaseModel):
    id: uuid.UUID
    kind: Literal["company", "contact"]
    key: str = Field(
        description="How templates and filters name it: company.custom.<key>, enduser.custom.<key>"
    )
    label: str
    type: Literal["text", "number", "date"]
    created_at: datetime

    @classmethod
    def of(cls, row: CustomFieldDefinition) -> CustomFieldOut:
        return cls.model_validate(row, from_attributes=True)


class CustomFieldCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["company", "contact"]
    label: str = Field(min_length=1, max_length=200, examples=["Renewal date"])
    type: Literal["text", "number", "date"]
    key: str | None = Field(
        None,
        max_length=200,
        description="Made from the label when left out; normalised to lowercase letters, digits and _",
    )


class CustomFieldPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1, max_length=200)


class RowErrorOut(BaseModel):
    row: int
    message: str


class ImportReportOut(BaseModel):
    created: int
    updated: int
    errors: list[RowErrorOut]


class AuditOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEntry) -> AuditOut:
        return cls(
            id=row.id,
            created_at=row.created_at,
            actor=row.actor_label,
            action=row.action,
            target_type=row.target_type,
            target_id=row.target_id,
            details=dict(row.details),
        )
