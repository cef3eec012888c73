"""Whether a message sent to the log address really comes from its From domain (SPEC §4).

A From header is only text, so an address of a workspace's user proves nothing by itself. A
message is authenticated for its From domain when one of these holds:

- the SMTP client is one of the operator's own relays (`inbound_trusted_networks`);
- a valid DKIM signature's `d=` is aligned with the From domain (DMARC's relaxed alignment);
- SPF passes for the client's address and the envelope sender's domain is aligned with it;
- the ARC chain validates, its latest seal is by a forwarder the operator trusts
  (`inbound_trusted_arc_sealers`), and that forwarder recorded an aligned DKIM, SPF or DMARC pass;
- the workspace's admins relaxed the rule for the From domain (anyone can then forge its mail).

`judge` is that decision, without I/O. `collect` gathers what it reads from DNS (keys, SPF
records), stopping at the first method that passes; it runs before any transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

from touchline.config import Settings
from touchline.inbound.receive.signatures import (
    NO_ARC,
    NO_SIGNATURE,
    NO_SPF,
    ArcResult,
    DkimResult,
    SpfLookup,
    SpfResult,
    TxtLookup,
    aligned,
    verify_arc,
    verify_dkim,
    verify_spf,
)
from touchline.kit.domains import domain_covers

Network = IPv4Network | IPv6Network


@dataclass(frozen=True, slots=True)
class SenderChecks:
    """The operator's trust (relays, ARC forwarders) and the DNS lookups to authenticate with
    (None: the real resolver)."""

    trusted_networks: tuple[Network, ...] = ()
    trusted_sealers: frozenset[str] = frozenset()
    dkim_lookup: TxtLookup | None = None
    spf_lookup: SpfLookup | None = None
    timeout: float = 5.0

    @classmethod
    def of(
        cls, settings: Settings, *, dkim_lookup: TxtLookup | None = None, spf_lookup: SpfLookup | None = None
    ) -> SenderChecks:
        return cls(
            tuple(settings.inbound_trusted_networks),
            frozenset(settings.inbound_trusted_arc_sealers),
            dkim_lookup,
            spf_lookup,
            settings.inbound_dkim_dns_timeout,
        )

    def trusts_client(self, peer: str | None) -> bool:
        if not peer or not self.trusted_networks:
            return False
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_networks)

    def trusts_sealer(self, sealer: str) -> bool:
        return bool(sealer) and any(domain_covers(trusted, sealer) for trusted in self.trusted_sealers)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What DNS said of a message; a method not looked at (an earlier one passed) stays empty."""

    dkim: DkimResult = NO_SIGNATURE
    arc: ArcResult = NO_ARC
    spf: SpfResult = NO_SPF

    def record(self) -> dict[str, Any]:
        return {"dkim": self.dkim.record(), "arc": self.arc.record(), "spf": self.spf.record()}


NO_EVIDENCE = Evidence()


@dataclass(frozen=True, slots=True)
class Verdict:
    """`by` names what authenticated the message; otherwise `reason` says why nothing did, and
    `retry` that a lookup failed for now (the sender should try again rather than be refused)."""

    authenticated: bool
    by: str = ""
    reason: str = ""
    retry: bool = False


def judge(
    from_domains: Sequence[str],
    peer: str | None,
    evidence: Evidence,
    checks: SenderChecks,
    relaxed_domains: Collection[str] = (),
) -> Verdict:
    """Whether every From domain is authenticated. `peer` is the address that connected to the
    SMTP server (None when the message came another way, as over HTTP from a provider's relay)."""
    if not from_domains:
        return Verdict(False, reason="not authenticated: the message has no From domain")
    ways: list[str] = []
    for domain in dict.fromkeys(from_domains):
        verdict = _judge_one(domain, peer, evidence, checks, relaxed_domains)
        if not verdict.authenticated:
            return verdict
        ways.append(verdict.by)
    return Verdict(True, by=", ".join(dict.fromkeys(ways)))


def _judge_one(
    domain: str, peer: str | None, evidence: Evidence, checks: SenderChecks, relaxed: Collection[str]
) -> Verdict:
    if domain in relaxed:
        return Verdict(True, by="relaxed")
    if checks.trusts_client(peer):
        return Verdict(True, by="trusted-network")
    dkim, arc, spf = evidence.dkim, evidence.arc, evidence.spf
    if any(s.result == "pass" and aligned(domain, s.domain) for s in dkim.signatures):
        return Verdict(True, by="dkim")
    if (
        arc.status == "pass"
        and checks.trusts_sealer(arc.sealer)
        and any(aligned(domain, passed) for _, passed in arc.passes)
    ):
        return Verdict(True, by="arc")
    if spf.status == "pass" and aligned(domain, spf.domain):
        return Verdict(True, by="spf")
    retry = (
        any(s.result == "temperror" for s in dkim.signatures)
        or arc.status == "temperror"
        or spf.status == "temperror"
    )
    parts = [_dkim_said(domain, dkim), _spf_said(domain, spf)]
    if arc.status != "none":
        parts.append(_arc_said(domain, arc, checks))
    return Verdict(False, reason=f"not authenticated: {', '.join(parts)}", retry=retry)


def _dkim_said(domain: str, dkim: DkimResult) -> str:
    if not dkim.signatures:
        return f"no DKIM signature aligned with {domain} (none at all)"
    found = "; ".join(f"d={s.domain or '?'} {s.result}" for s in dkim.signatures)
    return f"no DKIM signature aligned with {domain} ({found})"


def _spf_said(domain: str, spf: SpfResult) -> str:
    if not spf.client:
        return "SPF not checked (the client address or envelope sender is unknown)"
    said = f"SPF {spf.status} for {spf.client}"
    if spf.domain:
        said += f" sending as {spf.domain}"
        if spf.status == "pass" and not aligned(domain, spf.domain):
            said += f" (not aligned with {domain})"
    return said


def _arc_said(domain: str, arc: ArcResult, checks: SenderChecks) -> str:
    if arc.status != "pass":
        return f"ARC chain {arc.status}" + (f" ({arc.detail})" if arc.detail else "")
    if not checks.trusts_sealer(arc.sealer):
        return f"ARC sealed by {arc.sealer}, not a trusted forwarder"
    return f"ARC sealed by {arc.sealer} records no pass aligned with {domain}"


def collect(
    raw: bytes,
    head: bytes,
    from_domains: Sequence[str],
    *,
    peer: str | None,
    spf_client: str,
    mail_from: str | None,
    checks: SenderChecks,
) -> Evidence:
    """Look up what `judge` needs, method by method, until one authenticates the From domains
    (without any workspace's relaxations). Never raises; each lookup has `checks.timeout`."""
    evidence = NO_EVIDENCE

    def enough() -> bool:
        return judge(from_domains, peer, evidence, checks).authenticated

    if not from_domains or enough():
        return evidence
    timeout = checks.timeout
    evidence = replace(
        evidence, dkim=verify_dkim(raw, head, from_domains[0], lookup=checks.dkim_lookup, timeout=timeout)
    )
    if enough():
        return evidence
    if checks.trusted_sealers:
        evidence = replace(evidence, arc=verify_arc(raw, head, lookup=checks.dkim_lookup, timeout=timeout))
        if enough():
            return evidence
    return replace(evidence, spf=verify_spf(spf_client, mail_from, lookup=checks.spf_lookup, timeout=timeout))
