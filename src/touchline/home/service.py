"""What the home page shows, gathered through each feature's own visibility rules.

Every part is asked of the feature that owns it with the actor's permissions (an unassigned list, the
outbox, the engagement records, mailboxes); nothing here widens what the actor may see elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from touchline.inbound import timeline
from touchline.inbound.receive import repository as receive_repository
from touchline.kit.pagination import Page, PageRequest
from touchline.mailboxes import service as mailbox_service
from touchline.models import Mailbox
from touchline.models.engagement import EmailEngagement
from touchline.models.mail import QuarantinedMessage
from touchline.models.outbound import OutboundEmail
from touchline.outbound.engagement import service as engagement_service
from touchline.outbound.send import service as outbox_service
from touchline.workspace.permissions import Actor, Permission

RECENT = 8
"""Rows in each of the home page's lists; the full lists are a link away."""
COUNT_CAP = 100
"""Failed sends are counted up to this; beyond it the page says "100+"."""


@dataclass(frozen=True)
class Attention:
    """One thing that needs someone: how many, and where to deal with them."""

    label: str
    count: int
    href: str | None
    capped: bool = False

    @property
    def shown_count(self) -> str:
        return f"{self.count}+" if self.capped else str(self.count)


@dataclass(frozen=True)
class MailboxHealth:
    mailbox: Mailbox
    folder_summary: str | None
    every_folder_failing: bool = False

    @property
    def healthy(self) -> bool:
        return self.mailbox.status == mailbox_service.STATUS_CONNECTED and self.folder_summary is None

    @property
    def state(self) -> str:
        """The mailbox's state in a few words; the details (the server's words, which folders) go
        beneath it."""
        if self.healthy:
            return "working"
        if self.mailbox.status == mailbox_service.STATUS_NEEDS_RECONNECT:
            return "needs reconnecting"
        if self.mailbox.status == mailbox_service.STATUS_ERROR:
            return "failing"
        return "every folder failing" if self.every_folder_failing else "some folders failing"


@dataclass
class HomeView:
    for_team: bool
    conversations: Page[timeline.TimelineEntry] | None = None
    attention: list[Attention] = field(default_factory=list)
    mailboxes: list[MailboxHealth] = field(default_factory=list)
    scheduled: list[OutboundEmail] = field(default_factory=list)
    engagement: list[EmailEngagement] = field(default_factory=list)


def _mailboxes(session: Session, actor: Actor) -> list[MailboxHealth]:
    if actor.can(Permission.ADMIN_ACCESS):
        found = mailbox_service.list_mailboxes(session, actor)
    elif actor.user_id is not None and actor.can(Permission.EMAIL_SYNC):
        own = mailbox_service.mailbox_of_user(session, actor, actor.user_id)
        found = [own] if own else []
    else:
        found = []
    return [
        MailboxHealth(
            mailbox,
            mailbox_service.health_summary(mailbox),
            every_folder_failing=mailbox_service.every_folder_failing(mailbox),
        )
        for mailbox in found
    ]


def _attention(session: Session, actor: Actor, mailboxes: list[MailboxHealth]) -> list[Attention]:
    items: list[Attention] = []
    if actor.can(Permission.VIEW_CUSTOMERS):
        unassigned = receive_repository.list_unassigned(session, actor, PageRequest(1, 0)).total
        items.append(Attention("Unassigned emails", unassigned, "/unassigned"))
    if actor.can(Permission.ADMIN_ACCESS):
        refused = receive_repository.list_refusals(session, actor, PageRequest(1, 0)).total
        items.append(Attention("Mail the log address refused", refused, "/unassigned/refused"))
        quarantined = (
            session.scalar(
                select(func.count())
                .select_from(QuarantinedMessage)
                .where(QuarantinedMessage.workspace_id == actor.workspace_id)
            )
            or 0
        )
        # Nothing lists them yet, so the count has no link; it says whether to look at the logs.
        items.append(Attention("Messages that could not be processed", quarantined, None))
    failing = len([health for health in mailboxes if not health.healthy])
    if actor.can(Permission.ADMIN_ACCESS):
        items.append(Attention("Mailboxes to reconnect or failing", failing, "#mailboxes"))
    else:
        items.append(Attention("My mailbox needs reconnecting or is failing", failing, "/profile/email"))
    if actor.can(Permission.SEND_EMAIL) or actor.can(Permission.ADMIN_ACCESS):
        mine = None if actor.can(Permission.ADMIN_ACCESS) else actor.user_id
        who = "everyone" if mine is None else "mine"
        for status, label in (
            (outbox_service.FAILED, "Failed sends"),
            (outbox_service.UNKNOWN, "Sends of unknown outcome"),
        ):
            found = len(
                outbox_service.list_outbox(session, actor, limit=COUNT_CAP, status=status, created_by=mine)
            )
            href = f"/outbox?who={who}&status={status}"
            items.append(Attention(label, found, href, capped=found >= COUNT_CAP))
    return items


def _recent_engagement(session: Session, actor: Actor) -> list[EmailEngagement]:
    if actor.user_id is None or not actor.can(Permission.SEND_EMAIL):
        return []
    return list(
        session.scalars(
            select(EmailEngagement)
            .where(
                *engagement_service.visible_records(actor),
                EmailEngagement.created_by == actor.user_id,
                EmailEngagement.last_event_at.is_not(None),
            )
            .order_by(EmailEngagement.last_event_at.desc(), EmailEngagement.id)
            .limit(RECENT)
        )
    )


def _due(email: OutboundEmail) -> datetime:
    return email.scheduled_for or email.created_at


def home_view(session: Session, actor: Actor) -> HomeView:
    view = HomeView(for_team=actor.can(Permission.ADMIN_ACCESS))
    if actor.user_id is not None and actor.can(Permission.VIEW_CUSTOMERS):
        view.conversations = timeline.owner_timeline(
            session, actor.workspace_id, actor.user_id, PageRequest(RECENT, 0)
        )
    view.mailboxes = _mailboxes(session, actor)
    view.attention = _attention(session, actor, view.mailboxes)
    if actor.user_id is not None and actor.can(Permission.SEND_EMAIL):
        scheduled = outbox_service.list_outbox(
            session, actor, limit=COUNT_CAP, status=outbox_service.SCHEDULED, created_by=actor.user_id
        )
        view.scheduled = sorted(scheduled, key=_due)[:RECENT]
    view.engagement = _recent_engagement(session, actor)
    return view
