"""The analytics page in Chromium: the charts drawn by the vendored Chart.js under the CSP, their
numbers in the tables beside them, a filter that redraws them, and the CSV download that follows it."""

from __future__ import annotations

import csv
import io

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import Team
from tests.outbound.analytics.test_averages import hand_computed_records
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
    csp_errors: list[str] = []
    page.on(
        "console",
        lambda message: (
            csp_errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
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
