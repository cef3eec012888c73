"""JSON API of stored templates: list, create, read, edit (each edit a new version), delete, preview. Thin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from touchline.db import session_scope
from touchline.models import Template
from touchline.outbound.templates import service
from touchline.outbound.templates.schemas import (
    PreviewIn,
    PreviewOut,
    ProblemOut,
    TemplateChange,
    TemplateIn,
    TemplateOut,
    TemplateProblemsOut,
)
from touchline.workspace.auth import ApiActor, Sessions

router = APIRouter(prefix="/api/v1", tags=["templates"])

_NEEDS = "Needs the `send_email` permission."
_REFUSED: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {
        "model": TemplateProblemsOut,
        "description": "The template cannot render for anybody: every problem, with its part and line",
    }
}


def _refused(error: service.TemplateInvalidError) -> JSONResponse:
    answer = TemplateProblemsOut.of(
        status.HTTP_400_BAD_REQUEST,
        f"the template was not saved: {error}",
        problems=[ProblemOut.of(problem) for problem in error.problems],
    )
    return JSONResponse(
        answer.body(),
        status_code=status.HTTP_400_BAD_REQUEST,
        media_type=TemplateProblemsOut.MEDIA_TYPE,
    )


def _saved(
    sessions: Sessions, save: Callable[[Session], Template], code: int = status.HTTP_200_OK
) -> Response:
    try:
        with session_scope(sessions) as session:
            answer = TemplateOut.of(save(session))
    except service.TemplateInvalidError as error:
        return _refused(error)
    return JSONResponse(answer.model_dump(mode="json"), status_code=code)


@router.get("/templates", summary="The workspace's templates, by name", description=_NEEDS)
def list_templates(actor: ApiActor, sessions: Sessions) -> list[TemplateOut]:
    with session_scope(sessions) as session:
        return [TemplateOut.of(row) for row in service.list_templates(session, actor)]


@router.post(
    "/templates",
    status_code=status.HTTP_201_CREATED,
    summary="Store a template (version 1)",
    description=f"{_NEEDS} The template is checked first: a problem in any part refuses it (400).",
    response_model=TemplateOut,
    responses=_REFUSED,
)
def create_template(body: TemplateIn, actor: ApiActor, sessions: Sessions) -> Response:
    return _saved(
        sessions,
        lambda session: service.create_template(session, actor, body.name, body.content()),
        status.HTTP_201_CREATED,
    )


@router.post(
    "/templates/preview",
    summary="Preview content not saved yet, as a contact would get it",
    description=f"{_NEEDS} Problems and missing fields are part of the answer, not an error.",
)
def preview_content(body: PreviewIn, actor: ApiActor, sessions: Sessions) -> PreviewOut:
    with session_scope(sessions) as session:
        return PreviewOut.of(
            service.preview_as(session, actor, body.content(), body.contact_id, body.sender_id)
        )


@router.get("/templates/{template_id}", summary="One template", description=_NEEDS)
def read_template(template_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> TemplateOut:
    with session_scope(sessions) as session:
        return TemplateOut.of(service.get_template(session, actor, template_id))


@router.put(
    "/templates/{template_id}",
    summary="Replace a template: a new version",
    description=f"{_NEEDS} Emails already made keep the version they were rendered from.",
    response_model=TemplateOut,
    responses=_REFUSED,
)
def replace_template(
    template_id: uuid.UUID, body: TemplateIn, actor: ApiActor, sessions: Sessions
) -> Response:
    return _saved(
        sessions,
        lambda session: service.update_template(session, actor, template_id, body.content(), body.name),
    )


@router.patch(
    "/templates/{template_id}",
    summary="Change parts of a template: a new version",
    description=f"{_NEEDS} Parts left out stay as they are.",
    response_model=TemplateOut,
    responses=_REFUSED,
)
def change_template(
    template_id: uuid.UUID, body: TemplateChange, actor: ApiActor, sessions: Sessions
) -> Response:
    def save(session: Session) -> Template:
        row = service.get_template(session, actor, template_id)
        return service.update_template(session, actor, template_id, body.applied_to(row), body.name)

    return _saved(sessions, save)


@router.delete(
    "/templates/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a template",
    description=f"{_NEEDS} Emails sent from it keep its name and version.",
)
def delete_template(template_id: uuid.UUID, actor: ApiActor, sessions: Sessions) -> Response:
    with session_scope(sessions) as session:
        service.delete_template(session, actor, template_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/templates/{template_id}/preview",
    summary="Preview a saved template as a contact would get it",
    description=f"{_NEEDS} Problems and missing fields are part of the answer, not an error.",
)
def preview_template(
    template_id: uuid.UUID,
    actor: ApiActor,
    sessions: Sessions,
    contact_id: Annotated[uuid.UUID, Query(description="The contact whose merge fields fill it")],
    sender_id: Annotated[
        uuid.UUID | None, Query(description="The user it would be sent by; you when absent")
    ] = None,
) -> PreviewOut:
    with session_scope(sessions) as session:
        row = service.get_template(session, actor, template_id)
        content = service.TemplateText(row.subject, row.html, row.text, row.track_opens, row.track_clicks)
        return PreviewOut.of(service.preview_as(session, actor, content, contact_id, sender_id))
