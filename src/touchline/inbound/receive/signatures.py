"""What DNS says of a received message: its DKIM signatures, its ARC chain, and SPF for its client.

A valid signature proves only that its signing domain (`d=`) saw the message. It vouches for the
sender when that domain is aligned with the From domain the way DMARC's relaxed mode defines it:
the same registrable domain (`mail.acme.com` signs for `acme.com`). Anything else is recorded but
does not count as a pass. SPF says whether the connecting address may send for the envelope
sender's domain; an ARC chain says what a forwarder found before it changed the message. What
counts as authenticated is decided in `authentication`, from these results.

Each of these looks records up in DNS (through an injectable lookup, with a timeout), so they run
before any database transaction is opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import authres  # type: ignore[import-untyped]  # authres ships no type information
import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
import dns.exception
import dns.resolver
import spf  # type: ignore[import-untyped]  # pyspf ships no type information
from dkim.dnsplug import get_txt  # type: ignore[import-untyped]

from touchline.kit.addresses import InvalidAddressError, domain_of, normalise_address
from touchline.kit.domains import InvalidDomainError, domain_covers, normalise_domain, registrable_domain

TxtLookup = Callable[..., bytes | None]
"""dkimpy's DNS function: `lookup(name: bytes, timeout=seconds) -> TXT record bytes or None`."""

DkimStatus = Literal["none", "pass", "unaligned", "fail", "temperror"]
SignatureOutcome = Literal["pass", "fail", "temperror", "permerror"]

MAX_SIGNATURES = 5
"""Each signature may cost a DNS lookup; a message carrying more is not verified past this many."""

_SIGNATURE_HEADER = re.compile(rb"^dkim-signature\s*:", re.IGNORECASE | re.MULTILINE)

# dkimpy reads a message with regular expressions some of which backtrack over their own input
# (the `b=` tag, blanks at line ends under relaxed canonicalisation) and joins folded header lines
# one by one: its cost grows with the square of a signature field's length, of a header block's
# lines, and of each run of blanks. A message beyond these bounds is not verified (a permerror),
# which keeps any one message's verification well under a second. Mail as sent stays far below.
MAX_SIGNATURE_FIELD = 2048
"""Bytes of a DKIM-Signature field (a 4096-bit key's signature is some 700)."""
MAX_VERIFIED_HEAD = 64 * 1024
"""Bytes of a header block."""
MAX_BLANK_RUN_WORK = 100_000_000
"""The sum of the squares of the lengths of the runs of blanks (spaces, tabs) of 16 or more."""
_SIGNATURE_FIELD = re.compile(
    rb"^dkim-signature[ \t]*:(?:[^\n]*\n[ \t])*[^\n]*", re.IGNORECASE | re.MULTILINE
)
_BLANK_RUN = re.compile(rb"[ \t]{16,}")


@dataclass(frozen=True, slots=True)
class SignatureResult:
    domain: str
    selector: str
    result: SignatureOutcome
    aligned: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DkimResult:
    """`pass` needs a valid signature aligned with the From domain; `unaligned` has valid ones only
    from other domains; `temperror` could not fetch a key; `none` carries no signature."""

    status: DkimStatus
    signatures: tuple[SignatureResult, ...] = field(default=())

    def record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "signatures": [
                {
                    "domain": s.domain,
                    "selector": s.selector,
                    "result": s.result,
                    "aligned": s.aligned,
                    "detail": s.detail,
                }
                for s in self.signatures
            ],
        }


NO_SIGNATURE = DkimResult("none")


def has_signature(head: bytes) -> bool:
    """True when the header block carries a DKIM-Signature field."""
    return _SIGNATURE_HEADER.search(head) is not None


def aligned(from_domain: str | None, signing_domain: str) -> bool:
    if not from_domain:
        return False
    try:
        signer = normalise_domain(signing_domain)
    except InvalidDomainError:
        return False
    if domain_covers(signer, from_domain) or domain_covers(from_domain, signer):
        return True
    return registrable_domain(from_domain) == registrable_domain(signer)


class _Lookup:
    """Wraps the DNS function so that a timeout is told apart from a bad signature (dkimpy folds
    both into False)."""

    def __init__(self, inner: TxtLookup) -> None:
        self.inner = inner
        self.failed: str | None = None

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        try:
            return self.inner(name, timeout=timeout)
        except Exception as error:
            self.failed = f"{type(error).__name__}: {error}"[:300]
            raise dkim.DnsTimeoutError(self.failed) from error


