"""Editors build a dashboard in Chromium; leaving unsaved asks; a viewer cannot edit; Explore adds a
view; two editors clash."""

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from analytics.models import Membership, Project
from analytics.services.tenants import add_member
from dashboards.models import Dashboard, Panel
from tests.browser.conftest import TIMEOUT_MS, VIEWPORT
from tests.browser.pages import screenshot
from tests.browser.site import BrowserSite

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

EDITORS = {"browser-editor-a": "editor-a-pass-5521", "browser-editor-b": "editor-b-pass-7734"}
# The tag values of http.requests in the browser site (tests/browser/site.py).
CATALOG_VALUES = {
    "region": ("eu", "us"),
    "endpoint": ("/api/items", "/checkout"),
    "status": ("200", "500"),
}
README_SHOT = Path(__file__).resolve().parents[2] / "dashboards/static/dashboards/docs"


@pytest.fixture(scope="module")
def editors(site: BrowserSite, django_db_blocker: Any) -> Iterator[list[str]]:
    """Two editors of the browser project, committed for the server, removed afterwards."""
    with django_db_blocker.unblock():
        project = Project.objects.get(pk=site.project_id)
        for name, password in EDITORS.items():
            User.objects.filter(username=name).delete()
            user = User.objects.create_user(name, password=password)
            add_member(project=project, user=user, role=Membership.Role.EDITOR)
    yield list(EDITORS)
    with django_db_blocker.unblock():
        User.objects.filter(username__in=list(EDITORS)).delete()
        Dashboard.objects.filter(project_id=site.project_id, title__startswith="Built ").delete()


