"""Browser tests: the dashboard in the system Chromium, driven by Playwright (sync API), against
a real stack (web server, Celery workers, Redis) started with the integration tests' ``Stack``.

Each page gets an init script that records, before any of the page's own code runs, every job
event the dashboard applies (its ``jobcast:applied`` events), every value its progress bars
take, and every system notification it creates, so the tests can check what the user saw.
Screenshots go to ``test-artifacts/browser/``; a failing test leaves one there as well.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from jobcast.llm.fake_provider import FakeProvider
from tests.conftest import CHROMIUM
from tests.integration.conftest import ROOT, Stack
from tests.integration.support import Api

HERE = Path(__file__).parent
ARTIFACTS = ROOT / "test-artifacts" / "browser"
PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 900}

RECORDER = """
(() => {
  const seen = { applied: [], bars: [], notes: [] };
  window.__jobcast = seen;
  document.addEventListener("jobcast:applied", (event) => seen.applied.push(event.detail));
  new MutationObserver((records) => {
    for (const record of records) {
      const bar = record.target;
      if (!bar.matches || !bar.matches("progress.job-bar")) continue;
      const row = bar.closest("li.job");
      const value = Number(bar.getAttribute("value"));
      seen.bars.push({ job_id: row && row.dataset.jobId, value });
    }
  }).observe(document, { attributes: true, attributeFilter: ["value"], subtree: true });
  if ("Notification" in window) {
    const Native = window.Notification;
    window.Notification = class extends Native {
      constructor(title, options) {
        seen.notes.push({ title, body: (options && options.body) || "" });
        super(title, options);
      }
    };
  }
})();
"""

# What a browser does when the user switches to another tab or app; headless pages are always
# visible and focused, so the tests say so for them.
LOOK_AWAY = """
(away) => {
  const state = { visibilityState: away ? "hidden" : "visible", hidden: away };
  for (const [name, value] of Object.entries(state)) {
    Object.defineProperty(document, name, { configurable: true, get: () => value });
  }
  document.hasFocus = () => !away;
  document.dispatchEvent(new Event("visibilitychange"));
  window.dispatchEvent(new Event(away ? "blur" : "focus"));
}
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CHROMIUM.exists():
        return
    skip = pytest.mark.skip(
        reason=f"the browser tests need the system Chromium at {CHROMIUM}"
        " (apt-get install chromium); .ci/run installs it"
    )
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


class Dashboard:
    """One browser tab on the dashboard, and the actions a user takes there."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url
        self.email = ""
        self.errors: list[str] = []  # uncaught exceptions in the page's scripts
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    # --- signing in ---------------------------------------------------------------------------

    def sign_up(self) -> Dashboard:
        """Register through the pages, from the dashboard's redirect to the live dashboard."""
        self.email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        self.page.goto("/")
        self.page.wait_for_url("**/signin")
        self.page.get_by_role("link", name="Create an account").click()
        self.page.get_by_label("Email").fill(self.email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Create account").click()
        self.page.wait_for_url(f"{self.base_url}/")
        self.wait_connection("live")
        expect(self.page.locator("#account-email")).to_have_text(self.email)
        return self

    def api(self) -> Api:
        """The same user, signed in over HTTP (for seeding and checking)."""
        api = Api(self.base_url, email=self.email)
        tokens = api.post(
            "/api/v1/auth/login", json={"email": self.email, "password": PASSWORD}, auth=False
        ).json()
        api.token = tokens["access_token"]
        return api

    # --- launching and watching jobs ----------------------------------------------------------

    def fill_launcher(self, job_type: str, **params: Any) -> None:
        self.page.get_by_label("Job type").select_option(job_type)
        for name, value in params.items():
            field = self.page.locator(f"#param-{name}")
            if field.evaluate("node => node.tagName") == "SELECT":
                field.select_option(str(value))
            else:
                field.fill(str(value))

    def launch(self, job_type: str, **params: Any) -> str:
        """Start a job from the launcher; returns its id once its row is on the page."""
        before = self.job_ids()
        self.fill_launcher(job_type, **params)
        self.page.get_by_role("button", name="Start job").click()
        self.page.wait_for_function(
            "n => document.querySelectorAll('li.job').length > n", arg=len(before)
        )
        job_id = self.page.locator("li.job").first.get_attribute("data-job-id")
        assert job_id and job_id not in before
        return job_id

    def job_ids(self) -> list[str]:
        ids: list[str] = self.page.locator("li.job").evaluate_all(
            "rows => rows.map(row => row.dataset.jobId)"
        )
        return ids

    def row(self, job_id: str) -> Locator:
        return self.page.locator(f'li.job[data-job-id="{job_id}"]')

    def wait_status(self, job_id: str, status: str, timeout: float = 60) -> Locator:
        row = self.row(job_id)
        expect(row).to_have_attribute("data-status", status, timeout=timeout * 1000)
        return row

    def wait_progress(self, job_id: str, at_least: float, timeout: float = 30) -> None:
        self.page.wait_for_function(
            """([id, least]) => {
              const bar = document.querySelector(`li.job[data-job-id="${id}"] progress`);
              return bar && bar.value >= least;
            }""",
            arg=[job_id, at_least],
            timeout=timeout * 1000,
        )

    def wait_connection(self, state: str, timeout: float = 20) -> None:
        expect(self.page.locator("#connection")).to_have_attribute(
            "data-state", state, timeout=timeout * 1000
        )

    # --- what the page recorded ---------------------------------------------------------------

    def applied(self, job_id: str | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.page.evaluate("window.__jobcast.applied")
        return [e for e in events if job_id is None or e["job_id"] == job_id]

    def bar_values(self, job_id: str) -> list[float]:
        bars = self.page.evaluate("window.__jobcast.bars")
        return [b["value"] for b in bars if b["job_id"] == job_id]

    def notifications(self) -> list[dict[str, str]]:
        notes: list[dict[str, str]] = self.page.evaluate("window.__jobcast.notes")
        return notes

    def look_away(self, away: bool = True) -> None:
        self.page.evaluate(LOOK_AWAY, away)

    def screenshot(self, name: str, **options: Any) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), **options)
        return path


