"""The unsubscribe link's pages (public: the signed token is the authority) and the editor's undo. Thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, Response

from touchline.db import session_scope
from touchline.kit.crypto import SecretBox
from touchline.kit.errors import InvalidInputError
from touchline.outbound.unsubscribe import service
from touchline.ui import SubmittedForm, check_csrf, flash, redirect, templates
from touchline.workspace.auth import Now, PageActor, Sessions

router = APIRouter(include_in_schema=False)

ONE_CLICK = "One-Click"  # RFC 8058: the mail client POSTs List-Unsubscribe=One-Click


def _page(request: Request, token: str, *, unsubscribed: bool) -> HTMLResponse:
    # No login and no session here: the page must not set a cookie for whoever follows the link.
    response = templates.TemplateResponse(
        request,
        "unsubscribe.html",
        {"actor": None, "messages": [], "token": token, "unsubscribed": unsubscribed},
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


@router.get("/u/{token}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, sessions: Sessions) -> HTMLResponse:
    """Only asks: link scanners and previews follow GETs, so a GET never unsubscribes."""
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        contact = service.contact_of_link(session, box, token)
        unsubscribed = contact.unsubscribed_at is not None
    return _page(request, token, unsubscribed=unsubscribed)


@router.post("/u/{token}", response_class=HTMLResponse)
def unsubscribe(
    request: Request, token: str, sessions: Sessions, now: Now, form: SubmittedForm
) -> HTMLResponse:
    """The mail client's one-click POST (RFC 8058) or the confirmation page's button."""
    if form.get("List-Unsubscribe") == ONE_CLICK:
        via = "one-click"
    elif form.get("confirm") == "yes":
        via = "confirmation page"
    else:
        raise InvalidInputError("send List-Unsubscribe=One-Click, or use the button on this page")
    box: SecretBox = request.app.state.secret_box
    with session_scope(sessions) as session:
        service.unsubscribe(session, box, token, now, via=via)
    return _page(request, token, unsubscribed=True)


@router.post("/contacts/{contact_id}/unsubscribe/clear", status_code=status.HTTP_303_SEE_OTHER)
def clear_unsubscribe(
    request: Request,
    contact_id: uuid.UUID,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf_token)
    with session_scope(sessions) as session:
        contact = service.clear_unsubscribe(session, actor, contact_id)
        address = contact.email
    flash(request, f"{address} receives bulk and sequence emails again.")
    return redirect(f"/contacts/{contact_id}")
