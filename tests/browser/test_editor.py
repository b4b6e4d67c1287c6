"""Editors build a dashboard in Chromium; a viewer cannot; Explore adds a view; two editors clash."""

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, BrowserContext, Page, expect

from analytics.models import Membership, Project
from analytics.services.tenants import add_member
from dashboards.models import Dashboard
from tests.browser.conftest import TIMEOUT_MS, VIEWPORT
from tests.browser.pages import screenshot
from tests.browser.site import BrowserSite

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

EDITORS = {"browser-editor-a": "editor-a-pass-5521", "browser-editor-b": "editor-b-pass-7734"}
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


def add_panel(
    page: Page, *, title: str, kind: str = "line", group_by: str = "", variable_filter: bool = False
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
    if variable_filter:
        page.click("#pe-add-filter")
        page.fill(".filter-row .filter-key", "region")
        page.fill(".filter-row .filter-value", "$region")
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
    page.fill("#st-description", "made by the browser test")
    page.click("#st-add-variable")
    row = page.locator(".variable-row").first
    row.locator(".var-name").fill("region")
    row.locator(".var-metric").fill("http.requests")
    row.locator(".var-tag").fill("bad key with $")  # accepted: any tag text is a key
    row.locator(".var-tag").fill("region")
    page.fill("#st-from", "yesterday")
    page.click("#st-apply")
    expect(page.locator("#st-default_from-error")).not_to_be_empty()
    screenshot(page, artifacts_dir, "editor-02-settings-refused")
    page.fill("#st-from", "now-6h")
    page.click("#st-apply")
    expect(page.locator("#settings-editor")).to_be_hidden()

    add_panel(page, title="Requests in region", variable_filter=True)
    add_panel(page, title="Requests by endpoint", kind="stacked_bar", group_by="endpoint")
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
    page.click("#save-dashboard")
    expect(page.locator("#save-status")).to_have_text("Saved version 3")
    screenshot(page, artifacts_dir, "editor-05-moved-and-resized")
    page.reload()
    wait_drawn(page, 3)
    assert layout(page) == moved
    screenshot(page, artifacts_dir, "editor-06-reloaded-same-layout")
    if os.environ.get("UPDATE_README_SCREENSHOT"):
        # Only on request: a normal run must not rewrite a tracked file.
        page.screenshot(path=README_SHOT / "editor.png")

    page.click("#done-editing")
    page.wait_for_url(re.compile(r".*/dashboards/built-in-the-browser[-0-9]*/$"))
    page.click("#history-link")
    expect(page.locator(".version-row")).to_have_count(3)
    page.check(".version-row[data-version='1'] input[name=a]")
    page.check(".version-row[data-version='3'] input[name=b]")
    page.click("#compare-versions")
    expect(page.locator("#diff-added")).to_contain_text("Requests in region")
    screenshot(page, artifacts_dir, "editor-07-history-diff")
    page.click(".restore-button[data-version='1']")
    page.wait_for_url(re.compile(r".*/dashboards/built-in-the-browser[-0-9]*/$"))
    expect(page.locator("#no-panels")).to_be_visible()
    screenshot(page, artifacts_dir, "editor-08-restored-version-1")
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
