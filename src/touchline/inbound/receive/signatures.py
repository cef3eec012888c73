"""DKIM signatures of a received message: each one verified, and whether one vouches for the From domain.

A valid signature proves only that its signing domain (`d=`) saw the message. It vouches for the
sender when that domain is aligned with the From domain the way DMARC's relaxed mode defines it:
the same registrable domain (`mail.acme.com` signs for `acme.com`). Anything else is recorded but
does not count as a pass.

Verifying looks keys up in DNS, so it runs before any database transaction is opened.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import dkim  # type: ignore[import-untyped]  # dkimpy ships no type information
from dkim.dnsplug import get_txt  # type: ignore[import-untyped]

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


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")[:253]
    return str(value or "")[:253]