def verify_dkim(
    raw: bytes, head: bytes, from_domain: str | None, *, lookup: TxtLookup | None = None, timeout: float = 5.0
) -> DkimResult:
    """Verify up to `MAX_SIGNATURES` DKIM signatures of `raw`; never raises."""
    if not has_signature(head):
        return NO_SIGNATURE
    beyond = _beyond_bounds(raw, head)
    if beyond is not None:
        return DkimResult("fail", (SignatureResult("", "", "permerror", False, f"not verified: {beyond}"),))
    try:
        verifier = dkim.DKIM(raw, timeout=timeout, minkey=1024)
        count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    except Exception as error:
        return DkimResult(
            "fail", (SignatureResult("", "", "permerror", False, f"unreadable: {error}"[:300]),)
        )
    results: list[SignatureResult] = []
    for index in range(min(count, MAX_SIGNATURES)):
        dns = _Lookup(lookup or get_txt)
        verifier.domain = verifier.selector = b""
        detail = ""
        failed = False
        try:
            valid = bool(verifier.verify(idx=index, dnsfunc=dns))
        except dkim.ValidationError as error:  # the signature is well-formed and does not verify
            valid, failed, detail = False, True, str(error)[:300]
        except dkim.DKIMException as error:
            valid, detail = False, str(error)[:300]
        except Exception as error:  # dkimpy on hostile input: a broken signature, nothing more
            valid, detail = False, f"{type(error).__name__}: {error}"[:300]
        domain = _text(verifier.domain)
        outcome: SignatureOutcome
        if valid:
            outcome = "pass"
        elif dns.failed is not None:
            outcome, detail = "temperror", dns.failed
        elif failed:
            outcome = "fail"
        elif detail:
            outcome = "permerror"
        else:
            outcome, detail = (
                "fail",
                "signature does not verify (body or signed headers changed, or wrong key)",
            )
        results.append(
            SignatureResult(domain, _text(verifier.selector), outcome, aligned(from_domain, domain), detail)
        )
    return DkimResult(_status(results), tuple(results))


def _beyond_bounds(raw: bytes, head: bytes) -> str | None:
    """Why verifying `raw` would cost too much (see MAX_SIGNATURE_FIELD), or None."""
    if len(head) > MAX_VERIFIED_HEAD:
        return f"a header block larger than {MAX_VERIFIED_HEAD} bytes"
    if any(len(field.group()) > MAX_SIGNATURE_FIELD for field in _SIGNATURE_FIELD.finditer(head)):
        return f"a DKIM-Signature field longer than {MAX_SIGNATURE_FIELD} bytes"
    if sum(len(run.group()) ** 2 for run in _BLANK_RUN.finditer(raw)) > MAX_BLANK_RUN_WORK:
        return "runs of blanks too long to canonicalise"
    return None


def _status(results: list[SignatureResult]) -> DkimStatus:
    if any(r.result == "pass" and r.aligned for r in results):
        return "pass"
    if any(r.result == "temperror" for r in results):
        return "temperror"
    if any(r.result == "pass" for r in results):
        return "unaligned"
    return "fail"


# --- ARC ------------------------------------------------------------------------------------------

ArcStatus = Literal["none", "pass", "fail", "temperror"]

