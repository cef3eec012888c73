"""Is a message a delivery report (a bounce or a delay), an automatic reply, or neither?

Pure: a parsed message in (stdlib `email`, `policy.default`), a verdict out. Sync, the log address and
`touchline bounces classify` all ask `classify`, so they always agree.

- RFC 3464 first: a multipart/report of report-type delivery-status gives each recipient's Action,
  Status and Diagnostic-Code; only `failed` and `delayed` recipients count.
- Otherwise, and only from a mailer daemon or a postmaster (or with Exim's X-Failed-Recipients),
  `flufl.bounce` reads the legacy formats: it names permanent and temporary failures without a
  status, which are classed from the text around the address where it says why.
- A report is never an automatic reply. Automatic replies are told by RFC 3834 Auto-Submitted and the
  vendors' headers (`parse.headers.auto_reply_marker`, the one reading of them), and by out-of-office
  subjects in common languages.

Human mail that merely quotes addresses or says "delivery failed" has neither a report structure nor
a daemon sender, so it is never a bounce. Work is bounded: the raw message is cut at
`MAX_REPORT_BYTES` before parsing, texts are cut before any pattern reads them, and every pattern is
an alternation of literal phrases or a short fixed shape (no nested repeats), so each runs in time
linear in its bounded text; the phrase lists are searched through `kit.linescan.LineStartPattern`,
whose gate tries them only where one may start.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Literal

from touchline.inbound.parse.headers import auto_reply_marker, message_ids
from touchline.inbound.parse.message import header_block
from touchline.inbound.reports.model import DeliveryReport, RecipientReport
from touchline.kit.linescan import LineStartPattern

MAX_REPORT_BYTES = 256 * 1024
"""A report is read up to this many bytes: its status part comes first, the returned message (which
may carry big attachments) last; the returned headers are in the first kilobytes of that."""
_MAX_TEXT = 20_000
"""Characters of a legacy bounce's text that are searched for why an address failed."""
_MAX_DIAGNOSTIC = 1000
_MAX_SUBJECT = 300
_MAX_RECIPIENTS = 100
_MAX_ATTACHED = 20

FailureKind = Literal["hard", "soft", "blocked", "delayed"]
_SEVERITY: dict[FailureKind, int] = {"hard": 4, "blocked": 3, "soft": 2, "delayed": 1}


@dataclass(frozen=True, slots=True)
class AutomaticReply:
    """An automatic reply (out-of-office, autoresponder) and why it counts as one."""

    reason: str


Verdict = DeliveryReport | AutomaticReply | None