def stack_env() -> dict[str, str]:
    """What the browser tests' stacks run: the built-in jobs and the test jobs (failing ones)."""
    return {
        "JOBCAST_JOB_MODULES": "jobcast.service.builtin,tests.integration.jobs",
        "JOBCAST_IO_CONCURRENCY": "20",
        "JOBCAST_CPU_CONCURRENCY": "2",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


@pytest.fixture(scope="session")
def llm_provider() -> Iterator[FakeProvider]:
    """A fake model slow enough that a person (and a test) sees its answer grow."""
    with FakeProvider(tokens_per_second=20) as fake:
        yield fake


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, llm_provider: FakeProvider) -> Iterator[Stack]:
    """A stack of the browser tests' own: own Redis, database and processes.

    Not the integration tests' ``stack`` fixture re-exported: a fixture imported into this
    conftest is a second fixture with a cache of its own, so a run of the whole suite would
    start two stacks on the session's one Redis, and each one's workers would take the other's
    jobs. With its own Redis this stack shares nothing.
    """
    env = {**stack_env(), "JOBCAST_LLM_BASE_URL": llm_provider.url}
    with Stack(tmp_path_factory.mktemp("browser-stack"), env_overrides=env) as running:
        yield running


@pytest.fixture(scope="session")
def server_app(stack: Stack) -> Flask:
    """The stack's settings in an in-process app, to seed and read its database."""
    return stack.app()


@pytest.fixture
def open_dashboard(
    browser: Browser, stack: Stack, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Dashboard]]:
    """Open a new browser context (a separate user agent: own storage, own user) on a stack."""
    contexts: list[tuple[BrowserContext, Dashboard]] = []

    def open_(base_url: str | None = None, **context: Any) -> Dashboard:
        url = base_url or stack.base_url
        context.setdefault("viewport", DESKTOP)
        ctx = browser.new_context(base_url=url, **context)
        ctx.set_default_timeout(20_000)
        ctx.add_init_script(RECORDER)
        page = ctx.new_page()
        dashboard = Dashboard(page, url)
        contexts.append((ctx, dashboard))
        return dashboard

    yield open_
    failed = request.node.stash.get(_FAILED, False)
    errors = []
    for n, (ctx, dashboard) in enumerate(contexts):
        if failed:
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            dashboard.screenshot(f"FAILED-{name}-{n}", full_page=True)
        errors += dashboard.errors
        ctx.close()
    assert not errors, f"the page's scripts raised: {errors}"


@pytest.fixture
def dashboard(open_dashboard: Callable[..., Dashboard]) -> Dashboard:
    """A new user, signed up through the pages, on the live dashboard."""
    return open_dashboard().sign_up()


def docs_screenshot_requested() -> bool:
    """``JOBCAST_DOCS_SCREENSHOT=1`` refreshes docs/dashboard.png from the tests."""
    return os.environ.get("JOBCAST_DOCS_SCREENSHOT") == "1"
