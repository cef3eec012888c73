"""The A/B test page in Chromium: each variant's rate and interval drawn by the vendored Chart.js under
the CSP (no inline script), the same numbers in the table beside the chart, and their CSV download."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from tests.browser import console_csp_violations
from tests.conftest import Team
from tests.outbound.abtest.test_experiments import _experiment, _sent
from tests.outbound.analytics.test_analytics_page import DRAWN
from tests.pages.test_companies_pages import log_in
from touchline.db import session_scope
from touchline.models import Experiment
from touchline.outbound.experiments import service

CHART_DATA = """canvas => {
  const chart = Chart.getChart(canvas);
  return chart ? chart.data.datasets.map(dataset => dataset.data) : null;
}"""

WATCH_CSP = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation', event => {
  window.cspViolations.push(event.violatedDirective + ' ' + event.blockedURI);
});"""


@pytest.mark.browser
def test_variants_chart_table_and_csv(
    page: Page, live_server: str, sessions: sessionmaker[Session], team: Team, tmp_path: Path
) -> None:
    experiment_id = _experiment(sessions, team)
    _sent(sessions, team, experiment_id, "A", [True] + [False] * 3)
    _sent(sessions, team, experiment_id, "B", [True] * 3 + [False])
    with session_scope(sessions) as session:
        experiment = session.get(Experiment, experiment_id)
        assert experiment is not None
        numbers = service.running_numbers(session, experiment).variants
    intervals = [(one.interval.low, one.interval.high) for one in numbers]
    assert all(0 <= low < high <= 1 for low, high in intervals)

    console_csp = console_csp_violations(page)
    page.add_init_script(WATCH_CSP)
    log_in(page, live_server, "admin@team-a.example", "admin-password-123")
    page.goto(f"{live_server}/experiments/{experiment_id}")
    expect(page.locator("body")).to_have_attribute("data-experiment-chart", "2")
    canvas = page.locator("#experiment-chart canvas")
    assert canvas.evaluate(DRAWN) > 100  # Chart.js painted the bars and axes
    rates, bands = canvas.evaluate(CHART_DATA)
    assert rates == [25.0, 75.0]
    drawn = [end for band in bands for end in band]
    assert drawn == pytest.approx([end * 100 for band in intervals for end in band], abs=0.051)

    rows = page.locator("#experiment-variants tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("td").nth(4)).to_have_text("25.0%")
    expect(rows.nth(1).locator("td").nth(4)).to_have_text("75.0%")
    low, high = intervals[1]
    expect(rows.nth(1).locator("td").nth(5)).to_have_text(f"{low * 100:.1f}% to {high * 100:.1f}%")

    with page.expect_download() as downloading:
        page.locator("#experiment-chart .csv-link").click()
    saved = tmp_path / "variants.csv"
    downloading.value.save_as(saved)
    table = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert table[0] == [
        "variant",
        "template",
        "sends",
        "successes",
        "rate",
        "interval_low",
        "interval_high",
        "state",
    ]
    assert [[*row[:4], row[7]] for row in table[1:]] == [
        ["A", numbers[0].template_name, "4", "1", "running"],
        ["B", numbers[1].template_name, "4", "3", "running"],
    ]
    assert [[float(cell) for cell in row[4:7]] for row in table[1:]] == [
        [0.25, *intervals[0]],
        [0.75, *intervals[1]],
    ]
    assert page.evaluate("window.cspViolations") == []
    assert console_csp == []
