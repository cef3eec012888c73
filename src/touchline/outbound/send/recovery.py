"""What an interrupted delivery leaves to do, decided in one place.

An attempt can stop without learning its outcome: its process died (the email is found `sending`
by a later attempt), or the connection broke after the message was handed over. Three facts decide:

- whether the message was handed over: `handed_over_at` is committed just before the provider may
  take it (before the final dot of SMTP DATA, before an API's send request). Unset, it never left.
- whether the mailbox's Sent folder holds its Message-ID: True, False, or None (cannot look: the
  relay has no Sent folder, the lookup failed).
- whether "not in Sent" is conclusive for the way it left. Gmail's `messages.send` and Graph's
  `sendMail` file the copy in Sent as part of taking the message, so a copy that is not there means
  the message was not taken. SMTP submission is followed by touchline's own IMAP APPEND of the copy:
  a process killed between the server's acceptance and the APPEND leaves a message that went out
  and that Sent does not show.

| handed over | in Sent | absence conclusive | verdict |
|-------------|---------|--------------------|---------|
| any         | yes     | any                | sent    |
| no          | no/?    | any                | send    |
| yes         | no      | yes (Gmail, Graph) | send    |
| yes         | no      | no (SMTP)          | unknown |
| yes         | ?       | any                | unknown |

`unknown` is never sent again by touchline: the sender is shown the email and what to check.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from touchline.mailboxes.connect import GMAIL, GRAPH


class Verdict(StrEnum):
    SENT = "sent"
    """A copy is in Sent: it left; record it sent without sending again."""
    SEND = "send"
    """It certainly did not leave: sending (again) sends it once."""
    UNKNOWN = "unknown"
    """It may have left: never sent again without the sender's decision."""


SENT_COPY_FILED_BY_PROVIDER: Final = frozenset({GMAIL, GRAPH})
"""Mailbox kinds whose provider files the Sent copy as part of taking the message."""


def absence_is_conclusive(provider: str | None) -> bool:
    """Whether a copy missing from Sent proves the message was not taken; `provider` is the mailbox
    kind it leaves through, None for the relay."""
    return provider in SENT_COPY_FILED_BY_PROVIDER


def verdict(*, handed_over: bool, found: bool | None, provider: str | None) -> Verdict:
    if found is True:
        return Verdict.SENT
    if not handed_over:
        return Verdict.SEND
    if found is False and absence_is_conclusive(provider):
        return Verdict.SEND
    return Verdict.UNKNOWN


def unknown_reason(found: bool | None, provider: str | None) -> str:
    """What the sender is told about an `unknown` email: why, and what to check before sending again."""
    if provider is None:
        return (
            "it may have been sent: delivery stopped after the message was handed to the relay and "
            "before its answer was recorded, and the relay keeps no Sent folder to check; ask the "
            "recipients or the relay's operator before sending it again"
        )
    if found is None:
        return (
            "it may have been sent: delivery stopped after the message was handed over and before its "
            "outcome was recorded, and this mailbox's Sent folder cannot be checked; look there before "
            "sending it again"
        )
    return (
        "it may have been sent: delivery stopped after the message was handed to the mail server and "
        "before its copy was filed in Sent, so Sent not showing it proves nothing; ask the recipients "
        "or look in the mail server's log for its Message-ID before sending it again"
    )