def login(browser: Browser, server: str, username: str) -> BrowserContext:
    context = browser.new_context(base_url=server, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto("/dashboards/")
    page.fill("#login-form input[name=username]", username)
    page.fill("#login-form input[name=password]", EDITORS[username])
    page.click("#login-form button[type=submit]")
    page.wait_for_url("**/dashboards/")
    return context


def watch_errors(page: Page) -> list[str]:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def wait_drawn(page: Page, count: int) -> None:
    page.wait_for_function(
        """(n) => document.querySelectorAll('#edit-grid section.panel').length === n &&
             document.querySelectorAll('#edit-grid section.panel[data-state=ready]').length === n""",
        arg=count,
    )


def add_filter(page: Page, *, key: str, op: str, value: str) -> None:
    """Add a filter row, picking its key and value among what the catalog offers."""
    page.click("#pe-add-filter")
    row = page.locator(".filter-row").last
    # Keys are the metric's tag keys from the catalog (a select, not free text).
    for catalog_key in ("endpoint", "region", "status"):
        expect(row.locator(f".filter-key option[value='{catalog_key}']")).to_have_count(1)
    row.locator(".filter-key").select_option(key)
    row.locator(".filter-op").select_option(op)

    def offered(option: str) -> Any:
        return row.locator(f'datalist option[value="{option}"]')

    if op == "in":
        # `in` offers the list typed so far plus each value not in it yet.
        first = value.split(",")[0]
        row.locator(".filter-value").press_sequentially(f"{first},", delay=20)
        expect(offered(value)).to_have_count(1)
        expect(offered(f"{first},{first}")).to_have_count(0)
    else:
        # The key's values from the catalog, and the dashboard's variables.
        for catalog_value in CATALOG_VALUES[key]:
            expect(offered(catalog_value)).to_have_count(1)
        expect(offered("$region")).to_have_count(1)
    row.locator(".filter-value").fill(value)


def add_panel(
    page: Page,
    *,
    title: str,
    kind: str = "line",
    group_by: str = "",
    filters: tuple[tuple[str, str, str], ...] = (),
) -> None:
    page.click("#add-panel")
    expect(page.locator("#panel-editor")).to_be_visible()
    page.fill("#pe-title", title)
    # Typed like a user: the catalog search fills the suggestions as the text grows.
    page.locator("#pe-metric").press_sequentially("http.req", delay=20)
    expect(page.locator("#pe-metric-list option[value='http.requests']")).to_have_count(1)
    page.fill("#pe-metric", "http.requests")
    page.dispatch_event("#pe-metric", "change")
    expect(page.locator("#pe-group-by option[value=region]")).to_have_count(1)
    page.select_option("#pe-agg", "sum")
    for key, op, value in filters:
        add_filter(page, key=key, op=op, value=value)
    if group_by:
        page.select_option("#pe-group-by", group_by)
        page.fill("#pe-limit", "5")
    page.select_option("#pe-kind", kind)
    expect(page.locator("#panel-editor")).to_have_attribute("data-state", "ready")
    expect(page.locator("#pe-preview-status")).to_contain_text("buckets")
    page.click("#pe-apply")
    expect(page.locator("#panel-editor")).to_be_hidden()


def layout(page: Page) -> dict[str, tuple[str | None, ...]]:
    items = page.locator("#edit-grid .grid-stack-item").all()
    return {
        item.locator(".panel-title").inner_text(): tuple(
            item.get_attribute(name) for name in ("gs-x", "gs-y", "gs-w", "gs-h")
        )
        for item in items
    }


def test_editor_builds_a_dashboard_and_restores_a_version(
    browser: Browser, server: str, site: BrowserSite, editors: list[str], artifacts_dir: Path
) -> None:
    """Create, add three panels, move and resize, reload the same layout, restore version 1."""
    context = login(browser, server, editors[0])
    page = context.new_page()
    errors = watch_errors(page)
    page.goto("/dashboards/")
    page.fill("#new-dashboard-title", "Built in the browser")
    screenshot(page, artifacts_dir, "editor-01-new-dashboard")
    page.click("#new-dashboard")
    page.wait_for_url(re.compile(r".*/dashboards/built-in-the-browser[-0-9]*/edit/$"))
    expect(page.locator("body")).to_have_attribute("data-editor-ready", "1")

    page.click("#open-settings")
    # Version 1 is the empty dashboard under its first title; the saves below rename it.
    page.fill("#st-title", "Built in the browser: traffic")
    page.fill("#st-description", "made by the browser test")
    page.click("#st-add-variable")
    row = page.locator(".variable-row").first
    row.locator(".var-name").fill("region")
    row.locator(".var-metric").fill("http.requests")
    row.locator(".var-metric").dispatch_event("change")
    # The variable's tag key is offered from the metric's keys in the catalog.
    expect(row.locator('datalist option[value="region"]')).to_have_count(1)
    row.locator(".var-tag").fill("bad key with $")  # accepted: any tag text is a key
    row.locator(".var-tag").fill("region")
    page.fill("#st-from", "yesterday")
    page.click("#st-apply")
    expect(page.locator("#st-default_from-error")).not_to_be_empty()
    screenshot(page, artifacts_dir, "editor-02-settings-refused")
    page.fill("#st-from", "now-6h")
    page.click("#st-apply")
    expect(page.locator("#settings-editor")).to_be_hidden()

    add_panel(page, title="Requests in region", filters=(("region", "=", "$region"),))
    add_panel(
        page,
        title="Requests by endpoint",
        kind="stacked_bar",
        group_by="endpoint",
        filters=(("region", "in", "eu,us"), ("status", "!=", "500")),
    )
    page.click("#add-panel")
    page.fill("#pe-bucket", "7s")
    page.fill("#pe-metric", "http.requests")
    page.dispatch_event("#pe-metric", "change")
    expect(page.locator("#pe-bucket-error")).not_to_be_empty()
    screenshot(page, artifacts_dir, "editor-03-invalid-bucket")
    page.click("#pe-discard")
    add_panel(page, title="Requests now", kind="single_stat")
    wait_drawn(page, 3)
    page.fill("#save-message", "three panels")
    page.click("#save-dashboard")
    expect(page.locator("#save-status")).to_have_text("Saved version 2")
    screenshot(page, artifacts_dir, "editor-04-three-panels")
    slug = page.url.rstrip("/").split("/")[-2]
    saved = dict(
        Panel.objects.filter(
            dashboard__project_id=site.project_id, dashboard__slug=slug
        ).values_list("title", "filters")
    )
    assert saved == {
        "Requests in region": ["region:$region"],
        "Requests by endpoint": ["region:in(eu,us)", "status!=500"],
        "Requests now": [],
    }, saved

    # Resize the first panel from its corner handle, then drag the single stat down.
    item = page.locator("#edit-grid .grid-stack-item", has_text="Requests in region")
    item.hover()
    handle = item.locator(".ui-resizable-se")
    box = handle.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 300, box["y"] + 100, steps=12)
    page.mouse.up()
    stat = page.locator("#edit-grid .grid-stack-item", has_text="Requests now")
    header = stat.locator(".panel-title").bounding_box()
    assert header is not None
    page.mouse.move(header["x"] + 10, header["y"] + 5)
    page.mouse.down()
    page.mouse.move(header["x"] + 10, header["y"] + 600, steps=15)
    page.mouse.up()
    expect(page.locator("body")).to_have_attribute("data-dirty", "1")
    moved = layout(page)
    assert moved["Requests in region"][2] != "6", moved
    page.fill("#save-message", "moved and resized")
    page.click("#save-dashboard")
    expect(page.locator("#save-status")).to_have_text("Saved version 3")
    screenshot(page, artifacts_dir, "editor-05-moved-and-resized")
    page.reload()
    wait_drawn(page, 3)
    assert layout(page) == moved
    screenshot(page, artifacts_dir, "editor-06-reloaded-same-layout")
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        # Only on request: a normal run must not rewrite a tracked file.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=README_SHOT / "editor.png")
    # A saved panel reopens in the editor with its filter as chosen, and its preview.
    page.locator("#edit-grid .grid-stack-item", has_text="Requests in region").locator(
        ".panel-edit"
    ).click()
    expect(page.locator("#panel-editor")).to_have_attribute("data-state", "ready")
    expect(page.locator(".filter-row .filter-key")).to_have_value("region")
    expect(page.locator(".filter-row .filter-value")).to_have_value("$region")
    screenshot(page, artifacts_dir, "editor-07-panel-editor")
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=README_SHOT / "panel-editor.png")
    page.click("#pe-discard")
    expect(page.locator("#panel-editor")).to_be_hidden()

    page.click("#done-editing")
    page.wait_for_url(re.compile(r".*/dashboards/built-in-the-browser[-0-9]*/$"))
    expect(page.locator("#dashboard-title")).to_have_text("Built in the browser: traffic")
    expect(page.locator("section.panel")).to_have_count(3)
    page.click("#history-link")
    expect(page.locator(".version-row")).to_have_count(3)
    page.check(".version-row[data-version='1'] input[name=a]")
    page.check(".version-row[data-version='3'] input[name=b]")
    page.click("#compare-versions")
    expect(page.locator("#diff-added li")).to_have_count(3)
    expect(page.locator("#diff-added")).to_contain_text("Requests in region")
    title_change = page.locator(".diff-dashboard", has_text="title")
    expect(title_change).to_contain_text("Built in the browser")
    expect(title_change).to_contain_text("Built in the browser: traffic")
    screenshot(page, artifacts_dir, "editor-08-history-diff")
    page.click(".restore-button[data-version='1']")
    page.wait_for_url(re.compile(r".*/dashboards/built-in-the-browser[-0-9]*/$"))
    # The page shows version 1: its title, no panels, none of version 2's settings.
    expect(page.locator("#dashboard-title")).to_have_text("Built in the browser")
    expect(page.locator("#no-panels")).to_be_visible()
    expect(page.locator("section.panel")).to_have_count(0)
    expect(page.locator(".variable-select")).to_have_count(0)
    screenshot(page, artifacts_dir, "editor-09-restored-version-1")
    # Restoring wrote a new version; the versions it replaced are still there.
    page.click("#history-link")
    expect(page.locator(".version-row")).to_have_count(4)
    restored = page.locator(".version-row[data-version='4']")
    expect(restored).to_contain_text("restored version 1")
    expect(restored).to_contain_text("(current)")
    expect(restored).to_contain_text(editors[0])
    expect(page.locator(".version-row[data-version='3']")).to_contain_text("moved and resized")
    assert not errors, errors
    context.close()


