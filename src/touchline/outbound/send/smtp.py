"""SMTP submission: an IMAP mailbox's own server, or the workspace's transactional relay.

The envelope is given command by command (MAIL, RCPT per recipient, DATA), so that each reply maps
to what the outbox must do: a 4xx reply is temporary, a 5xx permanent, a recipient refused while
others are taken is recorded with the server's reason, and a connection lost after the message was
handed over (DATA sent, no final reply) leaves the outcome unknown, so it is looked up before any
retry. After a mailbox's server takes a message, a copy goes to the mailbox's Sent folder (unless the
server put one there itself), which is where `find_sent` later looks.

The server takes the message when it reads the final `.` line of DATA, and not before: a connection
closed during the data discards it. So the message's lines are sent first, then the `handing_over`
callback commits that the message is being handed over, and only then the final dot. A process
killed before that commit has sent nothing; one killed after it may have, and since the copy in Sent
is appended only after the server's answer, Sent not showing it then proves nothing
(`recovery.verdict`).
"""

from __future__ import annotations

import logging
import re
import smtplib
from typing import Final

from touchline.mailboxes.providers.base import ProviderError, SpecialUse, TransientError
from touchline.mailboxes.providers.imap import ImapProvider
from touchline.mailboxes.providers.smtp import SmtpAccount, close_quietly, open_and_login
from touchline.outbound.send.contract import (
    Delivered,
    DeliveryError,
    HandingOver,
    Outgoing,
    nothing_to_record,
)

log = logging.getLogger(__name__)

_QUEUE_ID: Final = re.compile(r"queued as ([A-Za-z0-9._@<>-]{1,200})", re.IGNORECASE)
_LEADING_DOT: Final = re.compile(rb"(?m)^\.")


def _one_line(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return f"{code} {' '.join(text.split())}"[:1000]


class SmtpSender:
    """One SMTP connection, opened on first use and reused for the messages that follow.

    `sent_folder` is the IMAP mailbox whose Sent folder keeps copies; None for the relay, which has
    no Sent folder, so `find_sent` cannot answer."""

    def __init__(self, account: SmtpAccount, sent_folder: ImapProvider | None = None) -> None:
        self._account = account
        self._imap = sent_folder
        self._client: smtplib.SMTP | None = None
        self._sent_folder_id: str | None = None

    # --- MessageSender -----------------------------------------------------------------------------

    def deliver(self, outgoing: Outgoing, handing_over: HandingOver = nothing_to_record) -> Delivered:
        delivered = self._submit(outgoing, handing_over)
        self._keep_sent_copy(outgoing)
        return delivered

    def find_sent(self, message_id: str) -> bool | None:
        if self._imap is None:
            return None
        try:
            folder = self._sent_folder()
            if folder is None:
                return None
            return self._imap.holds_message_id(folder, message_id)
        except ProviderError as error:
            log.warning("cannot look for %s in the Sent folder: %s", message_id, error)
            return None

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            close_quietly(client)
        if self._imap is not None:
            self._imap.close()

    # --- SMTP --------------------------------------------------------------------------------------

    def _connection(self) -> smtplib.SMTP:
        if self._client is None:
            try:
                self._client = open_and_login(self._account)
            except ProviderError as error:
                raise DeliveryError(str(error), temporary=_is_temporary(error)) from error
        return self._client

    def _begin(self, envelope_from: str) -> tuple[smtplib.SMTP, int, bytes]:
        """MAIL FROM on the open connection; a server that closed an idle connection meanwhile gets
        a new one (nothing was handed over yet, so trying again is safe)."""
        reused = self._client is not None
        client = self._connection()
        try:
            code, reply = client.mail(envelope_from)
        except (OSError, smtplib.SMTPServerDisconnected):
            self._drop()
            if not reused:
                raise
            client = self._connection()
            code, reply = client.mail(envelope_from)
        return client, code, reply

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _submit(self, outgoing: Outgoing, handing_over: HandingOver) -> Delivered:
        host = self._account.host
        try:
            client, code, reply = self._begin(outgoing.envelope_from)
            if code != 250:
                self._reset(client)
                raise DeliveryError(
                    f"{host} refused the sender {outgoing.envelope_from}: {_one_line(code, reply)}",
                    temporary=400 <= code < 500,
                )
            refused: list[tuple[str, str, bool]] = []
            for recipient in outgoing.recipients:
                code, reply = client.rcpt(recipient)
                if code not in (250, 251):
                    refused.append((recipient, _one_line(code, reply), 400 <= code < 500))
            if len(refused) == len(outgoing.recipients):
                self._reset(client)
                reasons = "; ".join(f"{address}: {reason}" for address, reason, _ in refused)
                raise DeliveryError(
                    f"{host} refused every recipient: {reasons}",
                    temporary=any(temporary for _, _, temporary in refused),
                )
            code, reply = client.docmd("DATA")
            if code != 354:
                self._reset(client)
                raise DeliveryError(
                    f"{host} refused the message: {_one_line(code, reply)}", temporary=400 <= code < 500
                )
            client.send(_dot_stuffed(outgoing.raw))
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self._drop()
            raise DeliveryError(f"the connection to {host} broke: {error}", temporary=True) from error
        try:
            handing_over()
        except BaseException:
            self._drop()  # without the final dot the server discards what it read
            raise
        # From here on the server may have the message: a lost answer leaves its fate unknown.
        try:
            client.send(END_OF_DATA)
            code, reply = client.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self._drop()
            raise DeliveryError(
                f"the connection to {host} broke after the message was handed over: {error}",
                temporary=True,
                outcome_unknown=True,
            ) from error
        if code != 250:
            raise DeliveryError(
                f"{host} refused the message: {_one_line(code, reply)}", temporary=400 <= code < 500
            )
        answer = reply.decode("utf-8", "replace")
        found = _QUEUE_ID.search(answer)
        return Delivered(
            provider_message_id=found.group(1) if found else "",
            refused_recipients=tuple((address, reason) for address, reason, _ in refused),
        )

    def _reset(self, client: smtplib.SMTP) -> None:
        try:
            client.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    # --- the Sent folder ---------------------------------------------------------------------------

    def _sent_folder(self) -> str | None:
        if self._sent_folder_id is None and self._imap is not None:
            self._sent_folder_id = next(
                (f.id for f in self._imap.list_folders() if f.special_use is SpecialUse.SENT), None
            )
        return self._sent_folder_id

    def _keep_sent_copy(self, outgoing: Outgoing) -> None:
        """A failure here loses no mail (the server took it): the copy is only what `find_sent` and
        the user's mail client see, so it is logged, not raised."""
        if self._imap is None:
            return
        try:
            folder = self._sent_folder()
            if folder is None or self._imap.holds_message_id(folder, outgoing.message_id):
                return
            self._imap.append_message(folder, outgoing.raw)
        except ProviderError as error:
            log.warning("sent %s but could not keep a copy in Sent: %s", outgoing.message_id, error)


END_OF_DATA: Final = b".\r\n"
"""The line that ends DATA (after the message's last CRLF): the server takes the message on it."""


def _dot_stuffed(raw: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with a dot gets another; the lines end with CRLF, and
    END_OF_DATA follows them."""
    body = _LEADING_DOT.sub(b"..", raw)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body


def _is_temporary(error: ProviderError) -> bool:
    return isinstance(error, TransientError)


def relay_sender(account: SmtpAccount) -> SmtpSender:
    return SmtpSender(account, sent_folder=None)
