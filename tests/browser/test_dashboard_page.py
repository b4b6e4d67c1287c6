"""A logged-in member opens the demo dashboard in Chromium: panels, range, variables, inspect."""

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    drawn_figure,
    is_drawn,
    panel_measures,
    panel_section,
    screenshot,
    single_stat,
    wait_for_panels,
)
from tests.browser.site import BrowserSite

# django_db: pytest-django sets up the test database only for runs that hold such tests;
# the data itself is committed once by the package's `site` fixture.
pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def dashboard_path(site: BrowserSite) -> str:
    return f"/p/{site.project_slug}/dashboards/{site.dashboard_slug}/"


def open_dashboard(page: Page, site: BrowserSite, query: str = "") -> None:
    page.goto(dashboard_path(site) + query)
    wait_for_panels(page, site.panel_count)


def url_params(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query, keep_blank_values=True)


def test_login_lands_on_the_dashboard_list(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """The stored login opens the member's dashboard list with the demo dashboards."""
    page.goto("/dashboards/")
    expect(page.locator(f'a[href="{dashboard_path(site)}"]')).to_be_visible()
    screenshot(page, artifacts_dir, "dashboard-list")


def test_every_panel_is_drawn_with_data(page: Page, site: BrowserSite, artifacts_dir: Path) -> None:
    """Every panel of the dashboard is drawn by Plotly, with SVG marks that hold data."""
    open_dashboard(page, site)
    measures = panel_measures(page)
    assert len(measures) == site.panel_count >= 6
    assert {m["kind"] for m in measures} >= {
        "line",
        "area",
        "stacked_bar",
        "heatmap",
        "single_stat",
        "table",
    }
    empty = [(m["title"], m["kind"], m) for m in measures if not is_drawn(m)]
    assert not empty, f"panels drawn without data: {empty}"
    screenshot(page, artifacts_dir, "dashboard")


def test_range_and_variable_change_the_url_and_the_data(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """A range preset and a variable choice go into the URL and redraw panels with other data."""
    open_dashboard(page, site)
    assert url_params(page).get("from", ["now-24h"]) == ["now-24h"]
    latency_before = drawn_figure(page, "Latency by endpoint")
    regions_before = sorted(t["name"] for t in drawn_figure(page, "Requests by region"))
    assert regions_before == ["eu", "us"]

    page.select_option("#range-preset", "now-6h")
    page.wait_for_url("**from=now-6h**")
    wait_for_panels(page, site.panel_count)
    assert url_params(page)["from"] == ["now-6h"]
    latency_after = drawn_figure(page, "Latency by endpoint")
    # Same series, but the x axis now starts about 18 hours later.
    assert [t["name"] for t in latency_after] == [t["name"] for t in latency_before]
    first_before = min(t["x"][0] for t in latency_before)
    first_after = min(t["x"][0] for t in latency_after)
    assert 17 * 3600_000 < _epoch_ms(first_after) - _epoch_ms(first_before) < 19 * 3600_000
    screenshot(page, artifacts_dir, "dashboard-range-6h")
    requests_all_regions = single_stat(page, "Requests")

    # The variable's options come from the catalog, asynchronously.
    expect(page.locator("#var-region option[value=eu]")).to_have_count(1)
    page.select_option("#var-region", ["eu"])
    page.wait_for_url("**var-region=eu**")
    wait_for_panels(page, site.panel_count)
    params = url_params(page)
    assert params["var-region"] == ["eu"]
    assert params["from"] == ["now-6h"]
    assert sorted(t["name"] for t in drawn_figure(page, "Requests by region")) == ["eu"]
    requests_after = single_stat(page, "Requests")
    # eu carries 40 of every 46 requests (tests/browser/site.py).
    assert 0 < requests_after < requests_all_regions * 0.95
    screenshot(page, artifacts_dir, "dashboard-region-eu")

    # The URL alone restores the view.
    page.reload()
    wait_for_panels(page, site.panel_count)
    expect(page.locator("#range-preset")).to_have_value("now-6h")
    assert page.locator("#var-region").evaluate(
        "(s) => Array.from(s.selectedOptions, (o) => o.value)"
    ) == ["eu"]
    assert sorted(t["name"] for t in drawn_figure(page, "Requests by region")) == ["eu"]


def _epoch_ms(plotly_x: object) -> int:
    """Return a trace's x value (epoch ms or a date string) as epoch milliseconds."""
    if isinstance(plotly_x, int | float):
        return int(plotly_x)
    text = str(plotly_x).replace(" ", "T")
    moment = datetime.fromisoformat(text)
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def test_inspect_shows_tier_and_server_time(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """Inspect opens the panel's query details: the tier read and the server time."""
    open_dashboard(page, site)
    for title, tier in (("Sales by category", "rollup_1h"), ("Latency by endpoint", "rollup_1m")):
        section = panel_section(page, title)
        inspect = section.locator(".panel-inspect")
        expect(inspect).to_be_hidden()
        section.locator(".panel-inspect-button").click()
        expect(inspect).to_be_visible()
        details = json.loads(inspect.inner_text())
        assert details["tier"] == tier
        assert isinstance(details["server_ms"], int | float)
        assert details["server_ms"] > 0
        assert details["query"]["metric"] in {"shop.product_sales", "http.latency_ms"}
        expect(section.locator(".panel-status")).to_contain_text(tier)
    screenshot(page, artifacts_dir, "dashboard-inspect")
