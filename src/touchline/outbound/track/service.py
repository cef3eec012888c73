"""Tracking tokens: issued when a tracked email's message is first built, looked up when hit.

Takes a session; may flush, never commits.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from touchline.models import OutboundEmail
from touchline.models.engagement import TrackedLink
from touchline.outbound.track.links import TrackingUrls, rewrite


def tracked_html(session: Session, row: OutboundEmail, urls: TrackingUrls) -> str | None:
    """The HTML part of `row` as it is sent: its links rewritten and the pixel and honeypot added as
    its tracking switches ask, the tokens added to the session (stored with the message's bytes)."""
    if row.html_body is None or not (row.track_opens or row.track_clicks):
        return row.html_body
    tracked = rewrite(
        row.html_body,
        opens=row.track_opens,
        clicks=row.track_clicks,
        urls=urls,
        utm={key: str(value) for key, value in (row.utm or {}).items()},
    )
    session.add_all(
        TrackedLink(
            workspace_id=row.workspace_id,
            outbound_email_id=row.id,
            token=link.token,
            kind=link.kind,
            url=link.url,
            position=link.position,
        )
        for link in tracked.links
    )
    return tracked.html


def links_of(session: Session, row: OutboundEmail) -> list[TrackedLink]:
    """The tokens issued for one email: its links in order, then its honeypot and pixel."""
    return list(
        session.scalars(
            select(TrackedLink)
            .where(TrackedLink.outbound_email_id == row.id)
            .order_by(TrackedLink.kind == "open", TrackedLink.kind == "honeypot", TrackedLink.position)
        )
    )