# Who sends reports: the local parts of mailer daemons and postmasters, and their usual names.
_DAEMON_LOCAL_PARTS = frozenset(
    {
        "mailer-daemon",
        "mailer_daemon",
        "mailerdaemon",
        "mail-daemon",
        "maildaemon",
        "mdaemon",
        "postmaster",
        "mail.delivery.system",
        "mail-delivery-system",
    }
)
_DAEMON_NAME = LineStartPattern(
    re.compile(
        r"mailer[ _-]?daemon|postmaster|mail delivery (?:sub)?system|mail delivery service"
        r"|delivery subsystem|internet mail delivery",
        re.IGNORECASE,
    )
)
_BOUNCE_SUBJECT = LineStartPattern(
    re.compile(
        r"undeliver|undelivered mail|delivery status notification|delivery (?:status )?fail"
        r"|mail delivery failed|failure notice|returned mail|returned to sender|non-?delivery"
        r"|nondeliverable|could not be delivered|delivery has failed|warning: could not send"
        r"|delayed mail|mail system error|unzustellbar|non remis|no se puede entregar",
        re.IGNORECASE,
    )
)
# Subjects of out-of-office and other automatic replies. Phrases no person titles a mail with count
# anywhere in the subject; words a person might use ("on vacation", "absence") only where an
# autoresponder puts them, at the start.
_AUTOMATIC_SUBJECT = LineStartPattern(
    re.compile(
        r"out of (?:the )?office|automatic reply|auto[ -]?reply|auto[ -]?response|autoresponder"
        r"|abwesenheitsnotiz|automatische antwort|r\u00e9ponse automatique|reponse automatique"
        r"|respuesta autom\u00e1tica|risposta automatica|resposta autom\u00e1tica|automatisch antwoord"
        r"|automatyczna odpowied\u017a|\u81ea\u52d5\u8fd4\u4fe1|\u81ea\u52a8\u56de\u590d",
        re.IGNORECASE,
    )
)
_AUTOMATIC_SUBJECT_START = re.compile(
    r"[\[(]?(?:auto|autoreply|absence|abwesend|ausente|vacation|urlaub|afwezig|fr\u00e5nvaro|autosvar)\s?:"
    r"|[\[(]?(?:away from (?:the )?office|on vacation|vacation (?:reply|message|notice)|nicht im b\u00fcro"
    r"|absent du bureau|absence du bureau|fuera de la oficina|fuori sede|fuori ufficio"
    r"|fora do escrit\u00f3rio|niet aanwezig|frav\u00e6r|poza biurem|\u4e0d\u5728)",
    re.IGNORECASE,
)
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
_SMTP_REPLY = re.compile(r"(?<!\d)([45])\d\d(?![\d.])")
# Tried only at line starts where the gate finds "message-id:" (kit/linescan.py).
_RETURNED_ID_LINE = LineStartPattern(
    re.compile(r"^[ \t>]*message-id:[ \t]*(<[^<>\s]{1,500}>)", re.IGNORECASE | re.MULTILINE)
)

# Why a recipient failed, in words: about the sender (blocked), about the address (hard), passing
# (soft). Looked for in this order, so a spam block worded with "mailbox unavailable" is blocked.
_BLOCKED_WORDS = LineStartPattern(
    re.compile(
        r"spam|blacklist|black list|blocklist|block list|blocked|reputation|dmarc|\bspf\b|\bdkim\b"
        r"|policy|rejected for policy|not authori[sz]ed|unauthenticated|authentication|rbl|dnsbl|spamhaus"
        r"|barracuda|junk mail|content rejected|message rejected|denied|listed at|listed in|virus",
        re.IGNORECASE,
    )
)
_HARD_WORDS = LineStartPattern(
    re.compile(
        r"user unknown|unknown user|no such user|mailbox unavailable|mailbox not found|no mailbox"
        r"|mailbox does not exist|does not exist|doesn't exist|unknown recipient|recipient unknown"
        r"|no such recipient|invalid recipient|invalid address|invalid mailbox|address rejected"
        r"|recipient rejected|user not found|not found|no such address|unknown address|unknown local"
        r"|host unknown|unknown host|domain not found|no such domain|unrouteable|unroutable"
        r"|account (?:has been )?disabled|account (?:is )?inactive|deactivated"
        r"|no longer (?:valid|active|exists?)"
        r"|has been moved|is not a valid|not our customer|bad destination|address unknown"
        r"|not listed in|relaying denied|unknown in",
        re.IGNORECASE,
    )
)
_SOFT_WORDS = LineStartPattern(
    re.compile(
        r"mailbox full|mailbox is full|quota|exceeds? (?:the |his |her |their )?(?:storage|size)"
        r"|insufficient (?:storage|system storage)"
        r"|too large|size limit|message size|temporar|try again|try later|timed? ?out|deferred"
        r"|retry|will be retried|connection refused|out of space|disk full",
        re.IGNORECASE,
    )
)
_WORDS: tuple[tuple[LineStartPattern, FailureKind], ...] = (
    (_BLOCKED_WORDS, "blocked"),
    (_HARD_WORDS, "hard"),
    (_SOFT_WORDS, "soft"),
)


def read_message(raw: bytes) -> EmailMessage:
    """Parse a raw message the way the classifier reads it: cut at `MAX_REPORT_BYTES`."""
    message = BytesParser(policy=policy.default).parsebytes(bytes(raw[:MAX_REPORT_BYTES]))
    assert isinstance(message, EmailMessage)  # what policy.default makes
    return message


