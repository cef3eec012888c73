"""A sync connects again at every run, and checks again where the mailbox's host leads."""

from __future__ import annotations

import pytest

from tests.sync.conftest import SyncWorld
from touchline.db import session_scope
from touchline.mailboxes import service as mailboxes

pytestmark = pytest.mark.dovecot


def test_a_sync_refuses_a_host_that_is_no_longer_allowed(world: SyncWorld) -> None:
    user_id, imap = world.add_user("sam")
    mailbox_id = world.connect(user_id, imap)
    assert world.sync(mailbox_id).status == mailboxes.STATUS_CONNECTED

    world.settings.allow_private_mail_hosts = False  # the operator turned private mail hosts off
    report = world.sync(mailbox_id)
    refusal = (
        "127.0.0.1 is a loopback address; "
        "an operator can allow private mail hosts with TOUCHLINE_ALLOW_PRIVATE_MAIL_HOSTS"
    )
    assert (report.status, report.error) == (mailboxes.STATUS_ERROR, refusal)
    with session_scope(world.sessions) as session:
        mailbox = mailboxes.get_mailbox(session, world.operator, mailbox_id)
        assert (mailbox.status, mailbox.last_error) == (mailboxes.STATUS_ERROR, refusal)
