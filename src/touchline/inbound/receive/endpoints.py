"""JSON API: raw MIME posted to a log address (for mail providers' inbound routing), the unassigned
list, and the log address's credentials and refusals for admins. Thin."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from touchline.config import Settings
from touchline.db import session_scope
from touchline.inbound import repository as emails
from touchline.inbound.receive import repository, service
from touchline.inbound.receive.authentication import SenderChecks
from touchline.inbound.receive.schemas import (
    AssignmentIn,
    InboundCredentialsOut,
    LoggedOut,
    RefusalOut,
    UnassignedEmailDetailOut,
    UnassignedEmailOut,
)
from touchline.inbound.schemas import EmailDetailOut, EmailOut, explanation_of
from touchline.kit.crypto import SecretBox
from touchline.kit.pagination import MAX_OFFSET, PageRequest
from touchline.workspace import service as workspace_service
from touchline.workspace.auth import ApiActor, Sessions
from touchline.workspace.schemas import ErrorOut, PageOut

router = APIRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET)]

SECRET_HEADER = "X-Touchline-Inbound-Secret"  # noqa: S105 -- a header name, not a secret
_UNAUTHORISED = "unknown log address or wrong inbound secret"
_RAW_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The message exactly as received (RFC 5322): most providers' 'raw MIME' option",
        "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
    }
}
_STATUS_BY_OUTCOME = {
    "refused": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "quarantined": status.HTTP_422_UNPROCESSABLE_CONTENT,
    "deferred": status.HTTP_503_SERVICE_UNAVAILABLE,
}


def _basic_password(authorization: str | None) -> tuple[str, str] | None:
    """(user, password) of an HTTP Basic header; providers that cannot set headers put them in the URL."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return user, password


def sender_checks(request: Request) -> SenderChecks:
    """How senders are authenticated (a dependency, so that tests can give it their own DNS)."""
    settings: Settings = request.app.state.settings
    return SenderChecks.of(settings)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"messages are limited to {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"messages are limited to {limit} bytes")
    return bytes(body)


@router.post(
    "/inbound/{log_address}/messages",
    tags=["log address"],
    status_code=status.HTTP_201_CREATED,
    summary="Log a raw message sent to a log address (for a mail provider's inbound routing)",
    openapi_extra=_RAW_BODY,
    responses={
        200: {"description": "Already stored (a synced copy, or logged before): recorded as logged"},
        401: {"description": _UNAUTHORISED},
        413: {"description": "Larger than the configured inbound_max_message_bytes"},
        422: {
            "description": "Refused (sender not a user, not authenticated for its From domain, ...) "
            "or quarantined; do not retry"
        },
        503: {"description": "Not stored just now; retry later"},
    },
)
async def receive_message(
    log_address: str,
    request: Request,
    sessions: Sessions,
    checks: Annotated[SenderChecks, Depends(sender_checks)],
    envelope_from: Annotated[
        str | None, Query(description="The SMTP envelope sender (MAIL FROM), when the provider tells it")
    ] = None,
    client_ip: Annotated[
        str | None,
        Query(
            description="The address of the SMTP client that handed the message to the provider; with "
            "envelope_from, SPF is checked for it"
        ),
    ] = None,
    inbound_secret: Annotated[str | None, Header(alias=SECRET_HEADER)] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """Authenticated by the workspace's inbound secret, in the `X-Touchline-Inbound-Secret` header or as
    the password of HTTP Basic authentication (user: the log address). The sender rules are those of
    SMTP: the From addresses and `envelope_from` must be users of the workspace, and the message must
    be authenticated for its From domain: an aligned DKIM signature or a trusted forwarder's ARC seal
    in the message, or SPF when the provider tells `client_ip` and `envelope_from` (or a domain the
    workspace relaxed). The provider's own address counts for nothing: it relays anyone's mail."""
    basic = _basic_password(authorization)
    secret = inbound_secret or (basic[1] if basic else "")
    settings: Settings = request.app.state.settings
    box: SecretBox = request.app.state.secret_box

    def authenticate() -> uuid.UUID | None:
        with session_scope(sessions) as session:
            return service.authenticate_inbound(session, box, log_address, secret)

    workspace_id = await run_in_threadpool(authenticate)
    if workspace_id is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, _UNAUTHORISED)
    raw = await _read_limited(request, settings.inbound_max_message_bytes)
    client = request.client.host if request.client else ""
    result = await run_in_threadpool(
        service.log_message,
        sessions,
        workspace_id,
        raw,
        service.Envelope("http", envelope_from, client, client_ip),
        max_bytes=settings.inbound_max_message_bytes,
        checks=checks,
    )
    body = LoggedOut.of(result).model_dump(mode="json")
    if result.outcome == "logged":
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return JSONResponse(body, status_code=code)
    headers = {"Retry-After": "60"} if result.outcome == "deferred" else None
    code = _STATUS_BY_OUTCOME[result.outcome]
    # A refusal is an error like any other (the shared problem shape), with the outcome's own members.
    problem = ErrorOut.of(code, result.text).body()
    return JSONResponse(
        {**body, **problem, "code": result.reason_code},
        status_code=code,
        headers=headers,
        media_type=ErrorOut.MEDIA_TYPE,
    )