def classify_bytes(raw: bytes) -> Verdict:
    return classify(read_message(raw))


def classify(message: Message) -> Verdict:
    """A delivery report, an automatic reply, or None (mail written by a person, or a success report)."""
    reporter = _sender(message)
    report = _rfc3464(message, reporter)
    structured = report is not None or bool(_header(message, "x-failed-recipients"))
    if (report is None or not report.recipients) and (structured or _is_daemon(message)):
        # A report whose status part names no failed recipient in RFC 3464's words may still say so
        # in the words of its mailer.
        report = _legacy(message, reporter) or report
    if report is not None:
        return report if report.recipients else None
    reason = automatic_reply_reason(message)
    return AutomaticReply(reason) if reason is not None else None


def classify_logged(message: Message) -> Verdict:
    """A message a user logged: its own verdict, else that on a delivery report it forwards as an
    attachment (message/rfc822), which is how a user hands a bounce they received to the log
    address. A report quoted in the text of a forward is a person's mail, as any quote is."""
    verdict = classify(message)
    if verdict is not None:
        return verdict
    for part in _children(message)[:_MAX_ATTACHED]:
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            attached = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(attached, Message):
                found = classify(attached)
                if isinstance(found, DeliveryReport):
                    return found
    return None


def classify_logged_bytes(raw: bytes) -> Verdict:
    return classify_logged(read_message(raw))


def logged_needs_classifying(raw: bytes, sender: str | None, subject: str, auto_reply: str | None) -> bool:
    """`needs_classifying`, and a forwarded attachment (looked for in the bytes `classify` reads)."""
    head = header_block(raw)
    return needs_classifying(head, sender, subject, auto_reply) or (
        b"message/rfc822" in raw[:MAX_REPORT_BYTES].lower()
    )


def automatic_reply_reason(message: Message) -> str | None:
    """Why a message is an automatic reply, or None. Says nothing about bounces: ask `classify`."""
    fields = {name.lower(): _header(message, name) for name in message}
    marked = auto_reply_marker(fields)
    if marked is not None:
        return marked
    subject = _header(message, "subject")[:_MAX_SUBJECT]
    automatic = _automatic_subject(subject)
    if automatic is None:
        return None
    precedence = fields.get("precedence", "").strip().lower()
    if precedence in {"bulk", "junk"}:
        return f"Precedence: {precedence} with an automatic-reply subject ({automatic})"
    return f"subject: {automatic}"


def needs_classifying(
    raw_header_block: bytes, sender: str | None, subject: str, auto_reply: str | None
) -> bool:
    """Whether the header block hints at a report or an automatic reply: only those are parsed by
    `classify`, so ordinary mail costs a few byte searches."""
    return (
        auto_reply is not None
        or likely_report(raw_header_block, sender, subject)
        or _automatic_subject(subject[:_MAX_SUBJECT]) is not None
    )


def likely_report(raw_header_block: bytes, sender: str | None, subject: str) -> bool:
    """Whether a header block looks like a delivery report: worth fetching whole though it matches no
    customer. Cheap: the sender, the subject, and two byte searches of the block."""
    if sender is not None and sender.rpartition("@")[0].lower() in _DAEMON_LOCAL_PARTS:
        return True
    if any(hint in raw_header_block for hint in _STRUCTURE_HINTS):
        lowered = b"\n" + header_block(raw_header_block).lower()
        if b"multipart/report" in lowered or b"\nx-failed-recipients:" in lowered:
            return True
    subject = subject[:_MAX_SUBJECT]
    folded = subject.lower()
    return (
        any(word in folded for word in _BOUNCE_SUBJECT_WORDS) and _BOUNCE_SUBJECT.search(subject) is not None
    )


