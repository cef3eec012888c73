"""The bulk send pages: a filter builder with a live recipient count, a dry run listing whom it would
skip, sending, and a bulk send's progress. Thin; page script in static/bulk.js."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.kit.errors import InvalidInputError, NotFoundError
from touchline.outbound.bulk import service
from touchline.outbound.bulk.schemas import BulkSendOut, CountOut
from touchline.outbound.compose.merge import STANDARD_FIELDS
from touchline.outbound.compose.senders import ACCOUNT_OWNER_CHOICE, FromChoice
from touchline.outbound.from_field import service as from_field
from touchline.outbound.from_field.service import ComposeContext
from touchline.outbound.templates import service as templates
from touchline.ui import check_csrf, redirect, render
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import AppSettings, Now, PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)

OPERATORS: Final = (
    ("=", "is"),
    ("!=", "is not"),
    ("~", "contains"),
    ("<", "is below"),
    ("<=", "is at most"),
    (">", "is above"),
    (">=", "is at least"),
    ("empty", "is empty"),
    ("not-empty", "is not empty"),
)
_OPERATOR_KEYS: Final = frozenset(key for key, _ in OPERATORS)
MAX_ROWS: Final = 50


@dataclass(frozen=True)
class FilterRow:
    field: str
    operator: str
    value: str

    def written(self) -> str:
        if self.operator == "empty":
            return f"{self.field}="
        if self.operator == "not-empty":
            return f"{self.field}!="
        return f"{self.field}{self.operator}{self.value}"


def _rows(fields: list[str], operators: list[str], values: list[str]) -> list[FilterRow]:
    rows = []
    for index, field in enumerate(fields[:MAX_ROWS]):
        operator = operators[index] if index < len(operators) else "="
        value = values[index] if index < len(values) else ""
        if not field.strip():
            continue
        if operator not in _OPERATOR_KEYS:
            raise InvalidInputError(f"{operator!r} is not an operator; choose one from the list")
        rows.append(FilterRow(field.strip(), operator, value.strip()))
    return rows


def _merge_fields(session: Session, actor: Actor) -> list[str]:
    """Every field a filter may name: the standard enduser and company fields, then the workspace's
    custom fields, as templates name them."""
    names = [f"{kind}.{name}" for kind in ("enduser", "company") for name in STANDARD_FIELDS[kind]]
    for definition in workspace_service.list_custom_fields(session, actor):
        kind = "enduser" if definition.kind == "contact" else "company"
        names.append(f"{kind}.custom.{definition.key}")
    return names


def from_choices(session: Session, actor: Actor) -> list[FromChoice]:
    """The From choices of a bulk send (the analytics follow-up form offers the same)."""
    choices = list(from_field.from_choices(session, actor, ComposeContext()))
    # A bulk send writes to each enduser on behalf of their company, so its owner is a choice too.
    if ACCOUNT_OWNER_CHOICE not in choices:
        choices.append(ACCOUNT_OWNER_CHOICE)
    return choices


def _form_page(
    request: Request,
    actor: Actor,
    sessions: Sessions,
    *,
    typed: dict[str, object] | None = None,
    plan: service.Plan | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    with session_scope(sessions) as session:
        context: dict[str, object] = {
            "fields": _merge_fields(session, actor),
            "operators": OPERATORS,
            "templates": templates.list_templates(session, actor),
            "choices": from_choices(session, actor),
            "bulk_sends": service.list_bulk_sends(session, actor, limit=50),
        }
    typed = typed or {}
    context.update(
        typed=typed,
        rows=typed.get("rows") or [FilterRow("", "=", "")],
        plan=plan,
        error=error,
    )
    return render(request, "bulk.html", actor, context, status_code=status_code)


@router.get("/bulk")
def bulk_page(request: Request, actor: PageActor, sessions: Sessions) -> Response:
    return _form_page(request, actor, sessions)


@router.get("/bulk/count")
def bulk_count(
    actor: PageActor,
    sessions: Sessions,
    fields: Annotated[list[str] | None, Query(alias="field", max_length=MAX_ROWS)] = None,
    operators: Annotated[list[str] | None, Query(alias="op", max_length=MAX_ROWS)] = None,
    values: Annotated[list[str] | None, Query(alias="value", max_length=MAX_ROWS)] = None,
) -> CountOut:
    """The live count of the filter builder (the page's script asks as filters change)."""
    rows = _rows(fields or [], operators or [], values or [])
    with session_scope(sessions) as session:
        recipients, skipped = service.count(session, actor, [row.written() for row in rows])
    return CountOut(recipients=recipients, skipped=skipped)


@router.post("/bulk")
def bulk_submit(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    settings: AppSettings,
    csrf_token: Annotated[str, Form()],
    sender: Annotated[str, Form()],
    template_id: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "each",
    action: Annotated[str, Form()] = "preview",
    field: Annotated[list[str] | None, Form()] = None,
    op: Annotated[list[str] | None, Form()] = None,
    value: Annotated[list[str] | None, Form()] = None,
) -> Response:
    check_csrf(request, csrf_token)
    typed: dict[str, object] = {"sender": sender, "template_id": template_id, "mode": mode}
    try:
        rows = _rows(field or [], op or [], value or [])
        typed["rows"] = rows
        try:
            chosen = uuid.UUID(template_id)
        except ValueError:
            raise InvalidInputError("choose a template to send") from None
        wanted = service.BulkRequest(
            sender, None, chosen, "one" if mode == "one" else "each", [row.written() for row in rows]
        )
        with session_scope(sessions) as session:
            if action == "send":
                bulk_id = service.start(session, actor, wanted, settings=settings).id
            else:
                plan = service.plan(session, actor, wanted, settings=settings)
    except (InvalidInputError, NotFoundError) as error:
        return _form_page(request, actor, sessions, typed=typed, error=str(error), status_code=422)
    if action == "send":
        return redirect(f"/bulk/{bulk_id}")
    return _form_page(request, actor, sessions, typed=typed, plan=plan)


@router.get("/bulk/{bulk_id}")
def bulk_send_page(
    bulk_id: uuid.UUID, request: Request, actor: PageActor, sessions: Sessions, now: Now
) -> Response:
    with session_scope(sessions) as session:
        bulk = service.get_bulk_send(session, actor, bulk_id)
        out = BulkSendOut.of(bulk, service.progress(session, actor, bulk.id, now))
        skipped = service.skipped_of(session, actor, bulk.id)
    return render(request, "bulk_send.html", actor, {"bulk": out, "skipped": skipped})


@router.get("/bulk/{bulk_id}/progress")
def bulk_progress(bulk_id: uuid.UUID, actor: PageActor, sessions: Sessions, now: Now) -> BulkSendOut:
    """What the bulk send's page refreshes from."""
    with session_scope(sessions) as session:
        bulk = service.get_bulk_send(session, actor, bulk_id)
        return BulkSendOut.of(bulk, service.progress(session, actor, bulk.id, now))
