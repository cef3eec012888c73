"""API models of stored templates and their previews."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from touchline.models import Template
from touchline.outbound.compose.templates import (
    MAX_SOURCE_CHARS,
    Part,
    Preview,
    ProblemKind,
    RenderedEmail,
    TemplateProblem,
)
from touchline.outbound.templates.service import MAX_NAME_CHARS, TemplateText
from touchline.workspace.schemas import ErrorOut

_SUBJECT = "The subject line; merge fields such as {{ enduser.first_name }} are allowed"
_HTML = "The HTML body, a sandboxed Jinja2 template with merge fields"
_TEXT = "The plain-text part; absent or empty: derived from the rendered HTML"


class TemplateIn(BaseModel):
    """A whole template, as created or replaced (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="Unique in the workspace")
    subject: str = Field(max_length=MAX_SOURCE_CHARS, description=_SUBJECT)
    html: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS, description=_HTML)
    text: str | None = Field(None, max_length=MAX_SOURCE_CHARS, description=_TEXT)
    track_opens: bool = Field(True, description="Count opens of emails sent from it")
    track_clicks: bool = Field(True, description="Count clicks on its links")
    utm: dict[str, str] | None = Field(
        None, description="utm_source, utm_medium, utm_campaign, utm_content (merge fields allowed)"
    )

    def content(self) -> TemplateText:
        return TemplateText(self.subject, self.html, self.text, self.track_opens, self.track_clicks, self.utm)


class TemplateChange(BaseModel):
    """The parts of a template to change (PATCH); the others stay. Any change makes a new version."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)
    subject: str | None = Field(None, max_length=MAX_SOURCE_CHARS, description=_SUBJECT)
    html: str | None = Field(None, min_length=1, max_length=MAX_SOURCE_CHARS, description=_HTML)
    text: str | None = Field(
        None, max_length=MAX_SOURCE_CHARS, description=_TEXT + "; send an empty text to derive it again"
    )
    track_opens: bool | None = None
    track_clicks: bool | None = None
    utm: dict[str, str] | None = None

    def applied_to(self, row: Template) -> TemplateText:
        given = self.model_fields_set
        return TemplateText(
            subject=self.subject if self.subject is not None else row.subject,
            html=self.html if self.html is not None else row.html,
            text=self.text if "text" in given else row.text,
            track_opens=self.track_opens if self.track_opens is not None else row.track_opens,
            track_clicks=self.track_clicks if self.track_clicks is not None else row.track_clicks,
            utm=self.utm if "utm" in given else row.utm,
        )


class TemplateOut(BaseModel):
    id: uuid.UUID
    name: str
    subject: str
    html: str
    text: str | None = Field(description="None: derived from the rendered HTML")
    track_opens: bool
    track_clicks: bool
    utm: dict[str, str] | None = None
    version: int = Field(description="Grows with every edit; each email records the version it came from")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: Template) -> TemplateOut:
        return cls(
            id=row.id,
            name=row.name,
            subject=row.subject,
            html=row.html,
            text=row.text,
            track_opens=row.track_opens,
            track_clicks=row.track_clicks,
            utm=row.utm,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class ProblemOut(BaseModel):
    part: Part
    kind: ProblemKind
    line: int | None = Field(description="The line of the part, when the problem has one")
    field: str | None = Field(description="The merge field concerned, such as enduser.first_name")
    message: str

    @classmethod
    def of(cls, problem: TemplateProblem) -> ProblemOut:
        return cls(
            part=problem.part,
            kind=problem.kind,
            line=problem.line,
            field=problem.field,
            message=problem.message,
        )


class TemplateProblemsOut(ErrorOut):
    """The answer when a template cannot be saved: every problem, with its part and line."""

    problems: list[ProblemOut]


class RenderedOut(BaseModel):
    subject: str
    html: str | None
    text: str

    @classmethod
    def of(cls, email: RenderedEmail) -> RenderedOut:
        return cls(subject=email.subject, html=email.html, text=email.text)


class PreviewIn(BaseModel):
    """Content being written, not saved yet, to see as a contact would get it."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(max_length=MAX_SOURCE_CHARS, description=_SUBJECT)
    html: str = Field(max_length=MAX_SOURCE_CHARS, description=_HTML)
    text: str | None = Field(None, max_length=MAX_SOURCE_CHARS, description=_TEXT)
    contact_id: uuid.UUID = Field(description="The contact whose merge fields fill it")
    sender_id: uuid.UUID | None = Field(None, description="The user it would be sent by; you when absent")

    def content(self) -> TemplateText:
        return TemplateText(self.subject, self.html, self.text)


class PreviewOut(BaseModel):
    """The email as the contact would get it, or every reason it cannot be sent to them."""

    rendered: RenderedOut | None = Field(description="None when there are problems")
    problems: list[ProblemOut]
    missing_fields: list[str] = Field(description="Merge fields the template needs that the contact lacks")

    @classmethod
    def of(cls, preview: Preview) -> PreviewOut:
        return cls(
            rendered=RenderedOut.of(preview.rendered) if preview.rendered else None,
            problems=[ProblemOut.of(problem) for problem in preview.problems],
            missing_fields=list(preview.missing_fields),
        )
