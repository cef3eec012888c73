"""Request-level signs that a tracking hit was made by a machine: a pure classifier, no I/O.

Decided once, as the request arrives, from what the request itself shows: its method, its user agent
and whether its address is an Apple Private Relay egress address. The address is only looked up,
never kept. Signs that need the email's other events (a hit within seconds of sending, several
links at once, the honeypot) are the engagement record's to judge later.

User agents are matched against `SCANNER_PATTERNS` (plain alternations, no nested repetition: each
runs in time linear in the user agent), then read by `ua-parser` for HTTP libraries, headless
browsers and crawlers it knows by family.
"""

from __future__ import annotations

import bisect
import csv
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Final

from ua_parser import parse_device, parse_user_agent

MAX_USER_AGENT_CHARS: Final = 500
"""What is kept of a user agent, and all of it that is read."""

SCANNER_PATTERNS: Final[tuple[tuple[str, str], ...]] = (
    # (reason, pattern): image proxies and mail security gateways that fetch pixels or follow links.
    ("Google image proxy", r"GoogleImageProxy|GmailImageProxy|ggpht\.com"),
    ("Yahoo image proxy", r"YahooMailProxy"),
    ("Microsoft Safe Links", r"Safe ?Links|Office ?365 ?ATP|MSOffice ?ATP|Microsoft Office Protection"),
    ("Mimecast", r"Mimecast"),
    ("Proofpoint", r"Proofpoint|\bPPS\b"),
    ("Barracuda", r"Barracuda"),
    ("Cisco IronPort", r"IronPort"),
    ("headless browser", r"HeadlessChrome|PhantomJS|SlimerJS|Puppeteer|Playwright|Selenium"),
    (
        "HTTP library",
        r"python-requests|python-urllib|python-httpx|aiohttp|\bcurl/|\bWget/|Go-http-client|okhttp"
        r"|\bJava/|Apache-HttpClient|libwww-perl|node-fetch|axios/|undici|Ruby|\bGuzzleHttp",
    ),
)
_PATTERNS: Final = tuple((reason, re.compile(pattern, re.IGNORECASE)) for reason, pattern in SCANNER_PATTERNS)

# ua-parser families that are programs, not mail clients or browsers a person uses.
_MACHINE_FAMILIES: Final = {
    "HeadlessChrome": "headless browser",
    "PhantomJS": "headless browser",
    "Python Requests": "HTTP library",
    "Python-urllib": "HTTP library",
    "curl": "HTTP library",
    "Wget": "HTTP library",
    "Go-http-client": "HTTP library",
    "okhttp": "HTTP library",
    "Java": "HTTP library",
    "Apache-HttpClient": "HTTP library",
    "GmailImageProxy": "Google image proxy",
}

HEAD_REASON: Final = "HEAD request"
APPLE_RELAY_REASON: Final = "Apple Private Relay address"


@dataclass(frozen=True)
class Request:
    """What the classifier reads of one tracking request."""

    method: str
    user_agent: str
    address: str | None


class RelayRanges:
    """Address ranges (Apple Private Relay egress), kept sorted so that a lookup is a bisection."""

    def __init__(self, networks: Iterable[str]) -> None:
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for written in networks:
            network = ip_network(written.strip(), strict=False)
            spans[network.version].append((int(network.network_address), int(network.broadcast_address)))
        self._starts: dict[int, list[int]] = {}
        self._ends: dict[int, list[int]] = {}
        for version, ranges in spans.items():
            merged: list[tuple[int, int]] = []
            for start, end in sorted(ranges):
                if merged and start <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], end))
                else:
                    merged.append((start, end))
            self._starts[version] = [start for start, _ in merged]
            self._ends[version] = [end for _, end in merged]

    def __len__(self) -> int:
        return sum(len(starts) for starts in self._starts.values())

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, IPv4Address | IPv6Address):
            return False
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        value = int(address)
        starts = self._starts[address.version]
        index = bisect.bisect_right(starts, value) - 1
        return index >= 0 and value <= self._ends[address.version][index]

    @classmethod
    def from_csv(cls, path: Path) -> RelayRanges:
        """Apple's egress-ip-ranges.csv: one range a line, the prefix first (then country, region,
        city, which are not read)."""
        with path.open(newline="", encoding="utf-8") as lines:
            return cls(row[0] for row in csv.reader(lines) if row and row[0].strip() and row[0][0] != "#")


@functools.lru_cache(maxsize=4096)
def user_agent_reason(user_agent: str) -> str | None:
    """Why a user agent is taken to be a machine's, or None."""
    read = user_agent[:MAX_USER_AGENT_CHARS]
    if not read.strip():
        return "no user agent"
    for reason, pattern in _PATTERNS:
        if pattern.search(read):
            return reason
    family = parse_user_agent(read)
    if family is not None and family.family in _MACHINE_FAMILIES:
        return _MACHINE_FAMILIES[family.family]
    device = parse_device(read)
    if device is not None and device.family == "Spider":
        return "crawler"
    return None


def machine_reason(request: Request, relay_ranges: RelayRanges) -> str | None:
    """Every request-level reason to take this hit for a machine's, joined by "; ", or None."""
    reasons = []
    if request.method.upper() == "HEAD":
        reasons.append(HEAD_REASON)
    agent = user_agent_reason(request.user_agent)
    if agent is not None:
        reasons.append(f"user agent: {agent}")
    if request.address:
        try:
            address = ip_address(request.address)
        except ValueError:
            address = None
        if address is not None and address in relay_ranges:
            reasons.append(APPLE_RELAY_REASON)
    return "; ".join(reasons) or None
