"""A long day of one Gmail or Microsoft 365 mailbox, simulated against the fakes on a test clock.

The mailbox holds ``messages`` customer messages in the look-back window (and some older ones)
across Inbox, Sent and two custom folders. touchline syncs it every simulated minute while the day
goes on: new mail arrives, the provider forgets the sync cursor, the quota (Gmail) or the
concurrency limit (Graph) answers 429, one custom folder is renamed and the other deleted, and the
token endpoint is briefly unavailable. At the end the stored set must equal the messages in the
window, once each, with no folder stuck. ``tests/sync/test_oauth_mailboxes.py`` runs a small day;
``bench/providers/day.py`` runs the full 20,000-message one and reports quota units per message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from tests.sync.conftest import CUSTOMER, message
from tests.sync.oauth_world import JANE, SAM, OAuthWorld
from touchline.db import session_scope
from touchline.mailboxes.oauth_connect import GOOGLE, OAuthAccountKind
from touchline.mailboxes.providers.base import TransientError
from touchline.models import MailboxFolder

WINDOW_DAYS = 90
# Gmail's default per-user quota is 15,000 units a minute; a new Cloud project may be given less,
# which the client's budget does not know: its 429s must be waited out.
GMAIL_QUOTA_UNITS_PER_MINUTE = 6_000


@dataclass(frozen=True)
class DayResult:
    in_window: int
    stored: int
    distinct_stored: int
    missing: int
    unexpected: int
    stuck_folders: tuple[str, ...]
    syncs: int
    throttled_requests: int
    quota_units: int  # Gmail's quota units, or Graph's requests (Graph counts no units)
    seconds: float

    @property
    def units_per_stored_message(self) -> float:
        return self.quota_units / max(self.stored, 1)


class _Mailbox:
    """Delivers into one provider's fake, naming folders the same way for both."""

    def __init__(self, world: OAuthWorld, kind: OAuthAccountKind) -> None:
        self.world, self.kind = world, kind
        self.expected: set[str] = set()
        self.numbers = iter(range(10**9))
        if kind is GOOGLE:
            self.customers = world.gmail.add_label("Customers")
            self.renewals = world.gmail.add_label("Renewals")
        else:
            self.customers = world.graph.add_folder("Customers")
            self.renewals = world.graph.add_folder("Renewals")

    def deliver(self, folder: str, received_at: dt.datetime, *, in_window: bool = True) -> None:
        number = next(self.numbers)
        sent = folder == "sent"
        sender, to = (SAM, f"jane.doe@{CUSTOMER}") if sent else (JANE, SAM)
        if self.kind is GOOGLE:
            message_id = f"day-{number}@{CUSTOMER}"
            label = {
                "inbox": "INBOX",
                "sent": "SENT",
                "customers": self.customers,
                "renewals": self.renewals,
            }[folder]
            raw = message(
                f"Day {number}", sender=sender, to=to, sent_at=received_at, message_id=f"<{message_id}>"
            )
            self.world.gmail.deliver(raw, received_at=received_at, labels=(label,))
        else:
            target = {
                "inbox": "inbox",
                "sent": "sentitems",
                "customers": self.customers,
                "renewals": self.renewals,
            }
            graph = self.world.graph
            provider_id = graph.deliver(
                folder=target[folder],
                subject=f"Day {number}",
                received_at=received_at,
                sender=("Jane Doe", f"jane.doe@{CUSTOMER}"),
            )
            message_id = graph.state.messages[provider_id].internet_message_id.strip("<>")
        if in_window:
            self.expected.add(message_id)

    def forget_cursors(self) -> None:
        if self.kind is GOOGLE:
            self.world.gmail.forget_history()
        else:
            self.world.graph.drop_sync_state()

    def rename_customers(self) -> None:
        if self.kind is GOOGLE:
            self.world.gmail.rename_label(self.customers, "Key customers")
        else:
            self.world.graph.rename_folder(self.customers, "Key customers")

    def delete_renewals(self) -> None:
        if self.kind is GOOGLE:
            self.world.gmail.delete_label(self.renewals)
        else:
            self.world.graph.delete_folder(self.renewals)

    def throttled_and_units(self) -> tuple[int, int]:
        if self.kind is GOOGLE:
            return self.world.gmail.state.throttled_requests, self.world.gmail.state.units_spent
        return self.world.graph.state.throttled_requests, len(self.world.graph.state.requests)