# Each y-axis label of a panel's chart, and whether it lies wholly inside the chart's SVG.
# The share of the chart's box that the drawn plot covers (height), 1 when it fills it.
CHART_FILL_JS = """
(section) => {
  const box = section.querySelector('.panel-chart').getBoundingClientRect();
  const svg = section.querySelector('svg.main-svg').getBoundingClientRect();
  return box.height > 0 ? svg.height / box.height : 0;
}
"""

ROW_LABELS_JS = """
(section) => {
  const svg = section.querySelector('svg.main-svg').getBoundingClientRect();
  return Array.from(section.querySelectorAll('g.ytick text'), (text) => {
    const box = text.getBoundingClientRect();
    return {text: text.textContent, inside: box.left >= svg.left && box.right <= svg.right};
  });
}
"""


def test_leaving_with_unsaved_changes_asks_first(
    browser: Browser, server: str, editors: list[str], artifacts_dir: Path
) -> None:
    """Unsaved edits stay in the open editor and leaving asks first; once saved, it does not."""
    context = login(browser, server, editors[0])
    page = context.new_page()
    errors = watch_errors(page)
    dialogs: list[tuple[str, str]] = []

    def stay(dialog: Dialog) -> None:
        dialogs.append((dialog.type, dialog.message))
        dialog.dismiss()  # "Stay on this page" / "Cancel"

    page.on("dialog", stay)
    page.goto("/dashboards/")
    page.fill("#new-dashboard-title", "Built to leave")
    page.click("#new-dashboard")
    page.wait_for_url("**/edit/")
    edit_url = page.url
    expect(page.locator("body")).to_have_attribute("data-editor-ready", "1")
    add_panel(page, title="Requests, not saved yet", kind="heatmap", group_by="endpoint")
    expect(page.locator("body")).to_have_attribute("data-dirty", "1")
    wait_drawn(page, 1)
    # The chart fills its box, and the heatmap's row labels are drawn whole (the left margin
    # grows to fit them). The grid sizes a new widget after it is added, and the chart is
    # redrawn at the final size: give that redraw a moment (bounded).
    section = page.locator("#edit-grid section.panel")
    with contextlib.suppress(PlaywrightTimeoutError):
        page.wait_for_function(
            f"""(section) => ({CHART_FILL_JS})(section) > 0.9 &&
                ({ROW_LABELS_JS})(section).every((label) => label.inside)""",
            arg=section.element_handle(),
            timeout=5000,
        )
    assert section.evaluate(CHART_FILL_JS) > 0.9
    labels = section.evaluate(ROW_LABELS_JS)
    assert sorted(label["text"] for label in labels) == ["/api/items", "/checkout"], labels
    assert all(label["inside"] for label in labels), labels

    # A link out of the editor: the browser's leave-page prompt (beforeunload).
    with page.expect_event("dialog") as leaving:
        page.click("#nav-dashboards", no_wait_after=True)
    assert leaving.value.type == "beforeunload"
    # Closing the tab asks the same.
    with page.expect_event("dialog") as closing:
        page.close(run_before_unload=True)
    assert closing.value.type == "beforeunload"
    # The editor's own Done button asks in its words.
    with page.expect_event("dialog") as done:
        page.click("#done-editing", no_wait_after=True)
    assert done.value.type == "confirm"
    assert "unsaved changes" in done.value.message
    # Having stayed each time, the edit is still there, unsaved.
    assert not page.is_closed()
    assert page.url == edit_url
    expect(page.locator("#edit-grid section.panel .panel-title")).to_have_text(
        "Requests, not saved yet"
    )
    expect(page.locator("body")).to_have_attribute("data-dirty", "1")
    screenshot(page, artifacts_dir, "editor-10-unsaved-kept-after-prompt")
    assert [kind for kind, _ in dialogs] == ["beforeunload", "beforeunload", "confirm"]

    page.click("#save-dashboard")
    expect(page.locator("#save-status")).to_have_text("Saved version 2")
    expect(page.locator("body")).to_have_attribute("data-dirty", "0")
    page.click("#nav-dashboards")
    page.wait_for_url("**/dashboards/")
    expect(page.locator(".dashboard-row", has_text="Built to leave")).to_have_count(1)
    assert len(dialogs) == 3, dialogs  # saved: nothing asked
    assert not errors, errors
    context.close()