_SEAL_HEADER = re.compile(rb"^arc-seal\s*:", re.IGNORECASE | re.MULTILINE)
_INSTANCE_TAG = re.compile(r"^\s*i\s*=\s*\d+\s*;", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ArcResult:
    """The message's ARC chain: `pass` when every set validates; then `sealer` (the latest seal's
    `d=`) vouches that it found `passes` (method, domain) before forwarding: DKIM's signing domain,
    SPF's envelope domain, DMARC's From domain."""

    status: ArcStatus
    sealer: str = ""
    passes: tuple[tuple[str, str], ...] = ()
    detail: str = ""

    def record(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "sealer": self.sealer,
            "passes": [list(one) for one in self.passes],
            "detail": self.detail,
        }


NO_ARC = ArcResult("none")


def verify_arc(
    raw: bytes, head: bytes, *, lookup: TxtLookup | None = None, timeout: float = 5.0
) -> ArcResult:
    """Verify the ARC chain of `raw` (its seals' keys come from DNS); never raises."""
    if _SEAL_HEADER.search(head) is None:
        return NO_ARC
    dns = _Lookup(lookup or get_txt)
    try:
        verdict, sets, reason = dkim.ARC(raw, minkey=1024, timeout=timeout).verify(dnsfunc=dns)
    except Exception as error:  # dkimpy on hostile input: a broken chain, nothing more
        verdict, sets, reason = dkim.CV_Fail, [], f"{type(error).__name__}: {error}"
    detail = str(reason)[:300]
    if dns.failed is not None:
        return ArcResult("temperror", detail=dns.failed)
    if verdict != dkim.CV_Pass or not sets:
        return ArcResult("fail", _text(sets[0].get("as-domain")) if sets else "", detail=detail)
    latest = sets[0]
    return ArcResult("pass", _text(latest.get("as-domain")).lower(), _recorded_passes(latest), detail)


def _recorded_passes(arc_set: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The passes an ARC-Authentication-Results header records, as (method, domain)."""
    value = arc_set.get("aar-value", b"")
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        header = authres.AuthenticationResultsHeader.parse(
            "Authentication-Results: " + _INSTANCE_TAG.sub("", text, count=1)
        )
    except Exception:
        return ()
    found: list[tuple[str, str]] = []
    for result in header.results:
        if str(result.result).lower() != "pass":
            continue
        method = str(result.method).lower()
        properties = {(str(p.type).lower(), str(p.name).lower()): str(p.value) for p in result.properties}
        wanted = {
            "dkim": (properties.get(("header", "d")) or properties.get(("header", "i"), "")).lstrip("@"),
            "spf": properties.get(("smtp", "mailfrom"), ""),
            "dmarc": properties.get(("header", "from"), ""),
        }.get(method, "")
        domain = wanted.rpartition("@")[2].strip().lower()
        if domain:
            found.append((method, domain))
    return tuple(found)


# --- SPF ------------------------------------------------------------------------------------------

SpfLookup = Callable[[str, str, bool, float], Sequence[tuple[tuple[str, str], Any]]]
"""pyspf's DNS function: `lookup(name, qtype, strict, timeout)` -> `[((name, qtype), value), ...]`,
where a TXT value is a list of byte strings, A/AAAA an address, MX (preference, host), PTR a name."""

SpfStatus = Literal["none", "pass", "fail", "softfail", "neutral", "temperror", "permerror"]

MAX_SPF_SECONDS_PER_LOOKUP_TIMEOUT = 4
"""An SPF check may take up to ten lookups; all of them together get this many lookup timeouts."""


def resolve_for_spf(
    name: str, qtype: str, strict: bool = True, timeout: float = 5.0
) -> list[tuple[Any, Any]]:
    """The real resolver (dnspython) in pyspf's shape; pyspf's own calls a function dnspython deprecated."""
    try:
        answer = dns.resolver.resolve(name, qtype, lifetime=timeout, search=False)
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return []
    except dns.exception.DNSException as error:
        raise spf.TempError(f"DNS {error}") from error
    values: dict[str, Callable[[Any], Any]] = {
        "A": lambda rdata: rdata.address,
        "AAAA": lambda rdata: rdata.address,
        "MX": lambda rdata: (rdata.preference, rdata.exchange),
        "PTR": lambda rdata: rdata.target.to_text(True),
        "TXT": lambda rdata: rdata.strings,
    }
    value = values.get(qtype, lambda rdata: rdata.to_text())
    return [((name, qtype), value(rdata)) for rdata in answer]


_SPF_DNS: ContextVar[SpfLookup] = ContextVar("touchline_spf_dns", default=resolve_for_spf)


def _spf_dns(name: str, qtype: str, strict: bool = True, timeout: float = 30) -> Any:
    return _SPF_DNS.get()(name, qtype, strict, timeout)


# pyspf looks DNS up through its module's `DNSLookup` (its own tests replace it); this one asks the
# lookup of the check running in the calling thread or task, so checks can each have their own.
spf.DNSLookup = _spf_dns


@dataclass(frozen=True, slots=True)
class SpfResult:
    """SPF's answer for the client address and the envelope sender's domain (`none` also when
    there was nothing to check)."""

    status: SpfStatus
    client: str = ""
    domain: str = ""
    detail: str = ""

    def record(self) -> dict[str, Any]:
        return {"status": self.status, "client": self.client, "domain": self.domain, "detail": self.detail}


NO_SPF = SpfResult("none", detail="no client address and envelope sender to check")


def verify_spf(
    client: str, mail_from: str | None, *, lookup: SpfLookup | None = None, timeout: float = 5.0
) -> SpfResult:
    """SPF for `client` sending as `mail_from` (RFC 7208, with pyspf); never raises."""
    if not client or not mail_from:
        return NO_SPF
    try:
        sender = normalise_address(mail_from.strip().strip("<>"))
        domain = domain_of(sender)
    except (InvalidAddressError, InvalidDomainError, ValueError):
        return SpfResult("none", client, "", f"envelope sender {mail_from[:200]!r} has no domain")
    token = _SPF_DNS.set(lookup or resolve_for_spf)
    try:
        status, explanation = spf.check2(
            i=client,
            s=sender,
            h=domain,
            timeout=timeout,
            querytime=timeout * MAX_SPF_SECONDS_PER_LOOKUP_TIMEOUT,
        )
    except Exception as error:
        status, explanation = "permerror", f"{type(error).__name__}: {error}"
    finally:
        _SPF_DNS.reset(token)
    outcome = _SPF_STATUSES.get(str(status).lower(), "permerror")
    return SpfResult(outcome, client, domain, str(explanation)[:300])


_SPF_STATUSES: dict[str, SpfStatus] = {
    status: status for status in ("pass", "fail", "softfail", "neutral", "temperror", "permerror", "none")
}


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")[:253]
    return str(value or "")[:253]
