"""Email Engagement: what came of each sent email (opens, clicks, replies, bounces), and its rates."""

from typing import Final

REFRESH_JOB: Final = "engagement.refresh"
"""The job that brings the engagement records of the emails it names up to date with their events;
kwargs: outbound_ids (list of str). Whatever stores engagement events sends it after its commit."""

NOTIFY_JOB: Final = "notify.engagement"
"""The job that tells a sender what came of their emails; sent after the commit of a refresh that found
something new (a first human open, a human click, a reply, a bounce; never machine-only events).
kwargs: workspace_id (str), user_id (str, the sender), notices (list of dict: kind open|click|reply|
bounce, outbound_id, subject, recipient, at (ISO 8601), detail: a click's URL, a reply's subject, a
bounce's class and status)."""