def test_viewer_sees_no_edit_control_and_cannot_post(
    page: Page, site: BrowserSite, artifacts_dir: Path
) -> None:
    """The plain member (a viewer) has no Edit button, and a posted save is refused 403."""
    page.goto(f"/p/{site.project_slug}/dashboards/{site.dashboard_slug}/")
    expect(page.locator("#history-link")).to_be_visible()
    expect(page.locator("#edit-dashboard, .edit-control, #new-dashboard")).to_have_count(0)
    screenshot(page, artifacts_dir, "viewer-no-edit-controls")
    status = page.evaluate(
        """async (url) => {
            const token = document.querySelector('input[name=csrfmiddlewaretoken]').value;
            const response = await fetch(url, {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json', 'X-CSRFToken': token},
              body: JSON.stringify({document: {title: 'hacked'}, base_version: 0})});
            return [response.status, await response.text()];
        }""",
        f"/p/{site.project_slug}/dashboards/{site.dashboard_slug}/save",
    )
    assert status[0] == 403, status
    page.reload()
    expect(page.locator("#dashboard-title")).to_have_text("Shop overview")


def test_explore_drills_into_a_value_and_adds_the_view(
    browser: Browser, server: str, site: BrowserSite, editors: list[str], artifacts_dir: Path
) -> None:
    """Explore breaks http.requests down by tag, a click filters, Add makes a panel."""
    context = login(browser, server, editors[1])
    page = context.new_page()
    errors = watch_errors(page)
    page.goto("/dashboards/")
    page.fill("#new-dashboard-title", "Built from Explore")
    page.click("#new-dashboard")
    page.wait_for_url("**/edit/")
    page.goto(f"/p/{site.project_slug}/explore/?metric=http.requests")
    expect(page.locator("body")).to_have_attribute("data-explore-state", "ready")
    expect(page.locator(".breakdown[data-key=region] .breakdown-value")).to_have_count(2)
    screenshot(page, artifacts_dir, "explore-01-breakdowns")
    page.click(".breakdown[data-key=region] .breakdown-value[data-value=eu]")
    page.wait_for_url(re.compile(r".*where=region%3Aeu.*"))
    expect(page.locator("body")).to_have_attribute("data-explore-state", "ready")
    expect(page.locator(".filter-chip[data-where='region:eu']")).to_be_visible()
    expect(page.locator(".breakdown[data-key=region]")).to_have_count(0)
    screenshot(page, artifacts_dir, "explore-02-filtered")
    page.reload()  # the state is in the URL
    expect(page.locator(".filter-chip[data-where='region:eu']")).to_be_visible()
    page.select_option("#explore-dashboard", label="Built from Explore")
    page.click("#explore-add")
    page.wait_for_url(re.compile(r".*/dashboards/built-from-explore[-0-9]*/$"))
    expect(page.locator("section.panel .panel-title")).to_have_text("http.requests (region:eu)")
    expect(page.locator("section.panel")).to_have_attribute("data-state", "ready")
    screenshot(page, artifacts_dir, "explore-03-added-to-dashboard")
    assert not errors, errors
    context.close()


