"""Stored templates: create, edit, find and preview the workspace's email templates.

A template is checked when it is saved (syntax, constructs the sandbox refuses, fields no enduser or
company has), so a saved template fails for a recipient only when that recipient lacks a field it
needs. Each edit raises the version that the emails rendered from it record.

Takes a session; may flush, never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.models import Sequence, SequenceStep, Template, User
from touchline.outbound import repository
from touchline.outbound.compose.templates import (
    CompiledTemplate,
    EmailTemplate,
    Preview,
    TemplateInvalidError,
    compile_template,
    preview,
)
from touchline.outbound.track.utm import checked_utm
from touchline.workspace import service as workspace_service
from touchline.workspace.permissions import Actor, Permission

MAX_NAME_CHARS: Final = 200


@dataclass(frozen=True)
class TemplateText:
    """What a template is made of, as written."""

    subject: str
    html: str
    text: str | None = None
    track_opens: bool = True
    track_clicks: bool = True
    utm: Mapping[str, str] | None = None
    """UTM parameters for the tracked links of emails sent from it (merge fields allowed)."""


def as_email_template(row: Template) -> EmailTemplate:
    return EmailTemplate(
        subject=row.subject,
        html=row.html,
        text=row.text,
        track_opens=row.track_opens,
        track_clicks=row.track_clicks,
    )


def compiled(row: Template) -> CompiledTemplate:
    """The stored template ready to render; it was checked when saved, so this only fails if the
    workspace's fields changed since (TemplateInvalidError names the problems)."""
    return compile_template(as_email_template(row))


def _checked_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InvalidInputError("a template needs a name")
    if len(cleaned) > MAX_NAME_CHARS:
        raise InvalidInputError(f"a template name has at most {MAX_NAME_CHARS} characters")
    return cleaned


def _checked_text(content: TemplateText) -> TemplateText:
    text = content.text if content.text is not None and content.text.strip() else None
    checked = TemplateText(
        content.subject,
        content.html,
        text,
        content.track_opens,
        content.track_clicks,
        checked_utm(content.utm),
    )
    if not checked.html.strip():
        raise InvalidInputError("a template needs an HTML body")
    compile_template(
        EmailTemplate(checked.subject, checked.html, checked.text, checked.track_opens, checked.track_clicks)
    )  # raises TemplateInvalidError with every problem and its line
    return checked


def _name_taken(session: Session, actor: Actor, name: str, other_than: uuid.UUID | None) -> bool:
    found = session.scalar(
        select(Template.id).where(Template.workspace_id == actor.workspace_id, Template.name == name)
    )
    return found is not None and found != other_than


def create_template(session: Session, actor: Actor, name: str, content: TemplateText) -> Template:
    actor.require(Permission.SEND_EMAIL)
    name = _checked_name(name)
    checked = _checked_text(content)
    if _name_taken(session, actor, name, None):
        raise ConflictError(f"a template named {name!r} already exists; choose another name or edit it")
    row = Template(
        workspace_id=actor.workspace_id,
        name=name,
        subject=checked.subject,
        html=checked.html,
        text=checked.text,
        track_opens=checked.track_opens,
        track_clicks=checked.track_clicks,
        utm=dict(checked.utm) if checked.utm else None,
        version=1,
        created_by=actor.user_id,
        updated_by=actor.user_id,
    )
    session.add(row)
    session.flush()
    workspace_service.record_audit(session, actor, "template.create", "template", row.id, {"name": name})
    return row


def update_template(
    session: Session, actor: Actor, template_id: uuid.UUID, content: TemplateText, name: str | None = None
) -> Template:
    """A new version of the template; emails already rendered keep the version they were made from."""
    row = get_template(session, actor, template_id)
    checked = _checked_text(content)
    if name is not None:
        new_name = _checked_name(name)
        if _name_taken(session, actor, new_name, row.id):
            raise ConflictError(f"a template named {new_name!r} already exists")
        row.name = new_name
    row.subject, row.html, row.text = checked.subject, checked.html, checked.text
    row.track_opens, row.track_clicks = checked.track_opens, checked.track_clicks
    row.utm = dict(checked.utm) if checked.utm else None
    row.version += 1
    row.updated_by = actor.user_id
    session.flush()
    workspace_service.record_audit(
        session, actor, "template.update", "template", row.id, {"name": row.name, "version": row.version}
    )
    return row


def delete_template(session: Session, actor: Actor, template_id: uuid.UUID) -> None:
    """Emails sent from it keep its name and version; sequences that use it refuse the deletion."""
    row = get_template(session, actor, template_id)
    used_by = sorted(
        session.scalars(
            select(Sequence.name)
            .join(SequenceStep, SequenceStep.sequence_id == Sequence.id)
            .where(SequenceStep.workspace_id == actor.workspace_id, SequenceStep.template_id == row.id)
            .distinct()
        )
    )
    if used_by:
        names = ", ".join(repr(name) for name in used_by)
        raise ConflictError(
            f"template {row.name!r} is a step of the sequence(s) {names}; change those steps first"
        )
    workspace_service.record_audit(session, actor, "template.delete", "template", row.id, {"name": row.name})
    session.delete(row)
    session.flush()


def get_template(session: Session, actor: Actor, template_id: uuid.UUID) -> Template:
    actor.require(Permission.SEND_EMAIL)
    row = session.scalar(
        select(Template).where(Template.id == template_id, Template.workspace_id == actor.workspace_id)
    )
    if row is None:
        raise NotFoundError("template not found")
    return row


def template_named(session: Session, actor: Actor, name: str) -> Template:
    actor.require(Permission.SEND_EMAIL)
    row = session.scalar(
        select(Template).where(Template.workspace_id == actor.workspace_id, Template.name == name.strip())
    )
    if row is None:
        raise NotFoundError(f"no template named {name.strip()!r} in this workspace")
    return row


def list_templates(session: Session, actor: Actor) -> list[Template]:
    actor.require(Permission.SEND_EMAIL)
    return list(
        session.scalars(
            select(Template).where(Template.workspace_id == actor.workspace_id).order_by(Template.name)
        )
    )


def preview_for(
    session: Session, actor: Actor, content: TemplateText, contact_id: uuid.UUID, sender: User
) -> Preview:
    """`content` (saved or being edited) as the contact would get it from `sender`, or every problem:
    template errors with their line, and each merge field the contact lacks."""
    actor.require(Permission.SEND_EMAIL)
    context = repository.merge_context(session, actor, contact_id, sender.id)
    template = EmailTemplate(
        content.subject, content.html, content.text or None, content.track_opens, content.track_clicks
    )
    return preview(template, context)


def preview_as(
    session: Session,
    actor: Actor,
    content: TemplateText,
    contact_id: uuid.UUID,
    sender_id: uuid.UUID | None = None,
) -> Preview:
    """`preview_for` with the sender named by id (another workspace's: NotFoundError); the actor when None."""
    actor.require(Permission.SEND_EMAIL)
    chosen = sender_id or actor.user_id
    if chosen is None:
        raise InvalidInputError("name the user the email would be sent by")
    sender = workspace_service.get_user(session, actor, chosen)
    return preview_for(session, actor, content, contact_id, sender)


__all__ = [
    "TemplateInvalidError",
    "TemplateText",
    "as_email_template",
    "compiled",
    "create_template",
    "delete_template",
    "get_template",
    "list_templates",
    "preview_as",
    "preview_for",
    "template_named",
    "update_template",
]
