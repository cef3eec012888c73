"""The public account switch on the Email tab. Thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.kit.errors import ConflictError, PermissionDeniedError
from touchline.outbound.from_field import service
from touchline.ui import check_csrf, flash, redirect
from touchline.workspace.auth import PageActor, Sessions
from touchline.workspace.permissions import Actor

router = APIRouter(include_in_schema=False)


def email_tab_section(session: Session, actor: Actor) -> dict[str, object]:
    """The Email tab's "Public account usage" section (templates/public_account_section.html)."""
    return {"public_account": service.public_account_state(session, actor)}


@router.post("/profile/email/public-account")
def switch_public_account(
    request: Request,
    actor: PageActor,
    sessions: Sessions,
    csrf_token: Annotated[str, Form()],
    public: Annotated[str, Form()],
) -> Response:
    check_csrf(request, csrf_token)
    assert actor.user_id is not None
    turn_on = public == "yes"
    try:
        with session_scope(sessions) as session:
            state = service.set_public_account_usage(session, actor, actor.user_id, turn_on=turn_on)
    except (PermissionDeniedError, ConflictError) as error:
        flash(request, str(error), "error")
        return redirect("/profile/email")
    flash(
        request,
        f"Colleagues can now send from {state.address}."
        if state.public
        else f"{state.address} is private again: only you send from it.",
    )
    return redirect("/profile/email")
