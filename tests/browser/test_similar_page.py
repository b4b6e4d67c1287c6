"""A logged-in member searches similar items in Chromium: by item, by text, more and less like."""

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

from tests.browser.pages import screenshot
from tests.browser.site import TREND_METRIC, BrowserSite

# django_db: pytest-django sets up the test database only for runs that hold such tests;
# the data itself is committed once by the package's `site` fixture.
pytestmark = [pytest.mark.browser, pytest.mark.django_db]

K = 5


def open_similar(page: Page, site: BrowserSite, *, k: int = K, trend: bool = True) -> None:
    page.goto(f"/p/{site.project_slug}/similar/")
    expect(page.locator("#similar-app[data-ready=true]")).to_have_count(1)
    page.fill("#k", str(k))
    if trend:
        page.select_option("#trend-metric", TREND_METRIC)


def is_search(request: Request) -> bool:
    return request.method == "POST" and "/api/v1/search?" in request.url


def sent_body(request: Request) -> dict[str, Any]:
    """Return the JSON body the page posted."""
    body = request.post_data_json
    assert isinstance(body, dict), request.post_data
    return body


def wait_for_results(page: Page) -> list[dict[str, Any]]:
    """Wait for the search to finish and return each result row's id, score and title."""
    expect(page.locator("#similar-app")).to_have_attribute("data-state", "done")
    expect(page.locator("#search-error")).to_be_hidden()
    rows: list[dict[str, Any]] = page.locator("tr.result-row").evaluate_all(
        """(rows) => rows.map((row) => ({
            id: row.dataset.id,
            title: row.querySelector('.result-title').textContent,
            score: Number(row.querySelector('.score').textContent),
            attributes: row.querySelector('.attr') ? row.querySelector('.attr').textContent : '',
        }))"""
    )
    return rows


def pick_item(page: Page, words: str, external_id: str) -> dict[str, Any]:
    """Find an item by title words and search by it; return the search request's body."""
    page.fill("#item-query", words)
    suggestion = page.locator(f"#item-suggestions li.suggestion[data-id='{external_id}']")
    with page.expect_request(is_search) as request:
        suggestion.locator("button.use-item").click()
    body = sent_body(request.value)
    expect(page.locator("#item-suggestions li")).to_have_count(0)
    return body


def assert_ranked(rows: list[dict[str, Any]]) -> None:
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores, reverse=True), scores
    assert all(-1 <= score <= 1 for score in scores), scores


def test_search_by_item_shows_k_results_nearest_first_with_sparklines(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """Picking an item by title shows k results, its obvious neighbour first, with trends."""
    open_similar(page, site)
    body = pick_item(page, "python", "book-python")
    assert body == {"like": ["book-python"], "k": K, "trend": TREND_METRIC, "range": "7d"}
    rows = wait_for_results(page)
    assert len(rows) == K
    assert rows[0]["id"] == "book-django"
    assert "book-python" not in [row["id"] for row in rows]
    assert_ranked(rows)
    assert rows[0]["title"] == site.items["book-django"]
    assert rows[0]["attributes"] == "category: books"
    expect(page.locator("#like-list li.chip")).to_have_count(1)
    # Every result has points of the trend metric: each sparkline is a drawn Plotly line.
    sparklines = page.locator("tr.result-row .sparkline.js-plotly-plot")
    expect(sparklines).to_have_count(K)
    drawn = page.locator("tr.result-row .sparkline").evaluate_all(
        "(cells) => cells.map((c) => Array.from(c.querySelectorAll('path.js-line'))"
        ".filter((p) => /L/.test(p.getAttribute('d') || '')).length)"
    )
    assert drawn == [1] * K
    expect(page.locator("#results-status")).to_contain_text(f"{K} result(s)")
    screenshot(page, artifacts_dir, "similar-by-item")


def test_search_by_text_finds_the_matching_item_first(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """A typed example text is encoded by the worker and finds the bread book first."""
    open_similar(page, site, trend=False)
    page.fill("#example-text", "how to bake a loaf of sourdough bread at home")
    with page.expect_request(is_search) as request:
        page.click("#add-text")
    assert sent_body(request.value)["like"] == [
        {"text": "how to bake a loaf of sourdough bread at home"}
    ]
    rows = wait_for_results(page)
    assert len(rows) == K
    assert rows[0]["id"] == "book-bread"
    assert_ranked(rows)
    # No trend asked for: no sparklines drawn.
    expect(page.locator("tr.result-row .sparkline.js-plotly-plot")).to_have_count(0)
    screenshot(page, artifacts_dir, "similar-by-text")


def test_more_like_selected_and_less_like_this(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """Selected results become positive examples; 'less like this' adds a negative one."""
    open_similar(page, site, k=7, trend=False)
    pick_item(page, "jazz", "music-jazz")
    rows = wait_for_results(page)
    assert rows[0]["id"] == "music-guitar"
    expect(page.locator("#more-like-these")).to_be_disabled()

    page.locator("tr.result-row[data-id='book-cakes'] .select-result").check()
    with page.expect_request(is_search) as request:
        page.click("#more-like-these")
    assert sent_body(request.value)["like"] == ["music-jazz", "book-cakes"]
    rows = wait_for_results(page)
    ids = [row["id"] for row in rows]
    assert len(ids) == 6  # eight items, two of them examples
    assert {"music-jazz", "book-cakes"}.isdisjoint(ids)
    # The cakes book pulls its neighbour, the bread book, into the top two.
    assert "book-bread" in ids[:2]
    expect(page.locator("#like-list li.chip")).to_have_count(2)

    with page.expect_request(is_search) as request:
        page.locator("tr.result-row[data-id='book-bread'] button.less-like").click()
    body = sent_body(request.value)
    assert body["like"] == ["music-jazz", "book-cakes"]
    assert body["unlike"] == ["book-bread"]
    rows = wait_for_results(page)
    assert "book-bread" not in [row["id"] for row in rows]
    unliked = page.locator("#unlike-list li.chip")
    expect(unliked).to_have_count(1)
    expect(unliked).to_have_attribute("data-id", "book-bread")
    expect(unliked).to_contain_text(site.items["book-bread"])
    screenshot(page, artifacts_dir, "similar-more-less")


def test_attribute_filter_limits_results(page: Page, site: BrowserSite) -> None:
    """An attribute filter sends `where` and leaves only matching items."""
    open_similar(page, site, trend=False)
    page.click("#add-filter")
    page.fill("#filters .filter-key", "category")
    page.fill("#filters .filter-value", "music")
    body = pick_item(page, "python", "book-python")
    assert body["where"] == {"category": "music"}
    rows = wait_for_results(page)
    assert sorted(row["id"] for row in rows) == ["music-guitar", "music-jazz"]
    assert all(row["attributes"] == "category: music" for row in rows)


def test_api_errors_are_shown_on_the_page(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """A refused search shows the API's status, message and field, and no stale results."""
    open_similar(page, site, trend=False)
    pick_item(page, "guitar", "music-guitar")
    assert len(wait_for_results(page)) == K
    page.fill("#k", "500")
    with page.expect_response(lambda r: is_search(r.request)) as response:
        page.click("#search")
    assert response.value.status == 400
    error = page.locator("#search-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Error 400")
    expect(error).to_contain_text("must be an integer from 1 to 100")
    # The API's detail names the field at fault; the earlier results are gone.
    expect(error.locator("li")).to_have_text(["k: must be an integer from 1 to 100"])
    expect(page.locator("tr.result-row")).to_have_count(0)
    expect(page.locator("#similar-app")).to_have_attribute("data-state", "error")
    screenshot(page, artifacts_dir, "similar-error")
