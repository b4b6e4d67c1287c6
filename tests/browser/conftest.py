"""Browser tests: gunicorn and a Celery worker on the test database, Debian's Chromium via Playwright.

Everything heavy is package-scoped: the data is committed once (outside any test
transaction, so the server process sees it), one browser serves every test, and each
test gets a fresh context that reuses the login's storage state. Sync Playwright keeps
an event loop running in this thread while it is up, which Django's async-safety check
mistakes for async code, so that check is lifted for the lifetime of this package only
(and the browser is closed before any other package's tests run).
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.browser.site import BrowserSite, build_site, remove_site
from tests.helpers import running_gunicorn, worker_environment

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
# Two shared cores in CI: a dashboard's panels may take seconds to answer under load.
TIMEOUT_MS = 20_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "browser: drives Debian's Chromium with Playwright (part of the normal run)"
    )


@pytest.fixture(scope="package")
def artifacts_dir() -> Path:
    """The folder screenshots go to: $BROWSER_ARTIFACTS_DIR or <repo>/test-artifacts/browser."""
    folder = Path(os.environ.get("BROWSER_ARTIFACTS_DIR") or ROOT / "test-artifacts" / "browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="package")
def _async_unsafe_allowed() -> Iterator[None]:
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def site(
    django_db_setup: None,
    django_db_blocker: Any,
    celery_worker: subprocess.Popen[bytes],
    _async_unsafe_allowed: None,
) -> Iterator[BrowserSite]:
    """A member, the demo dashboards with points, and embedded items, committed for the server."""
    with django_db_blocker.unblock():
        built = build_site()
    yield built
    with django_db_blocker.unblock():
        remove_site(built)


@pytest.fixture(scope="package")
def server(
    site: BrowserSite, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Serve the app with gunicorn on the test database and yield its base URL."""
    log = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    with django_db_blocker.unblock():
        env = worker_environment()
    # Threads let a dashboard's panels load in parallel on the one worker process.
    with running_gunicorn(env=env, log=log, workers=1, threads=8) as url:
        yield url


@pytest.fixture(scope="package")
def browser(_async_unsafe_allowed: None) -> Iterator[Browser]:
    """One headless Debian Chromium for the whole package; never a downloaded browser."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's chromium package, "
            "which `scripts/stack.sh setup` installs (apt-get install chromium)"
        )
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def login_state(
    browser: Browser,
    server: str,
    site: BrowserSite,
    artifacts_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """Log in once through the login form and keep the session cookie for every test."""
    context = browser.new_context(base_url=server, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto("/dashboards/")
        # Anonymous: the page sends us to the members' login form, which brings us back.
        assert urlparse(page.url).path == resolve_url(settings.LOGIN_URL), page.url
        page.fill("#login-form input[name=username]", site.username)
        page.fill("#login-form input[name=password]", site.password)
        page.screenshot(path=artifacts_dir / "login.png", full_page=True)
        page.click("#login-form button[type=submit]")
        page.wait_for_url("**/dashboards/")
        expect(page.locator("#user-menu")).to_contain_text(site.username)
        state = tmp_path_factory.mktemp("browser") / "storage-state.json"
        context.storage_state(path=state)
    finally:
        context.close()
    return state


@pytest.fixture
def js_errors() -> list[str]:
    """Uncaught exceptions and console errors of the test's page (HTTP statuses are not here)."""
    return []


@pytest.fixture
def page(browser: Browser, server: str, login_state: Path, js_errors: list[str]) -> Iterator[Page]:
    """A logged-in page in a fresh context; a JavaScript error fails the test."""
    context = browser.new_context(base_url=server, storage_state=login_state, viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda error: js_errors.append(f"uncaught: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        # A 4xx/5xx answer is logged as "Failed to load resource"; tests assert statuses.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            js_errors.append(f"console: {message.text}")

    page.on("console", on_console)
    yield page
    context.close()
    assert not js_errors, f"JavaScript errors on the page: {js_errors}"