def run_day(
    world: OAuthWorld,
    kind: OAuthAccountKind,
    messages: int,
    *,
    gmail_quota_units_per_minute: int = GMAIL_QUOTA_UNITS_PER_MINUTE,
) -> DayResult:
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    box = _Mailbox(world, kind)
    folders = ("inbox", "sent", "customers", "renewals")
    for number in range(messages):
        age = dt.timedelta(days=WINDOW_DAYS - 1) * (number / max(messages, 1))
        box.deliver(folders[number % len(folders)], now - age - dt.timedelta(minutes=5))
    for number in range(20):  # outside the window: never stored
        box.deliver(
            folders[number % len(folders)],
            now - dt.timedelta(days=WINDOW_DAYS + 10 + number),
            in_window=False,
        )
    if kind is GOOGLE:
        world.gmail.state.quota_units_per_minute = gmail_quota_units_per_minute
    user_id = world.add_user(f"day-{uuid.uuid4().hex[:8]}")
    mailbox_id = world.connect(user_id, kind)
    with session_scope(world.sessions) as session:
        for folder in session.scalars(select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id)):
            if folder.provider_folder_id in (box.customers, box.renewals):
                folder.selected = True

    syncs = 0

    def sync() -> None:
        nonlocal syncs
        syncs += 1
        world.clock.advance(60)
        # A TransientError is recorded with its backoff; the next minute's sync goes on from the cursors.
        with contextlib.suppress(TransientError):
            world.sync(mailbox_id)

    sync()  # the first sync of the whole window, under quota
    for minute in range(3):
        box.deliver(folders[minute % 3], now + dt.timedelta(minutes=minute))
        if kind is not GOOGLE:
            world.graph.state.failures.add(
                429, {"error": {"code": "ApplicationThrottled"}}, path_contains="/delta", retry_after="2"
            )
        sync()
    box.forget_cursors()
    box.deliver("inbox", now + dt.timedelta(minutes=10))
    sync()
    box.rename_customers()
    box.delete_renewals()
    box.deliver("customers", now + dt.timedelta(minutes=20))
    sync()
    world.oauth(kind).expire_access_tokens()
    world.oauth(kind).refresh_errors.append("temporarily_unavailable")
    box.deliver("inbox", now + dt.timedelta(minutes=30))
    sync()  # the token endpoint is unavailable: nothing happens, the backoff is recorded
    sync()
    with session_scope(world.sessions) as session:
        stuck = tuple(
            sorted(
                folder.name
                for folder in session.scalars(
                    select(MailboxFolder).where(MailboxFolder.mailbox_id == mailbox_id)
                )
                if folder.selected and (folder.last_error is not None or not _at_rest(folder.cursor))
            )
        )
    stored_ids = [str(record["message_id"]) for record in world.emails()]
    throttled, units = box.throttled_and_units()
    return DayResult(
        in_window=len(box.expected),
        stored=len(stored_ids),
        distinct_stored=len(set(stored_ids)),
        missing=len(box.expected - set(stored_ids)),
        unexpected=len(set(stored_ids) - box.expected),
        stuck_folders=stuck,
        syncs=syncs,
        throttled_requests=throttled,
        quota_units=units,
        seconds=time.perf_counter() - started,
    )


def _at_rest(cursor: dict[str, object] | None) -> bool:
    """Whether a folder's cursor ends a finished pass (not the middle of a listing)."""
    if not cursor:
        return False
    if cursor.get("kind") == "gmail":
        return cursor.get("first_sync_page_token") is None
    return cursor.get("delta_link") is not None