# Every phrase of _BOUNCE_SUBJECT holds one of these: most subjects are ruled out by a few `in` tests.
_BOUNCE_SUBJECT_WORDS = (
    "deliver",
    "fail",
    "returned",
    "error",
    "warning",
    "delayed",
    "unzustellbar",
    "non remis",
    "entregar",
)
# Found in any spelling of "multipart/report" or "X-Failed-Recipients" that mailers use: the block is
# lowered and read closely only when one is there.
_STRUCTURE_HINTS = (b"eport", b"EPORT", b"ailed-", b"AILED-")


def _automatic_subject(subject: str) -> str | None:
    found = _AUTOMATIC_SUBJECT_START.match(subject.lstrip()) or _AUTOMATIC_SUBJECT.search(subject)
    return found.group(0).strip() if found else None


# --- RFC 3464 -----------------------------------------------------------------------------------------


def _rfc3464(message: Message, reporter: str) -> DeliveryReport | None:
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "", header="content-type")).lower() != "delivery-status":
        return None
    status_part = returned = None
    for part in _children(message):
        content_type = part.get_content_type()
        if (
            content_type in {"message/delivery-status", "message/global-delivery-status"}
            and status_part is None
        ):
            status_part = part
        elif content_type in {
            "text/rfc822-headers",
            "message/rfc822",
            "message/global",
            "message/global-headers",
        }:
            returned = returned or part
    if status_part is None:
        return None
    recipients: dict[str, RecipientReport] = {}
    for block in _status_blocks(status_part)[1:][:_MAX_RECIPIENTS]:
        one = _recipient(block)
        if one is not None:
            recipients.setdefault(one.address.lower(), one)  # some reports repeat a recipient
    returned_ids = _returned_ids(returned) if returned is not None else ()
    if not returned_ids:
        returned_ids = _ids_in_text(_body_text(message))
    return _report(message, reporter, list(recipients.values()), returned_ids, ())


def _children(message: Message) -> list[Message]:
    payload = message.get_payload()
    return [part for part in payload if isinstance(part, Message)] if isinstance(payload, list) else []


