"""The pure decisions of bulk sends."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from touchline.outbound.bulk import rules
from touchline.outbound.compose.templates import EmailTemplate

NOW = datetime(2026, 12, 6, 22, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "unsubscribed_at", "starts"),
    [
        ("jane@acme.example", None, None),
        ("jane@acme.example", NOW, "unsubscribed on 2026-12-06 22:30 UTC"),
        ("no one@acme.example", None, "undeliverable: 'no one@acme.example' has an invalid local part"),
        ("jane.acme.example", None, "undeliverable: 'jane.acme.example' is not an email address"),
        ("jane@acme.example\r\nBcc: x@y.example", None, "undeliverable:"),
        ("jane@mail.acme.invalid", None, "undeliverable: mail.acme.invalid is a reserved domain"),
        ("root@box.localhost", None, "undeliverable: box.localhost is a reserved domain"),
    ],
)
def test_skip_reason(address: str, unsubscribed_at: datetime | None, starts: str | None) -> None:
    reason = rules.skip_reason(address, unsubscribed_at)
    if starts is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(starts)


def test_render_skip_reason_names_every_missing_field() -> None:
    assert rules.render_skip_reason(["enduser.first_name"], "x") == "missing field: enduser.first_name"
    assert rules.render_skip_reason(["a.b", "c.d"], "x") == "missing fields: a.b, c.d"
    assert rules.render_skip_reason([], "subject: unsafe") == (
        "the template cannot be rendered for this enduser: subject: unsafe"
    )


@pytest.mark.parametrize(
    ("template", "reads"),
    [
        (EmailTemplate("{{ company.name }} news", "<p>{{ sender.name }}</p>"), False),
        (EmailTemplate("News", "<p>Hi {{ enduser.first_name }}</p>"), True),
        (EmailTemplate("{{ enduser.custom.role | default('') }}", "<p>x</p>"), True),
        (EmailTemplate("News", "<p>x</p>", "{% if enduser.email %}y{% endif %}"), True),
        (EmailTemplate("News", "<p>{% for i in range(2) %}{{ i }}{% endfor %}</p>"), False),
    ],
)
def test_reads_enduser_fields(template: EmailTemplate, reads: bool) -> None:
    assert rules.reads_enduser_fields(template) is reads


def test_chunks_of_at_most_the_size() -> None:
    assert [list(chunk) for chunk in rules.chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]
    assert list(rules.chunks([], 100)) == []


@pytest.mark.parametrize(
    ("when", "zone", "said"),
    [
        (datetime(2026, 12, 6, 23, 5, tzinfo=UTC), "UTC", "continues at 23:05 UTC"),
        (datetime(2026, 12, 7, 22, 30, tzinfo=UTC), "UTC", "continues tomorrow at 22:30 UTC"),
        (datetime(2026, 12, 9, 8, 0, tzinfo=UTC), "UTC", "continues on 2026-12-09 at 08:00 UTC"),
        # 23:05 UTC on the 6th is today on UTC's calendar, but already the 7th in Berlin.
        (
            datetime(2026, 12, 6, 23, 5, tzinfo=UTC),
            "Europe/Berlin",
            "continues tomorrow at 00:05 Europe/Berlin",
        ),
        (
            datetime(2026, 12, 8, 22, 30, tzinfo=UTC),
            "Europe/Berlin",
            "continues on 2026-12-08 at 23:30 Europe/Berlin",
        ),
        (
            datetime(2026, 12, 7, 5, 0, tzinfo=UTC),
            "America/New_York",
            "continues tomorrow at 00:00 America/New_York",
        ),
    ],
)
def test_continues_message_on_the_workspace_s_calendar(when: datetime, zone: str, said: str) -> None:
    assert rules.continues_message(when, NOW, ZoneInfo(zone)) == said


def test_plain_http_carries_one_click_unsubscribe_links_only_on_loopback() -> None:
    assert rules.unsubscribe_link_problem("https://touchline.example", "each") is None
    assert rules.unsubscribe_link_problem("http://touchline.example", "one") is None
    assert rules.unsubscribe_link_problem("http://127.0.0.1:8000", "each") is None
    assert rules.unsubscribe_link_problem("http://localhost:8000/", "each") is None
    problem = rules.unsubscribe_link_problem("http://touchline.example", "each")
    assert problem is not None
    assert "TOUCHLINE_BASE_URL" in problem