def test_two_editors_second_save_gets_409_and_keeps_both(
    browser: Browser, server: str, site: BrowserSite, editors: list[str], artifacts_dir: Path
) -> None:
    """Both open the editor; A saves; B's save is 409 naming A, and B saves a copy."""
    first, second = (login(browser, server, name) for name in editors)
    page_a = first.new_page()
    page_a.goto("/dashboards/")
    page_a.fill("#new-dashboard-title", "Built for a clash")
    page_a.click("#new-dashboard")
    page_a.wait_for_url("**/edit/")
    edit_url = page_a.url
    page_b = second.new_page()
    page_b.goto(edit_url)
    expect(page_b.locator("body")).to_have_attribute("data-editor-ready", "1")

    page_a.click("#open-settings")
    page_a.fill("#st-description", "A's description")
    page_a.click("#st-apply")
    page_a.click("#save-dashboard")
    expect(page_a.locator("#save-status")).to_have_text("Saved version 2")

    page_b.click("#open-settings")
    page_b.fill("#st-title", "Built for a clash, B's title")
    page_b.click("#st-apply")
    page_b.click("#save-dashboard")
    expect(page_b.locator("#conflict-banner")).to_be_visible()
    expect(page_b.locator("#conflict-text")).to_contain_text(f"{editors[0]} saved version 2")
    screenshot(page_b, artifacts_dir, "conflict-409")
    page_b.click("#conflict-copy")
    page_b.wait_for_url(re.compile(r".*/dashboards/built-for-a-clash-bs-title-copy[-0-9]*/edit/$"))
    expect(page_b.locator("#dashboard-title")).to_have_text("Built for a clash, B's title (copy)")
    page_a.reload()
    expect(page_a.locator("#dashboard-title")).to_have_text("Built for a clash")
    page_a.click("#open-settings")
    expect(page_a.locator("#st-description")).to_have_value("A's description")
    first.close()
    second.close()