def _status_blocks(part: Message) -> list[Message]:
    """The per-message block, then one per recipient."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    text = _decoded(part)
    parser = HeaderParser(policy=policy.default)
    return [
        parser.parsestr(chunk.strip() + "\n")
        for chunk in re.split(r"\r?\n[ \t]*\r?\n", text)
        if chunk.strip()
    ]


def _recipient(block: Message) -> RecipientReport | None:
    action = _header(block, "action").split("(", 1)[0].strip().lower()
    if not action and _status_code(_header(block, "status"))[:1] in {"4", "5"}:
        action = "failed"  # Action is required, yet some mailers leave it out of a failure
    if action not in {"failed", "delayed"}:
        return None
    # The address as sent (Original-Recipient) is the one touchline knows; Final-Recipient may be
    # what an alias or a forward made of it.
    original = _typed_value(_header(block, "original-recipient"))
    address = original if "@" in original else _typed_value(_header(block, "final-recipient"))
    if not address:
        return None
    status_field = _header(block, "status")
    # Without a Diagnostic-Code, some mailers say why in a comment after the status code.
    diagnostic = (
        _typed_value(_header(block, "diagnostic-code")) or status_field.partition("(")[2].rstrip(") ")
    )[:_MAX_DIAGNOSTIC]
    status = _status_code(status_field) or _status_code(diagnostic)
    kind: FailureKind = (
        "delayed" if action == "delayed" else classify_failure(status, diagnostic, permanent=None)
    )
    return RecipientReport(address=address, kind=kind, action=action, status=status, diagnostic=diagnostic)


def _typed_value(value: str) -> str:
    """`rfc822; user@example.com` -> `user@example.com` (a value without a type is kept whole)."""
    kind, separator, rest = value.partition(";")
    text = rest if separator else kind
    return " ".join(text.split()).strip("<> ")


def _returned_ids(part: Message) -> tuple[str, ...]:
    payload = part.get_payload()
    if isinstance(payload, list):
        for inner in payload:
            if isinstance(inner, Message):
                return _bracketed(message_ids(_header(inner, "message-id")))
        return ()
    text = _decoded(part)
    headers = HeaderParser(policy=policy.default).parsestr(text[:_MAX_TEXT], headersonly=True)
    return _bracketed(message_ids(_header(headers, "message-id"))) or _ids_in_text(text)


def _bracketed(ids: Iterable[str]) -> tuple[str, ...]:
    """Message-IDs as the report carries them: in angle brackets, as they were sent."""
    return tuple(f"<{one}>" for one in ids)


def _ids_in_text(text: str) -> tuple[str, ...]:
    """Message-IDs of a returned message quoted as text (the legacy formats), in order, once each."""
    found = dict.fromkeys(str(one) for one in _RETURNED_ID_LINE.findall(text[:_MAX_TEXT]))
    return tuple(one for one in found if message_ids(one))


# --- legacy formats, through flufl.bounce ------------------------------------------------------------


def _legacy(message: Message, reporter: str) -> DeliveryReport | None:
    from flufl.bounce import all_failures

    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector tripping over an odd message: then it is not a report we can read
        return None
    text = _body_text(message)
    failed = [(address, True) for address in _addresses(permanent)]
    failed += [(address, False) for address in _addresses(temporary) if address not in dict(failed)]
    for address in _failed_header_addresses(message):
        if address.lower() not in {one.lower() for one, _ in failed}:
            failed.append((address, True))
    if not failed:
        return None
    recipients = []
    for address, permanent_failure in failed[:_MAX_RECIPIENTS]:
        diagnostic = _diagnostic_near(text, address)
        status = _status_code(diagnostic)
        kind = classify_failure(status, diagnostic, permanent=permanent_failure)
        recipients.append(
            RecipientReport(address=address, kind=kind, action="failed", status=status, diagnostic=diagnostic)
        )
    returned = next(
        (
            part
            for part in message.walk()
            if part.get_content_type() in {"message/rfc822", "text/rfc822-headers"}
        ),
        None,
    )
    returned_ids = (_returned_ids(returned) if returned is not None else ()) or _ids_in_text(text)
    return _report(message, reporter, recipients, returned_ids, ("legacy format",))


def _addresses(found: Iterable[bytes | str]) -> list[str]:
    out = []
    for one in found:
        text = one.decode("utf-8", "replace") if isinstance(one, bytes) else str(one)
        text = text.strip().strip("<>")
        if "@" in text and text not in out:
            out.append(text)
    return sorted(out)


def _failed_header_addresses(message: Message) -> list[str]:
    value = _header(message, "x-failed-recipients")
    return [address for _name, address in getaddresses([value]) if "@" in address] if value else []


def _diagnostic_near(text: str, address: str) -> str:
    """The lines that mention `address` and the few after it: where legacy bounces say why."""
    lowered = text.lower()
    at = lowered.find(address.lower())
    if at < 0:
        return ""
    start = lowered.rfind("\n", 0, at) + 1
    end = at
    for _ in range(4):
        following = lowered.find("\n", end + 1)
        if following < 0:
            end = len(text)
            break
        end = following
    return " ".join(text[start:end].split())[:_MAX_DIAGNOSTIC]


# --- classes ------------------------------------------------------------------------------------------


def classify_failure(status: str, diagnostic: str, *, permanent: bool | None) -> FailureKind:
    """A failed recipient's class from its enhanced status code, else its diagnostic text, else
    whether it was permanent (`permanent`; None: from the status or the SMTP reply code).

    The specific status codes decide first (docs/bounces.md has the table); a generic `x.0.0` or no
    code leaves it to the words; words that say nothing leave it to the code's class.
    """
    decided = _by_status(status) or _by_words(diagnostic[:_MAX_DIAGNOSTIC])
    if decided is not None:
        return decided
    reply = _SMTP_REPLY.search(diagnostic[:_MAX_DIAGNOSTIC])
    if status:
        temporary = status.startswith("4")
    elif reply is not None:
        temporary = reply.group(1) == "4"
    else:
        temporary = permanent is False
    return "soft" if temporary else "hard"


def _by_words(text: str) -> FailureKind | None:
    for words, kind in _WORDS:
        if words.search(text):
            return kind
    return None


# Enhanced status codes (RFC 3463) with a class of their own; "5.1" stands for every 5.1.x not listed.
_STATUS_CLASSES: dict[str, FailureKind] = {
    "5.1": "hard",  # bad destination mailbox or system: unknown user or host, moved (5.1.6)
    "5.1.7": "blocked",  # the sender's mailbox address: about us
    "5.1.8": "blocked",
    "5.2": "soft",  # mailbox full (5.2.2), message too big for it (5.2.3): passing
    "5.2.1": "hard",  # mailbox disabled
    "5.3.1": "soft",  # mail system full
    "5.3.4": "soft",  # message too big for the system
    "5.4": "soft",  # network and routing trouble
    "5.4.1": "hard",  # no answer from the host (Exchange Online: the recipient does not exist)
    "5.4.4": "hard",  # unable to route: the domain has no mail host
    "5.7": "blocked",  # security or policy: spam, reputation, DMARC/SPF/DKIM, blocklists
}


def _by_status(status: str) -> FailureKind | None:
    if not status or status.startswith("4"):
        return "soft" if status else None
    klass, subject, _detail = status.split(".")
    if klass != "5":
        return None
    return _STATUS_CLASSES.get(status) or _STATUS_CLASSES.get(f"{klass}.{subject}")


def _status_code(text: str) -> str:
    found = _ENHANCED_STATUS.search(text[:_MAX_DIAGNOSTIC])
    return ".".join(found.groups()) if found else ""


def _report(
    message: Message,
    reporter: str,
    recipients: list[RecipientReport],
    returned_ids: tuple[str, ...],
    notes: tuple[str, ...],
) -> DeliveryReport:
    kind: FailureKind = max((one.kind for one in recipients), key=_SEVERITY.__getitem__, default="soft")
    received = None
    try:
        date = _header(message, "date")
        received = parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError, IndexError):
        received = None
    return DeliveryReport(
        kind=kind,
        recipients=tuple(recipients),
        returned_message_ids=returned_ids,
        received_at=received,
        reporter=reporter,
        notes=notes,
    )


# --- reading ------------------------------------------------------------------------------------------


def _header(message: Message, name: str) -> str:
    """A header's value as text, never raising on a malformed one."""
    try:
        value = message.get(name)
    except Exception:  # policy.default parses structured headers on access; some are beyond repair
        raw = (
            [v for k, v in message.raw_items() if k.lower() == name] if hasattr(message, "raw_items") else []
        )
        value = raw[0] if raw else None
    return " ".join(str(value).split()) if value is not None else ""


