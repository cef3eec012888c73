"""The bulk tests' crowd of endusers and sending world, for bulk sends with A/B test variants."""

from tests.outbound.bulk.conftest import (
    _gmail_server,
    _graph_server,
    crowd,
    dovecot,
    dovecot_oauth2_introspection_url,
    imap_user,
    open_relay,
    queue,
    relay_settings,
    smtp_sink,
    world,
)
from tests.outbound.sequences.conftest import playbook

__all__ = [
    "_gmail_server",
    "_graph_server",
    "crowd",
    "dovecot",
    "dovecot_oauth2_introspection_url",
    "imap_user",
    "open_relay",
    "playbook",
    "queue",
    "relay_settings",
    "smtp_sink",
    "world",
]