@router.get("/inbound/credentials", tags=["log address"], summary="The log address and HTTP secret (admins)")
def read_credentials(request: Request, actor: ApiActor, sessions: Sessions) -> InboundCredentialsOut:
    box: SecretBox = request.app.state.secret_box
    settings: Settings = request.app.state.settings
    with session_scope(sessions) as session:
        secret = workspace_service.inbound_secret(session, actor, box)
        address = workspace_service.get_settings(session, actor).log_address
    return InboundCredentialsOut(
        log_address=address,
        http_endpoint=f"{settings.base_url.rstrip('/')}/api/v1/inbound/{address}/messages",
        inbound_secret=secret,
        secret_header=SECRET_HEADER,
    )


@router.post(
    "/inbound/credentials/rotate",
    tags=["log address"],
    summary="Replace the HTTP inbound secret; the old one stops working (admins)",
)
def rotate_credentials(request: Request, actor: ApiActor, sessions: Sessions) -> InboundCredentialsOut:
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        service.rotate_inbound_secret(session, actor, box)
    return read_credentials(request, actor, sessions)


@router.get("/inbound/refusals", tags=["log address"], summary="Messages the log address refused (admins)")
def list_refusals(
    actor: ApiActor,
    sessions: Sessions,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[RefusalOut]:
    with session_scope(sessions) as session:
        page = repository.list_refusals(session, actor, PageRequest(limit, offset))
        return PageOut(
            items=[RefusalOut.of(row) for row in page.items], total=page.total, limit=limit, offset=offset
        )


@router.get(
    "/unassigned-emails",
    tags=["unassigned emails"],
    summary="Logged emails waiting to be assigned, newest first",
)
def list_unassigned(
    actor: ApiActor, sessions: Sessions, limit: Limit = 50, offset: Offset = 0
) -> PageOut[UnassignedEmailOut]:
    with session_scope(sessions) as session:
        page = repository.list_unassigned(session, actor, PageRequest(limit, offset))
        companies = repository.companies_by_id(
            session, actor, [value for email in page.items for value in email.suggested_company_ids]
        )
        return PageOut(
            items=[
                UnassignedEmailOut.of_unassigned(email, repository.suggestions_of(email, companies))
                for email in page.items
            ],
            total=page.total,
            limit=limit,
            offset=offset,
        )


@router.get(
    "/unassigned-emails/{email_id}",
    tags=["unassigned emails"],
    summary="One unassigned email with its body, suggestions and log record",
)
def read_unassigned(email_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> UnassignedEmailDetailOut:
    with session_scope(sessions) as session:
        email = repository.get_unassigned(session, actor, email_id)
        companies = repository.companies_by_id(session, actor, email.suggested_company_ids)
        summary = UnassignedEmailOut.of_unassigned(email, repository.suggestions_of(email, companies))
        return UnassignedEmailDetailOut(
            **summary.model_dump(),
            text_body=email.text_body,
            html_body=email.html_body,
            attachments=list(email.attachments),
            log=list((email.decision or {}).get("log", [])),
        )


@router.post(
    "/unassigned-emails/{email_id}/assignment",
    tags=["unassigned emails"],
    summary="Assign a logged email to companies and/or contacts; it moves onto their timelines",
)
def assign(email_id: uuid.UUID, body: AssignmentIn, actor: ApiActor, sessions: Sessions) -> EmailDetailOut:
    with session_scope(sessions) as session:
        email = service.assign(
            session, actor, email_id, company_ids=body.company_ids, contact_ids=body.contact_ids
        )
        companies, contacts = emails.links_of(session, email)
        return EmailDetailOut(
            **EmailOut.of(email).model_dump(),
            text_body=email.text_body,
            html_body=email.html_body,
            attachments=list(email.attachments),
            companies=companies,
            contacts=contacts,
            explanation=explanation_of(email),
        )


@router.delete(
    "/unassigned-emails/{email_id}",
    tags=["unassigned emails"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Dismiss an unassigned email: it is deleted, and the audit log records it",
)
def dismiss(email_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.dismiss(session, actor, email_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
