"""Pages for login, companies, contacts, custom fields and workspace settings. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from touchline.db import session_scope
from touchline.kit.backoff import in_words
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.pagination import MAX_PAGE, PageRequest
from touchline.kit.zones import zone_names
from touchline.models import WorkspaceSettings
from touchline.ui import CheckedForm, check_csrf, field_errors, flash, redirect, render, validation_messages
from touchline.workspace import importing, repository, service, user_sessions
from touchline.workspace.auth import (
    SESSION_LOGIN_KEY,
    AppSettings,
    Now,
    PageActor,
    Sessions,
    client_address,
    current_login,
)
from touchline.workspace.custom_fields import (
    FIELD_KINDS,
    FIELD_TYPES,
    FieldKind,
    parse_type_overrides,
    values_from_text,
)
from touchline.workspace.listing import NO_OWNER, TOUCHED_CHOICES, Listing, Touched, parse_owner
from touchline.workspace.permissions import Actor, Permission
from touchline.workspace.schemas import SettingsPatch

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
# Mistakes a person can fix in the form are shown beside it; a missing permission or record is not.
FORM_ERRORS = (InvalidInputError, ConflictError)
Csrf = Annotated[str, Form(alias="csrf_token")]


def _safe_next(path: str | None) -> str:
    # Only same-site paths, so the login form cannot be used to bounce people elsewhere.
    if path and path.startswith("/") and not path.startswith("//"):
        return path
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return render(request, "login.html", None, {"next": _safe_next(next), "error": None})


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    sessions: Sessions,
    settings: AppSettings,
    now: Now,
    csrf: Csrf,
    email: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
) -> Response:
    # The form's own token: a page elsewhere cannot sign a browser in to an account of its choosing.
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        outcome = service.sign_in(
            session, settings, email, password, address=client_address(request), now=now
        )
    if outcome.login is None:
        if outcome.wait is not None:
            error, status_code = f"Too many failed sign-ins; try again in {in_words(outcome.wait)}.", 429
        else:
            error, status_code = "That email and password do not match an active user.", 401
        return render(request, "login.html", None, {"next": _safe_next(next), "error": error}, status_code)
    request.session.clear()
    request.session[SESSION_LOGIN_KEY] = outcome.login
    return redirect(_safe_next(next))


@router.post("/logout")
def logout(request: Request, sessions: Sessions, now: Now, csrf: Csrf) -> RedirectResponse:
    check_csrf(request, csrf)
    login = current_login(request)
    if login is not None:
        with session_scope(sessions) as session:
            user_sessions.end(session, login, now)
    request.session.clear()
    return redirect("/login")


@router.get("/profile/password", response_class=HTMLResponse)
def password_form(request: Request, actor: PageActor) -> HTMLResponse:
    return render(request, "password.html", actor, {"error": None})


@router.post("/profile/password", response_class=HTMLResponse)
def change_password(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    current_password: Annotated[str, Form()],
    new_password: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.change_own_password(
                session, actor, current_password, new_password, keep_login=current_login(request)
            )
    except FORM_ERRORS as error:
        return render(request, "password.html", actor, {"error": str(error)}, 400)
    flash(request, "Password changed. Your other logins have ended.")
    return redirect("/profile/password")


# --- companies -----------------------------------------------------------------------------------


@router.get("/companies", response_class=HTMLResponse)
def companies_page(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    now: Now,
    q: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    sort: repository.CompanySort = "name",
    direction: Annotated[Literal["asc", "desc"], Query(alias="dir")] = "asc",
    owner: str = "",
    touched: Touched = "",
) -> HTMLResponse:
    listing = _listing(q, sort, direction, owner, touched)
    filters = repository.CompanyFilter(
        search=q,
        account_owner_id=listing.owner_id(),
        without_owner=listing.owner == NO_OWNER,
        last_touch=listing.last_touch(),
        now=now,
        sort=sort,
        descending=listing.descending,
    )
    with session_scope(sessions) as session:
        result = repository.list_companies(
            session, actor, filters, PageRequest(PER_PAGE, (page - 1) * PER_PAGE)
        )
        users = service.list_users(session, actor)
        return render(
            request,
            "companies.html",
            actor,
            _listing_context(listing)
            | {"page": result, "page_number": page, "users": users, "error": None, "form": {}},
        )


def _listing(q: str | None, sort: str, direction: str, owner: str, touched: Touched) -> Listing:
    try:
        owner = parse_owner(owner)
    except ValueError:
        raise InvalidInputError("owner: choose a teammate from the list") from None
    return Listing(
        q=(q or "").strip(), sort=sort, descending=direction == "desc", owner=owner, touched=touched
    )


def _listing_context(listing: Listing) -> dict[str, object]:
    return {"listing": listing, "q": listing.q, "touched_choices": TOUCHED_CHOICES, "no_owner": NO_OWNER}


@router.post("/companies", response_class=HTMLResponse)
def create_company(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    name: Annotated[str, Form()],
    domains: Annotated[str, Form()] = "",
    account_owner: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            company = service.create_company(
                session,
                actor,
                name,
                domains=[d for d in domains.replace(",", ";").split(";") if d.strip()],
                account_owner=uuid.UUID(account_owner) if account_owner else None,
            )
            company_id = company.id
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            result = repository.list_companies(
                session, actor, repository.CompanyFilter(), PageRequest(PER_PAGE, 0)
            )
            users = service.list_users(session, actor)
            return render(
                request,
                "companies.html",
                actor,
                _listing_context(Listing())
                | {
                    "page": result,
                    "page_number": 1,
                    "users": users,
                    "error": str(error),
                    "form": {"name": name, "domains": domains, "account_owner": account_owner},
                },
                status_code=400,
            )
    flash(request, f"Company {name.strip()} created.")
    return redirect(f"/companies/{company_id}")


def _company_action_failed(request: Request, company_id: uuid.UUID, error: Exception) -> RedirectResponse:
    flash(request, str(error), "error")
    return redirect(f"/companies/{company_id}")


@router.post("/companies/{company_id}", response_class=HTMLResponse)
def update_company(
    request: Request,
    company_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    name: Annotated[str, Form()],
    account_owner: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.update_company(
                session,
                actor,
                company_id,
                name=name,
                account_owner=uuid.UUID(account_owner) if account_owner else None,
                clear_account_owner=not account_owner,
            )
    except FORM_ERRORS as error:
        return _company_action_failed(request, company_id, error)
    flash(request, "Company saved.")
    return redirect(f"/companies/{company_id}")


@router.post("/companies/{company_id}/domains", response_class=HTMLResponse)
def add_domain(
    request: Request,
    company_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    domain: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.add_company_domain(session, actor, company_id, domain)
    except FORM_ERRORS as error:
        return _company_action_failed(request, company_id, error)
    flash(request, f"Domain {domain.strip().lower()} added.")
    return redirect(f"/companies/{company_id}")


@router.post("/companies/{company_id}/domains/{domain}/delete", response_class=HTMLResponse)
def remove_domain(
    request: Request, company_id: uuid.UUID, domain: str, actor: PageActor, sessions: Sessions, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.remove_company_domain(session, actor, company_id, domain)
    except FORM_ERRORS as error:
        return _company_action_failed(request, company_id, error)
    flash(request, f"Domain {domain} removed.")
    return redirect(f"/companies/{company_id}")


@router.post("/companies/{company_id}/delete")
def delete_company(
    request: Request, company_id: uuid.UUID, actor: PageActor, sessions: Sessions, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        service.delete_company(session, actor, company_id)
    flash(request, "Company deleted.")
    return redirect("/companies")


# --- contacts ------------------------------------------------------------------------------------


def _contacts_context(
    session: Session, actor: Actor, listing: Listing, page: int, filters: repository.ContactFilter
) -> dict[str, object]:
    result = repository.list_contacts(session, actor, filters, PageRequest(PER_PAGE, (page - 1) * PER_PAGE))
    companies = repository.list_companies(session, actor, repository.CompanyFilter(), PageRequest(500, 0))
    return _listing_context(listing) | {
        "page": result,
        "page_number": page,
        "companies": companies.items,
        "users": service.list_users(session, actor),
        "error": None,
    }


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    now: Now,
    q: str | None = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    sort: repository.ContactSort = "name",
    direction: Annotated[Literal["asc", "desc"], Query(alias="dir")] = "asc",
    owner: str = "",
    touched: Touched = "",
) -> HTMLResponse:
    listing = _listing(q, sort, direction, owner, touched)
    if listing.owner == NO_OWNER:
        raise InvalidInputError("owner: contacts are filtered by the teammate who owns their company")
    filters = repository.ContactFilter(
        search=q,
        owner_id=listing.owner_id(),
        last_touch=listing.last_touch(),
        now=now,
        sort=sort,
        descending=listing.descending,
    )
    with session_scope(sessions) as session:
        return render(
            request, "contacts.html", actor, _contacts_context(session, actor, listing, page, filters)
        )


@router.post("/contacts", response_class=HTMLResponse)
def create_contact(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    email: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
    company_id: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "/contacts",
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.create_contact(
                session, actor, email, name=name, company_id=uuid.UUID(company_id) if company_id else None
            )
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            context = _contacts_context(session, actor, Listing(), 1, repository.ContactFilter())
        context["error"] = str(error)
        return render(request, "contacts.html", actor, context, status_code=400)
    flash(request, f"Contact {email.strip().lower()} added.")
    return redirect(_safe_next(back))


@router.post("/contacts/{contact_id}/delete")
def delete_contact(
    request: Request,
    contact_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    back: Annotated[str, Form()] = "/contacts",
) -> Response:
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        service.delete_contact(session, actor, contact_id)
    flash(request, "Contact deleted.")
    return redirect(_safe_next(back))


@router.post("/imports/{kind}", response_class=HTMLResponse)
async def import_csv(
    request: Request,
    kind: str,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    file: UploadFile,
    field_types: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf)
    if kind not in {"companies", "contacts"}:
        raise NotFoundError("no such import")
    data = await file.read(importing.MAX_IMPORT_BYTES + 1)
    try:
        overrides = parse_type_overrides([field_types])
        # In the thread pool: an import takes seconds, and the event loop answers every other request.
        report = await run_in_threadpool(
            importing.run_import,
            sessions,
            actor,
            "companies" if kind == "companies" else "contacts",
            data,
            field_types=overrides,
        )
    except FORM_ERRORS as error:
        flash(request, f"Import failed: {error}", "error")
        return redirect(f"/{kind}")
    flash(
        request,
        f"Imported {kind}: {report.created} created, {report.updated} updated, {len(report.errors)} failed.",
    )
    for row_error in report.errors[:20]:
        flash(request, f"Line {row_error.row}: {row_error.message}", "error")
    return redirect(f"/{kind}")


# --- custom fields -------------------------------------------------------------------------------

CUSTOM_PREFIX = "custom."


def _save_custom_values(
    request: Request, form: FormData, actor: Actor, sessions: Sessions, kind: FieldKind, record_id: uuid.UUID
) -> Response:
    back = f"/companies/{record_id}" if kind == "company" else f"/contacts/{record_id}"
    texts = {
        name.removeprefix(CUSTOM_PREFIX): str(value)
        for name, value in form.multi_items()
        if name.startswith(CUSTOM_PREFIX)
    }
    try:
        with session_scope(sessions) as session:
            values = values_from_text(service.custom_field_types(session, actor.workspace_id, kind), texts)
            if kind == "company":
                service.update_company(session, actor, record_id, custom_fields=values)
            else:
                service.update_contact(session, actor, record_id, custom_fields=values)
    except FORM_ERRORS as error:
        flash(request, str(error), "error")
        return redirect(back)
    flash(request, "Custom fields saved.")
    return redirect(back)


@router.post("/companies/{company_id}/custom-fields", response_class=HTMLResponse)
def save_company_custom_fields(
    request: Request, company_id: uuid.UUID, actor: PageActor, sessions: Sessions, form: CheckedForm
) -> Response:
    return _save_custom_values(request, form, actor, sessions, "company", company_id)


@router.post("/contacts/{contact_id}/custom-fields", response_class=HTMLResponse)
def save_contact_custom_fields(
    request: Request, contact_id: uuid.UUID, actor: PageActor, sessions: Sessions, form: CheckedForm
) -> Response:
    return _save_custom_values(request, form, actor, sessions, "contact", contact_id)


def _custom_fields_context(session: Session, actor: Actor, error: str | None = None) -> dict[str, object]:
    return {
        "fields": service.list_custom_fields(session, actor),
        "kinds": FIELD_KINDS,
        "types": FIELD_TYPES,
        "error": error,
    }


@router.get("/custom-fields", response_class=HTMLResponse)
def custom_fields_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    with session_scope(sessions) as session:
        return render(request, "custom_fields.html", actor, _custom_fields_context(session, actor))


@router.post("/custom-fields", response_class=HTMLResponse)
def create_custom_field(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    kind: Annotated[str, Form()],
    label: Annotated[str, Form()],
    type_name: Annotated[str, Form(alias="type")],
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            field = service.create_custom_field(session, actor, kind, label, type_name)
            key = field.key
    except FORM_ERRORS as error:
        with session_scope(sessions) as session:
            context = _custom_fields_context(session, actor, str(error))
        return render(request, "custom_fields.html", actor, context, status_code=400)
    flash(request, f"Custom field {key} created.")
    return redirect("/custom-fields")


@router.post("/custom-fields/{field_id}", response_class=HTMLResponse)
def rename_custom_field(
    request: Request,
    field_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf: Csrf,
    label: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf)
    try:
        with session_scope(sessions) as session:
            service.rename_custom_field(session, actor, field_id, label)
    except FORM_ERRORS as error:
        flash(request, str(error), "error")
        return redirect("/custom-fields")
    flash(request, "Custom field renamed.")
    return redirect("/custom-fields")


@router.post("/custom-fields/{field_id}/delete")
def delete_custom_field(
    request: Request, field_id: uuid.UUID, actor: PageActor, sessions: Sessions, csrf: Csrf
) -> Response:
    check_csrf(request, csrf)
    with session_scope(sessions) as session:
        service.delete_custom_field(session, actor, field_id)
    flash(request, "Custom field deleted.")
    return redirect("/custom-fields")


# --- settings ----------------------------------------------------------------------------------


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, actor: PageActor, sessions: Sessions) -> HTMLResponse:
    actor.require(Permission.ADMIN_ACCESS)
    with session_scope(sessions) as session:
        settings = service.get_settings(session, actor)
        audit = service.list_audit(session, actor, 20)
        return render(
            request, "settings.html", actor, _settings_context(session, actor, settings, audit, None)
        )


def _settings_context(
    session: Session,
    actor: Actor,
    settings: WorkspaceSettings,
    audit: object,
    error: str | None,
    form: dict[str, object] | None = None,
    marked: dict[str, str] | None = None,
) -> dict[str, object]:
    return {
        "settings": settings,
        "audit": audit,
        "error": error,
        "form": form,
        "field_errors": marked or {},
        "unauthenticated_senders_warning": service.unauthenticated_senders_warning(settings),
        "internal_domain_warnings": service.internal_domain_warnings(
            session, actor, settings.internal_domains
        ),
        "time_zones": zone_names(),
    }


@router.post("/settings", response_class=HTMLResponse)
def save_settings(request: Request, actor: PageActor, sessions: Sessions, form: CheckedForm) -> Response:
    actor.require(Permission.ADMIN_ACCESS)

    def lines(field: str) -> list[str]:
        return [
            line.strip() for line in str(form.get(field, "")).replace(",", "\n").splitlines() if line.strip()
        ]

    # What was typed is shown again after a mistake, so nothing has to be typed twice.
    typed: dict[str, object] = {
        **{
            name: str(form.get(name, ""))
            for name in (
                "internal_domains",
                "blocklist",
                "lookback_days",
                "unauthenticated_sender_domains",
                "time_zone",
            )
        },
        **{
            name: form.get(name) == "on"
            for name in ("create_contacts_automatically", "default_sync_inbox", "default_sync_sent")
        },
    }

    def again(error: str, marked: dict[str, str] | None = None) -> HTMLResponse:
        with session_scope(sessions) as session:
            settings = service.get_settings(session, actor)
            audit = service.list_audit(session, actor, 20)
            return render(
                request,
                "settings.html",
                actor,
                _settings_context(session, actor, settings, audit, error, typed, marked),
                422,
            )

    try:
        # The API's own model, so the page and the API say the same about the same mistake.
        checked = SettingsPatch.model_validate(
            {
                "internal_domains": lines("internal_domains"),
                "blocklist": lines("blocklist"),
                "lookback_days": str(form.get("lookback_days", "90")).strip(),
                "unauthenticated_sender_domains": lines("unauthenticated_sender_domains"),
                "time_zone": str(form.get("time_zone", "")).strip() or None,
            }
        )
    except ValidationError as invalid:
        errors = invalid.errors()
        return again("; ".join(validation_messages(errors)), field_errors(errors))
    lookback = checked.lookback_days if checked.lookback_days is not None else -1
    change = service.SettingsChange(
        internal_domains=lines("internal_domains"),
        blocklist=lines("blocklist"),
        lookback_days=lookback,
        create_contacts_automatically=form.get("create_contacts_automatically") == "on",
        default_sync_inbox=form.get("default_sync_inbox") == "on",
        default_sync_sent=form.get("default_sync_sent") == "on",
        unauthenticated_sender_domains=lines("unauthenticated_sender_domains"),
        time_zone=checked.time_zone,
    )
    try:
        with session_scope(sessions) as session:
            service.update_settings(session, actor, change)
    except FORM_ERRORS as error:
        return again(str(error))
    flash(request, "Settings saved.")
    return redirect("/settings")
