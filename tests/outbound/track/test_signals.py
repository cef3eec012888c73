"""Request-level machine signals: each reason, and the Apple Private Relay ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from touchline.outbound.track.signals import (
    APPLE_RELAY_REASON,
    HEAD_REASON,
    RelayRanges,
    Request,
    machine_reason,
)

PERSON = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
RANGES = RelayRanges(["172.224.224.0/27", "172.224.224.32/31", "2a02:26f7:b3c0:4000::/64", "104.28.2.128/28"])


@pytest.mark.parametrize(
    ("user_agent", "reason"),
    [
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "Google image proxy",
        ),
        ("Mozilla/5.0 (compatible; Microsoft Office 365 ATP Safe Links)", "Microsoft Safe Links"),
        ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Mimecast)", "Mimecast"),
        ("Mozilla/5.0 Proofpoint URL Defense", "Proofpoint"),
        ("Barracuda Sentinel (EE)", "Barracuda"),
        (
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, "
                "like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36"
            ),
            "headless browser",
        ),
        (
            (
                "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 "
                "(KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"
            ),
            "headless browser",
        ),
        ("python-requests/2.31.0", "HTTP library"),
        ("curl/8.5.0", "HTTP library"),
        ("Go-http-client/1.1", "HTTP library"),
        ("okhttp/4.12.0", "HTTP library"),
        ("Java/17.0.2", "HTTP library"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
        ("", "no user agent"),
    ],
)
def test_each_scanner_user_agent_is_labelled_with_its_reason(user_agent: str, reason: str) -> None:
    assert machine_reason(Request("GET", user_agent, "198.51.100.7"), RANGES) == f"user agent: {reason}"


@pytest.mark.parametrize(
    "user_agent",
    [
        PERSON,
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
            "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
        ),
        "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Thunderbird/128.5.0",
    ],
)
def test_mail_clients_and_browsers_are_taken_as_people(user_agent: str) -> None:
    assert machine_reason(Request("GET", user_agent, "198.51.100.7"), RANGES) is None


def test_head_requests_and_apple_relay_addresses_are_labelled_and_reasons_add_up() -> None:
    assert machine_reason(Request("HEAD", PERSON, None), RANGES) == HEAD_REASON
    assert machine_reason(Request("GET", PERSON, "172.224.224.33"), RANGES) == APPLE_RELAY_REASON
    assert machine_reason(Request("GET", PERSON, "2a02:26f7:b3c0:4000::1:2"), RANGES) == APPLE_RELAY_REASON
    assert machine_reason(Request("HEAD", "curl/8", "::ffff:172.224.224.1"), RANGES) == (
        f"{HEAD_REASON}; user agent: HTTP library; {APPLE_RELAY_REASON}"
    )


@pytest.mark.parametrize(
    "address", ["172.224.224.34", "172.224.223.255", "104.28.2.144", "2a02:26f7:b3c0:4001::", "nonsense"]
)
def test_addresses_outside_the_ranges_are_not_labelled(address: str) -> None:
    assert machine_reason(Request("GET", PERSON, address), RANGES) is None


def test_ranges_are_read_from_apples_csv_and_the_bundled_sample(tmp_path: Path) -> None:
    listed = tmp_path / "egress-ip-ranges.csv"
    listed.write_text("172.224.226.0/27,DE,DE-BE,Berlin,\n2606:54c0:a620::/45,US,US-CA,Los Angeles,\n\n")
    ranges = RelayRanges.from_csv(listed)
    assert len(ranges) == 2
    from ipaddress import ip_address

    assert ip_address("172.224.226.31") in ranges
    assert ip_address("2606:54c0:a627:ffff::1") in ranges
    assert ip_address("172.224.226.32") not in ranges

    from touchline.config import Settings
    from touchline.outbound.track.app import relay_ranges_of

    assert len(relay_ranges_of(Settings(data_dir=tmp_path))) >= 5
    assert len(relay_ranges_of(Settings(data_dir=tmp_path, apple_relay_ranges_file=listed))) == 2