def _sender(message: Message) -> str:
    pairs = getaddresses([_header(message, "from")])
    return pairs[0][1] if pairs else ""


def _is_daemon(message: Message) -> bool:
    pairs = getaddresses([_header(message, "from")])
    if not pairs:
        return False
    name, address = pairs[0]
    local = address.rpartition("@")[0].lower() if "@" in address else address.lower()
    return local in _DAEMON_LOCAL_PARTS or _DAEMON_NAME.search(name[:200]) is not None


def _decoded(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if isinstance(payload, bytes):
        charset = part.get_content_charset() or "utf-8"
        try:
            return payload.decode(charset, "replace")
        except LookupError:
            return payload.decode("utf-8", "replace")
    raw = part.get_payload()
    return raw if isinstance(raw, str) else ""


def _text_parts(message: Message) -> Iterator[Message]:
    for part in message.walk():
        if part.get_content_maintype() == "text" and part.get_content_subtype() in {"plain", "html"}:
            yield part


def _body_text(message: Message) -> str:
    """The report's own text parts (not the returned message's), cut at `_MAX_TEXT` characters."""
    texts: list[str] = []
    size = 0
    for part in _text_parts(message):
        text = _decoded(part)
        texts.append(text[: _MAX_TEXT - size])
        size += len(texts[-1])
        if size >= _MAX_TEXT:
            break
    return "\n".join(texts)
