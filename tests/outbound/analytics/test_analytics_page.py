"""The analytics page in Chromium: the charts drawn by the vendored Chart.js under the CSP, their
numbers in the tables beside them, a filter that redraws them, and the CSV download that follows it;
a chosen sequence draws its rates over time and its steps' funnel, each with its CSV."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team
from tests.outbound.analytics.test_averages import hand_computed_records
from tests.outbound.analytics.test_filters import sequenced_records
from tests.pages.test_companies_pages import log_in

DRAWN = """canvas => {
  const chart = Chart.getChart(canvas);
  if (!chart) return 0;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
  return painted;
}"""


@pytest.mark.browser
def test_charts_tables_filters_and_csv(
    page: Page, live_server: str, sessions: sessionmaker[Session], team: Team
) -> None:
    hand_computed_records(sessions, team)
    csp_errors = console_csp_violations(page)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.get_by_role("link", name="Analytics").click()
    expect(page).to_have_url(f"{live_server}/analytics")
    rows = page.locator("#chart-templates tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td")).to_have_text(["Template A", "4", "66.7", "50.0", "33.3", "33.3", "25.0"])
    expect(rows.nth(1).locator("td")).to_have_text(["Template B", "1", "–", "–", "–", "–", "0.0"])
    canvas = page.locator("#chart-templates canvas")
    assert canvas.evaluate(DRAWN) > 100  # Chart.js painted bars and axes
    weeks = page.locator("#chart-over_time tbody tr td:first-child")
    expect(weeks).to_have_text(["2026-11-02", "2026-11-30", "2026-12-07"])

    loaded = page.evaluate("document.body.dataset.analyticsLoaded")
    page.locator("input[name=from]").fill("2026-11-30")
    page.locator("input[name=from]").dispatch_event("change")
    expect(page.locator("body")).not_to_have_attribute("data-analytics-loaded", loaded)
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td").first).to_have_text("Template A")
    expect(weeks).to_have_text(["2026-11-30", "2026-12-07"])
    assert canvas.evaluate(DRAWN) > 100

    href = page.locator("#chart-templates .csv-link").get_attribute("href")
    assert href is not None
    assert "from=2026-11-30" in href
    download = page.request.get(f"{live_server}{href}")
    assert download.ok
    table = list(csv.reader(io.StringIO(download.text())))
    assert table[0][:3] == ["group", "sent", "open_rate"]
    assert [row[:2] for row in table[1:]] == [["Template A", "4"]]
    assert csp_errors == []


DATASETS = "canvas => Chart.getChart(canvas).data.datasets.map(dataset => dataset.data)"


@pytest.mark.browser
def test_a_sequence_draws_its_rates_over_time_and_its_steps_funnel_with_their_csv(
    page: Page, live_server: str, sessions: sessionmaker[Session], team: Team
) -> None:
    made = sequenced_records(sessions, team)
    csp_errors = console_csp_violations(page)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/analytics")
    expect(page.locator("#chart-templates tbody tr")).to_have_count(2)
    expect(page.locator("#chart-funnel tbody tr")).to_have_count(0)
    loaded = page.evaluate("document.body.dataset.analyticsLoaded")
    page.locator("select[name=sequence]").select_option(label="Renewal playbook")
    expect(page.locator("body")).not_to_have_attribute("data-analytics-loaded", loaded)

    steps = page.locator("#chart-funnel tbody tr")
    expect(steps).to_have_count(2)
    expect(steps.first.locator("td")).to_have_text(
        ["Renewal playbook step 1", "2", "100.0", "100.0", "50.0", "50.0", "50.0"]
    )
    expect(steps.nth(1).locator("td")).to_have_text(
        ["Renewal playbook step 2", "1", "0.0", "0.0", "0.0", "0.0", "0.0"]
    )
    funnel = page.locator("#chart-funnel canvas")
    assert funnel.evaluate(DRAWN) > 100
    # Sent, opened, clicked and replied per step, as Chart.js holds them.
    assert funnel.evaluate(DATASETS) == [[2, 1], [2, 0], [1, 0], [1, 0]]
    weeks = page.locator("#chart-over_time tbody tr")
    expect(weeks).to_have_count(2)
    expect(weeks.first.locator("td")).to_have_text(
        ["2026-11-30", "2", "100.0", "100.0", "50.0", "50.0", "50.0"]
    )
    expect(weeks.nth(1).locator("td")).to_have_text(["2026-12-07", "1", "0.0", "0.0", "0.0", "0.0", "0.0"])
    assert page.locator("#chart-over_time canvas").evaluate(DRAWN) > 100
    expect(page.locator("#chart-templates tbody tr")).to_have_count(1)

    def chart_csv(chart: str) -> list[list[str]]:
        href = page.locator(f"#chart-{chart} .csv-link").get_attribute("href")
        assert href is not None
        assert f"sequence={made.sequence_id}" in href
        download = page.request.get(f"{live_server}{href}")
        assert download.ok
        header, *rows = list(csv.reader(io.StringIO(download.text())))
        assert header == [
            "group",
            "sent",
            "open_rate",
            "human_open_rate",
            "click_rate",
            "human_click_rate",
            "reply_rate",
            "opened",
            "clicked",
            "replied",
        ]
        return rows

    assert chart_csv("funnel") == [
        ["Renewal playbook step 1", "2", "100.0", "100.0", "50.0", "50.0", "50.0", "2", "1", "1"],
        ["Renewal playbook step 2", "1", "0.0", "0.0", "0.0", "0.0", "0.0", "0", "0", "0"],
    ]
    assert chart_csv("over_time") == [
        ["2026-11-30", "2", "100.0", "100.0", "50.0", "50.0", "50.0", "2", "1", "1"],
        ["2026-12-07", "1", "0.0", "0.0", "0.0", "0.0", "0.0", "0", "0", "0"],
    ]
    assert chart_csv("templates") == [
        ["Template A", "3", "66.67", "50.0", "33.33", "33.33", "33.33", "2", "1", "1"]
    ]
    assert csp_errors == []
