"""Notifications to senders about their emails' engagement: opens, clicks, replies and bounces, in the
browser, by email, by Slack-compatible webhook and by signed generic webhook."""

from typing import Final

ENGAGEMENT_JOB: Final = "notify.engagement"
"""The job that tells a sender what came of their emails; sent after commit by the engagement refresh.
kwargs: workspace_id (str), user_id (str: the sender to tell), notices (list of dict), each
{"kind": "open" | "click" | "reply" | "bounce", "outbound_id": str, "subject": str, "recipient": str,
"at": ISO 8601, "detail": str} (click: the URL; bounce: class and status; reply: its subject).
Only what is worth telling is sent: the first human open, human clicks, replies and bounces."""

KINDS: Final = ("open", "click", "reply", "bounce")
CHANNELS: Final = ("browser", "email", "slack", "webhook")
TEST_KIND: Final = "test"
"""The kind of the notification the settings page's "Send a test notification" makes."""
