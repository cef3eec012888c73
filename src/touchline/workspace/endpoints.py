"""JSON API for workspaces, settings, roles, users, tokens, companies, contacts and imports. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from touchline.db import session_scope
from touchline.kit.pagination import MAX_OFFSET, PageRequest
from touchline.models import ApiToken, WorkspaceSettings
from touchline.workspace import account_links, importing, repository, service
from touchline.workspace.auth import ApiActor, AppSettings, Now, Sessions
from touchline.workspace.custom_fields import parse_type_overrides
from touchline.workspace.permissions import Actor
from touchline.workspace.schemas import (
    AccountLinkIssued,
    AccountLinkOut,
    AuditOut,
    CompanyCreate,
    CompanyOut,
    CompanyPatch,
    ContactCreate,
    ContactOut,
    ContactPatch,
    CustomFieldCreate,
    CustomFieldOut,
    CustomFieldPatch,
    DomainIn,
    ImportReportOut,
    PageOut,
    RoleCreate,
    RoleOut,
    RolePatch,
    RowErrorOut,
    SettingsOut,
    SettingsPatch,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserCreated,
    UserOut,
    UserPatch,
    WorkspaceOut,
)

router = APIRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip")]


# --- workspace and settings ----------------------------------------------------------------------


@router.get("/workspace", tags=["workspace"], summary="The caller's workspace")
def read_workspace(actor: ApiActor, sessions: Sessions) -> WorkspaceOut:
    with session_scope(sessions) as session:
        workspace = service.get_workspace(session, actor)
        return WorkspaceOut(id=workspace.id, name=workspace.name, created_at=workspace.created_at)


@router.get("/workspace/settings", tags=["workspace"], summary="Workspace settings")
def read_settings(actor: ApiActor, sessions: Sessions) -> SettingsOut:
    with session_scope(sessions) as session:
        return _settings_out(actor, service.get_settings(session, actor))


@router.patch("/workspace/settings", tags=["workspace"], summary="Change workspace settings (admins)")
def patch_settings(body: SettingsPatch, actor: ApiActor, sessions: Sessions) -> SettingsOut:
    with session_scope(sessions) as session:
        change = service.SettingsChange(**body.model_dump(exclude_unset=True))
        return _settings_out(actor, service.update_settings(session, actor, change))


def _settings_out(actor: Actor, row: WorkspaceSettings) -> SettingsOut:
    return SettingsOut.of(
        row,
        log_address=service.visible_log_address(actor, row),
        warning=service.unauthenticated_senders_warning(row),
    )


@router.get("/audit-log", tags=["workspace"], summary="Recent admin actions (admins)")
def read_audit_log(
    actor: ApiActor, sessions: Sessions, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> list[AuditOut]:
    with session_scope(sessions) as session:
        return [AuditOut.of(entry) for entry in service.list_audit(session, actor, limit)]


# --- roles ---------------------------------------------------------------------------------------


@router.get("/roles", tags=["roles"], summary="List roles")
def list_roles(actor: ApiActor, sessions: Sessions) -> list[RoleOut]:
    with session_scope(sessions) as session:
        return [RoleOut.of(role) for role in service.list_roles(session, actor)]


@router.post("/roles", tags=["roles"], status_code=status.HTTP_201_CREATED, summary="Create a role (admins)")
def create_role(body: RoleCreate, actor: ApiActor, sessions: Sessions) -> RoleOut:
    with session_scope(sessions) as session:
        return RoleOut.of(service.create_role(session, actor, body.name, [p.value for p in body.permissions]))


@router.get("/roles/{role_id}", tags=["roles"], summary="Read a role")
def read_role(role_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> RoleOut:
    with session_scope(sessions) as session:
        return RoleOut.of(service.get_role(session, actor, role_id))


@router.patch("/roles/{role_id}", tags=["roles"], summary="Rename a role or change its permissions (admins)")
def patch_role(role_id: uuid.UUID, body: RolePatch, actor: ApiActor, sessions: Sessions) -> RoleOut:
    with session_scope(sessions) as session:
        permissions = None if body.permissions is None else [p.value for p in body.permissions]
        role = service.update_role(session, actor, role_id, name=body.name, permissions=permissions)
        return RoleOut.of(role)


@router.delete(
    "/roles/{role_id}",
    tags=["roles"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete an unused role",
)
def delete_role(role_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_role(session, actor, role_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- users and tokens ----------------------------------------------------------------------------


@router.get("/users", tags=["users"], summary="List users")
def list_users(actor: ApiActor, sessions: Sessions) -> list[UserOut]:
    with session_scope(sessions) as session:
        return [UserOut.of(user) for user in service.list_users(session, actor)]


@router.get("/users/me", tags=["users"], summary="The calling user")
def read_me(actor: ApiActor, sessions: Sessions) -> UserOut:
    with session_scope(sessions) as session:
        assert actor.user_id is not None  # API tokens always belong to a user
        return UserOut.of(service.get_user(session, actor, actor.user_id))


@router.post(
    "/users",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Add a user (admins); without a password, the user is invited to set one",
)
def create_user(
    body: UserCreate, actor: ApiActor, sessions: Sessions, settings: AppSettings, now: Now
) -> UserCreated:
    with session_scope(sessions) as session:
        user, issued = account_links.add_user(
            session,
            actor,
            settings,
            body.email,
            name=body.name,
            role=body.role_id or "Member",
            password=body.password,
            now=now,
        )
        return UserCreated(
            **UserOut.of(user).model_dump(), invitation=None if issued is None else _issued_out(issued)
        )


def _issued_out(issued: account_links.IssuedLink) -> AccountLinkIssued:
    return AccountLinkIssued(
        **AccountLinkOut.of(issued.link).model_dump(), link=None if issued.emailed else issued.url
    )


@router.get("/invitations", tags=["users"], summary="Pending invitations and password reset links (admins)")
def list_pending_links(actor: ApiActor, sessions: Sessions, now: Now) -> list[AccountLinkOut]:
    with session_scope(sessions) as session:
        return [AccountLinkOut.of(row) for row in account_links.pending(session, actor, now)]


@router.post(
    "/users/{user_id}/invitation",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Invite a user without a password, or send the invitation again (admins); "
    "an earlier invitation stops working",
)
def invite_user(
    user_id: uuid.UUID, actor: ApiActor, sessions: Sessions, settings: AppSettings, now: Now
) -> AccountLinkIssued:
    with session_scope(sessions) as session:
        issued = account_links.issue(session, actor, settings, user_id, account_links.INVITATION, now)
        return _issued_out(issued)


@router.delete(
    "/users/{user_id}/invitation",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a user's pending invitation (admins)",
)
def revoke_invitation(user_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> Response:
    with session_scope(sessions) as session:
        account_links.revoke(session, actor, user_id, account_links.INVITATION, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{user_id}/password-reset",
    tags=["users"],
    status_code=status.HTTP_201_CREATED,
    summary="Reset a user's password (admins): their password and logins end, and a link lets them "
    "choose a new one",
)
def reset_password(
    user_id: uuid.UUID, actor: ApiActor, sessions: Sessions, settings: AppSettings, now: Now
) -> AccountLinkIssued:
    with session_scope(sessions) as session:
        issued = account_links.issue(session, actor, settings, user_id, account_links.RESET, now)
        return _issued_out(issued)


@router.delete(
    "/users/{user_id}/password-reset",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a user's pending password reset link (admins)",
)
def revoke_password_reset(user_id: uuid.UUID, actor: ApiActor, sessions: Sessions, now: Now) -> Response:
    with session_scope(sessions) as session:
        account_links.revoke(session, actor, user_id, account_links.RESET, now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users/{user_id}", tags=["users"], summary="Read a user")
def read_user(user_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> UserOut:
    with session_scope(sessions) as session:
        return UserOut.of(service.get_user(session, actor, user_id))


@router.patch(
    "/users/{user_id}", tags=["users"], summary="Change a user's name, role, status or password (admins)"
)
def patch_user(user_id: uuid.UUID, body: UserPatch, actor: ApiActor, sessions: Sessions) -> UserOut:
    with session_scope(sessions) as session:
        user = service.update_user(
            session,
            actor,
            user_id,
            name=body.name,
            role_id=body.role_id,
            active=body.active,
            password=body.password,
        )
        return UserOut.of(user)


@router.delete(
    "/users/{user_id}",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a user (admins)",
)
def delete_user(user_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.remove_user(session, actor, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.get("/tokens", tags=["users"], summary="The caller's API tokens")
def list_tokens(actor: ApiActor, sessions: Sessions) -> list[TokenOut]:
    with session_scope(sessions) as session:
        return [_token_out(row) for row in service.list_api_tokens(session, actor)]


@router.post("/tokens", tags=["users"], status_code=status.HTTP_201_CREATED, summary="Create an API token")
def create_token(body: TokenCreate, actor: ApiActor, sessions: Sessions) -> TokenCreated:
    with session_scope(sessions) as session:
        token, row = service.create_api_token(session, actor, body.name)
        return TokenCreated(token=token, **_token_out(row).model_dump())


@router.delete(
    "/tokens/{token_id}",
    tags=["users"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an API token",
)
def revoke_token(token_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.revoke_api_token(session, actor, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- companies -----------------------------------------------------------------------------------


@router.get("/companies", tags=["companies"], summary="List companies")
def list_companies(
    actor: ApiActor,
    sessions: Sessions,
    q: Annotated[str | None, Query(description="Part of the name or of a domain")] = None,
    domain: Annotated[str | None, Query(description="Exactly this domain")] = None,
    account_owner_id: uuid.UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[CompanyOut]:
    with session_scope(sessions) as session:
        page = repository.list_companies(
            session,
            actor,
            repository.CompanyFilter(search=q, domain=domain, account_owner_id=account_owner_id),
            PageRequest(limit, offset),
        )
        return PageOut(
            items=[CompanyOut.of(c) for c in page.items], total=page.total, limit=limit, offset=offset
        )


@router.post(
    "/companies", tags=["companies"], status_code=status.HTTP_201_CREATED, summary="Create a company"
)
def create_company(body: CompanyCreate, actor: ApiActor, sessions: Sessions) -> CompanyOut:
    with session_scope(sessions) as session:
        company = service.create_company(
            session,
            actor,
            body.name,
            domains=body.domains,
            account_owner=body.account_owner_id,
            custom_fields=body.custom_fields,
        )
        return CompanyOut.of(company)


@router.get("/companies/{company_id}", tags=["companies"], summary="Read a company")
def read_company(company_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> CompanyOut:
    with session_scope(sessions) as session:
        return CompanyOut.of(service.get_company(session, actor, company_id))


@router.patch("/companies/{company_id}", tags=["companies"], summary="Change a company")
def patch_company(
    company_id: uuid.UUID, body: CompanyPatch, actor: ApiActor, sessions: Sessions
) -> CompanyOut:
    given = body.model_fields_set
    with session_scope(sessions) as session:
        company = service.update_company(
            session,
            actor,
            company_id,
            name=body.name,
            account_owner=body.account_owner_id,
            clear_account_owner="account_owner_id" in given and body.account_owner_id is None,
            custom_fields=body.custom_fields,
        )
        return CompanyOut.of(company)


@router.delete(
    "/companies/{company_id}",
    tags=["companies"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a company (its contacts stay, without a company)",
)
def delete_company(company_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_company(session, actor, company_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/companies/{company_id}/domains",
    tags=["companies"],
    status_code=status.HTTP_201_CREATED,
    summary="Add an email domain to a company",
)
def add_domain(company_id: uuid.UUID, body: DomainIn, actor: ApiActor, sessions: Sessions) -> CompanyOut:
    with session_scope(sessions) as session:
        return CompanyOut.of(service.add_company_domain(session, actor, company_id, body.domain))


@router.delete(
    "/companies/{company_id}/domains/{domain}",
    tags=["companies"],
    summary="Remove an email domain from a company",
)
def remove_domain(company_id: uuid.UUID, domain: str, actor: ApiActor, sessions: Sessions) -> CompanyOut:
    with session_scope(sessions) as session:
        return CompanyOut.of(service.remove_company_domain(session, actor, company_id, domain))


# --- contacts ------------------------------------------------------------------------------------


@router.get("/contacts", tags=["contacts"], summary="List contacts (endusers)")
def list_contacts(
    actor: ApiActor,
    sessions: Sessions,
    q: Annotated[str | None, Query(description="Part of the name or address")] = None,
    company_id: uuid.UUID | None = None,
    email: str | None = None,
    without_company: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[ContactOut]:
    with session_scope(sessions) as session:
        page = repository.list_contacts(
            session,
            actor,
            repository.ContactFilter(
                search=q, company_id=company_id, email=email, without_company=without_company
            ),
            PageRequest(limit, offset),
        )
        return PageOut(
            items=[ContactOut.of(c) for c in page.items], total=page.total, limit=limit, offset=offset
        )


@router.post("/contacts", tags=["contacts"], status_code=status.HTTP_201_CREATED, summary="Create a contact")
def create_contact(body: ContactCreate, actor: ApiActor, sessions: Sessions) -> ContactOut:
    with session_scope(sessions) as session:
        contact = service.create_contact(
            session,
            actor,
            body.email,
            name=body.name,
            company_id=body.company_id,
            custom_fields=body.custom_fields,
        )
        return ContactOut.of(contact)


@router.get("/contacts/{contact_id}", tags=["contacts"], summary="Read a contact")
def read_contact(contact_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> ContactOut:
    with session_scope(sessions) as session:
        return ContactOut.of(service.get_contact(session, actor, contact_id))


@router.patch("/contacts/{contact_id}", tags=["contacts"], summary="Change a contact")
def patch_contact(
    contact_id: uuid.UUID, body: ContactPatch, actor: ApiActor, sessions: Sessions
) -> ContactOut:
    given = body.model_fields_set
    with session_scope(sessions) as session:
        contact = service.update_contact(
            session,
            actor,
            contact_id,
            email=body.email,
            name=body.name,
            company_id=body.company_id,
            clear_company="company_id" in given and body.company_id is None,
            custom_fields=body.custom_fields,
        )
        return ContactOut.of(contact)


@router.delete(
    "/contacts/{contact_id}",
    tags=["contacts"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a contact",
)
def delete_contact(contact_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_contact(session, actor, contact_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/contacts/{contact_id}/undeliverable",
    tags=["contacts"],
    summary="Let sends reach a contact whose address bounced hard again (admins)",
)
def clear_undeliverable(contact_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> ContactOut:
    with session_scope(sessions) as session:
        return ContactOut.of(service.clear_undeliverable(session, actor, contact_id))


# --- custom fields -------------------------------------------------------------------------------


@router.get(
    "/custom-fields", tags=["custom fields"], summary="List the custom fields of companies and contacts"
)
def list_custom_fields(
    actor: ApiActor,
    sessions: Sessions,
    kind: Annotated[Literal["company", "contact"] | None, Query()] = None,
) -> list[CustomFieldOut]:
    with session_scope(sessions) as session:
        return [CustomFieldOut.of(row) for row in service.list_custom_fields(session, actor, kind)]


@router.post(
    "/custom-fields",
    tags=["custom fields"],
    status_code=status.HTTP_201_CREATED,
    summary="Define a custom field (needs edit_customers)",
)
def create_custom_field(body: CustomFieldCreate, actor: ApiActor, sessions: Sessions) -> CustomFieldOut:
    with session_scope(sessions) as session:
        row = service.create_custom_field(session, actor, body.kind, body.label, body.type, key=body.key)
        return CustomFieldOut.of(row)


@router.patch(
    "/custom-fields/{field_id}",
    tags=["custom fields"],
    summary="Rename a custom field (its key stays, so templates keep working)",
)
def rename_custom_field(
    field_id: uuid.UUID, body: CustomFieldPatch, actor: ApiActor, sessions: Sessions
) -> CustomFieldOut:
    with session_scope(sessions) as session:
        return CustomFieldOut.of(service.rename_custom_field(session, actor, field_id, body.label))


@router.delete(
    "/custom-fields/{field_id}",
    tags=["custom fields"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a custom field and its value on every company or contact",
)
def delete_custom_field(field_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_custom_field(session, actor, field_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- imports -------------------------------------------------------------------------------------

FieldTypes = Annotated[
    list[str],
    Form(
        description="COLUMN=TYPE (text, number or date), repeatable: the type of an extra column, "
        "instead of the one its values suggest"
    ),
]


def _report_out(report: importing.ImportReport) -> ImportReportOut:
    return ImportReportOut(
        created=report.created,
        updated=report.updated,
        errors=[RowErrorOut(row=error.row, message=error.message) for error in report.errors],
    )


@router.post(
    "/imports/companies",
    tags=["imports"],
    summary="Import companies from CSV (columns name, domains separated by ';', optional account_owner; "
    "other columns become custom fields)",
)
async def import_companies(
    actor: ApiActor,
    sessions: Sessions,
    file: Annotated[UploadFile, File(description="UTF-8 CSV")],
    field_type: FieldTypes = [],  # noqa: B006 -- FastAPI copies parameter defaults
) -> ImportReportOut:
    data = await file.read(importing.MAX_IMPORT_BYTES + 1)
    overrides = parse_type_overrides(field_type)

    def run() -> ImportReportOut:
        return _report_out(importing.run_import(sessions, actor, "companies", data, field_types=overrides))

    return await run_in_threadpool(run)


@router.post(
    "/imports/contacts",
    tags=["imports"],
    summary="Import contacts from CSV (columns email, name, company given by name or domain; "
    "other columns become custom fields)",
)
async def import_contacts(
    actor: ApiActor,
    sessions: Sessions,
    file: Annotated[UploadFile, File(description="UTF-8 CSV")],
    field_type: FieldTypes = [],  # noqa: B006 -- FastAPI copies parameter defaults
) -> ImportReportOut:
    data = await file.read(importing.MAX_IMPORT_BYTES + 1)
    overrides = parse_type_overrides(field_type)

    def run() -> ImportReportOut:
        return _report_out(importing.run_import(sessions, actor, "contacts", data, field_types=overrides))

    return await run_in_threadpool(run)
