"""Email Engagement: what came of each sent email (opens, clicks, replies, bounces), and its rates."""

from typing import Final

REFRESH_JOB: Final = "engagement.refresh"
"""The job that brings the engagement records of the emails it names up to date with their events;
kwargs: outbound_ids (list of str). Whatever stores engagement events sends it after its commit."""
