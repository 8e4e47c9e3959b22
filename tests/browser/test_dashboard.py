"""The dashboard in a real browser: what a person sees while their jobs run.

Every test signs a new user up through the pages and drives the page as a user would; the
stack behind it is the real one (web server, Celery workers, Redis), so progress arrives over
Socket.IO from a worker, exactly as in production.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from tests.browser.conftest import ROOT, Dashboard, docs_screenshot_requested, stack_env
from tests.integration.conftest import Stack
from tests.integration.data import CSV_HEADER, StackData
from tests.integration.support import Api

DURATION = re.compile(r"^\d+:\d\d$")


def recorded_events(api: Api, job_id: str) -> list[tuple[int, str]]:
    """(seq, event) of every event in the job's log, read over SSE like any client."""
    events, fields = [], {}
    with api.get(f"/api/v1/jobs/{job_id}/events", stream=True) as response:
        for line in response.iter_lines(decode_unicode=True):
            if line == "" and "event" in fields:
                # The id is <epoch>-<seq>.
                events.append((int(fields["id"].rpartition("-")[2]), fields["event"]))
            if line == "":
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return events


def assert_every_event_applied_once(dashboard: Dashboard, job_id: str) -> None:
    """The page applied seq 1, 2, ... N, each once, and N is the last event the server has."""
    applied = [e["seq"] for e in dashboard.applied(job_id)]
    recorded = recorded_events(dashboard.api(), job_id)
    assert applied == [seq for seq, _ in recorded], (applied, recorded)
    assert applied == list(range(1, len(applied) + 1))


# --- (a) a job from start to finish ---------------------------------------------------------


def test_a_new_user_launches_a_demo_job_and_watches_the_bar_fill_to_100_percent(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    expect(page.locator("#jobs-status")).to_have_text("No jobs yet. Start one with the form.")
    job_id = dashboard.launch("demo.steps", steps=12, step_ms=300)
    row = dashboard.row(job_id)
    expect(row.locator(".job-title")).to_have_text("Demo: a loop of timed steps")

    dashboard.wait_progress(job_id, 25)
    expect(row.locator(".job-status")).to_have_text("Running")
    expect(row.get_by_role("button", name="Cancel")).to_be_visible()
    expect(row.locator(".job-eta")).to_have_text(DURATION)
    expect(row.locator(".job-elapsed")).to_have_text(DURATION)
    early = row.bounding_box()
    early_bar = row.locator("progress").bounding_box()
    dashboard.screenshot("a-demo-running")

    dashboard.wait_progress(job_id, 75)
    assert row.bounding_box() == early, "the row moved or resized while the bar moved"
    assert row.locator("progress").bounding_box() == early_bar

    dashboard.wait_status(job_id, "succeeded")
    expect(row.locator(".job-percent")).to_have_text("100%")
    expect(row.locator(".job-status")).to_have_text("Succeeded")
    expect(row.locator(".job-result")).to_have_text("Result: steps 12")
    expect(row.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(row.locator(".job-eta")).to_have_text("done")

    values = dashboard.bar_values(job_id)
    assert values == sorted(values), f"the bar went backwards: {values}"
    assert len({v for v in values if 0 < v < 100}) >= 5, f"too few steps shown: {values}"
    assert values[-1] == 100
    assert_every_event_applied_once(dashboard, job_id)
    dashboard.screenshot("a-demo-succeeded")


# --- (b) a file to download -----------------------------------------------------------------


def test_a_csv_export_ends_with_a_link_that_downloads_exactly_the_users_orders(
    dashboard: Dashboard, server_app: Flask, tmp_path: Path
) -> None:
    api = dashboard.api()
    user_id = api.get("/api/v1/me").json()["id"]
    data = StackData(server_app)
    data.seed(user_id, 400, seed=42)
    expected = [o for o in data.orders(user_id) if o.region == "north"]

    job_id = dashboard.launch("export.csv", region="north")
    row = dashboard.wait_status(job_id, "succeeded", timeout=90)
    link = row.get_by_role("link", name="Download orders.csv")
    expect(link).to_be_visible()
    dashboard.screenshot("b-export-succeeded")

    with dashboard.page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == "orders.csv"
    saved = tmp_path / "orders.csv"
    download.save_as(saved)
    lines = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert lines[0] == CSV_HEADER
    assert [int(r[0]) for r in lines[1:]] == [o.id for o in expected]
    assert {r[3] for r in lines[1:]} == {"north"}
    assert len(lines) - 1 == len(expected) > 0


# --- (c) two users at once ------------------------------------------------------------------


def test_two_users_at_once_each_see_only_their_own_jobs_and_notifications(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    ada = open_dashboard(permissions=["notifications"]).sign_up()
    bob = open_dashboard(permissions=["notifications"]).sign_up()

    ada.look_away()
    ada_job = ada.launch("demo.steps", steps=8, step_ms=250)
    bob_job = bob.launch("test.file", text="bob's file")
    bob.wait_status(bob_job, "succeeded")
    ada.wait_status(ada_job, "succeeded")

    assert ada.job_ids() == [ada_job]
    assert bob.job_ids() == [bob_job]
    assert {e["job_id"] for e in ada.applied()} == {ada_job}
    assert {e["job_id"] for e in bob.applied()} == {bob_job}

    # Ada looked elsewhere while her job ended: a system notification and a toast. Bob was
    # watching his page: nothing pops up for him, and nothing of Ada's reaches him.
    assert ada.notifications() == [
        {"title": "Job succeeded", "body": "Demo: a loop of timed steps: it finished."}
    ]
    toast = ada.page.locator(".toast")
    expect(toast).to_have_count(1)
    expect(toast.locator(".toast-title")).to_have_text("Job succeeded")
    assert bob.notifications() == []
    expect(bob.page.locator(".toast")).to_have_count(0)

    ada.look_away(False)
    toast.get_by_role("button", name="Dismiss notification").click()
    expect(toast).to_have_count(0)

    # The API agrees: each list holds one job, the owner's.
    assert [j["id"] for j in ada.api().get("/api/v1/jobs").json()["items"]] == [ada_job]
    assert [j["id"] for j in bob.api().get("/api/v1/jobs").json()["items"]] == [bob_job]


def test_a_job_that_ends_while_the_user_looks_elsewhere_gets_a_toast_even_without_permission(
    dashboard: Dashboard,
) -> None:
    dashboard.look_away()  # from the start: this job fails at once
    job_id = dashboard.launch("test.fail")
    dashboard.wait_status(job_id, "failed")
    toast = dashboard.page.locator(".toast")
    expect(toast.locator(".toast-title")).to_have_text("Job failed")
    expect(toast.locator(".toast-body")).to_have_text(
        "Fails at once with a message for the user.: the input is unusable"
    )
    assert dashboard.notifications() == []


# --- (d) the connection drops mid-job -------------------------------------------------------


@pytest.fixture
def own_stack(tmp_path: Path) -> Any:
    """A stack of its own (own Redis, database, processes): this test kills its web server."""
    with Stack(tmp_path, env_overrides=stack_env()) as running:
        yield running


@pytest.mark.timeout(180)
def test_after_the_web_server_restarts_the_page_resumes_and_applies_every_step_once(
    own_stack: Stack, open_dashboard: Callable[..., Dashboard]
) -> None:
    dashboard = open_dashboard(own_stack.base_url).sign_up()
    page = dashboard.page
    job_id = dashboard.launch("demo.steps", steps=30, step_ms=200)
    dashboard.wait_progress(job_id, 15)
    page.evaluate("window.__sameDocument = true")

    port = int(own_stack.base_url.rsplit(":", 1)[1])
    web = own_stack.process("web")
    os.killpg(web.pid, signal.SIGKILL)
    web.wait()
    dashboard.wait_connection("reconnecting", timeout=10)
    expect(page.locator("#connection")).to_contain_text("Reconnecting")
    dashboard.screenshot("d-reconnecting")
    page.wait_for_timeout(1500)  # steps published now reach no web server, only the event log

    own_stack.start_web(port=port, name="web-2")
    dashboard.wait_connection("live", timeout=30)
    row = dashboard.wait_status(job_id, "succeeded", timeout=60)
    expect(row.locator(".job-percent")).to_have_text("100%")
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"

    assert_every_event_applied_once(dashboard, job_id)
    steps = [e["progress"] for e in dashboard.applied(job_id) if e["event"] == "job.progress"]
    assert steps == [pytest.approx(100 * n / 30, abs=0.01) for n in range(1, 31)]
    values = dashboard.bar_values(job_id)
    assert values == sorted(values) and values[-1] == 100


def test_the_connection_indicator_says_offline_while_the_browser_has_no_network(
    dashboard: Dashboard,
) -> None:
    job_id = dashboard.launch("demo.steps", steps=20, step_ms=250)
    dashboard.page.context.set_offline(True)
    dashboard.wait_connection("offline", timeout=5)
    expect(dashboard.page.locator("#connection")).to_have_text("Offline")
    dashboard.page.context.set_offline(False)
    dashboard.wait_connection("live")
    dashboard.wait_status(job_id, "succeeded")
    assert_every_event_applied_once(dashboard, job_id)


def test_without_socketio_the_page_follows_its_jobs_over_server_sent_events(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    dashboard = open_dashboard()
    page = dashboard.page
    # WebSocket and long-polling both fail, as behind a proxy that does not pass /socket.io/.
    page.route("**/socket.io/**", lambda route: route.abort())
    page.route_web_socket("**/socket.io/**", lambda ws: ws.close())
    dashboard.email = f"sse-{os.urandom(5).hex()}@example.com"
    page.goto("/signup")
    page.get_by_label("Email").fill(dashboard.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{dashboard.base_url}/")

    expect(page.locator("#connection")).to_have_text("Live (SSE)", timeout=20_000)
    job_id = dashboard.launch("demo.steps", steps=10, step_ms=200)
    row = dashboard.wait_status(job_id, "succeeded")
    expect(row.locator(".job-percent")).to_have_text("100%")
    assert len({v for v in dashboard.bar_values(job_id) if 0 < v < 100}) >= 3
    assert_every_event_applied_once(dashboard, job_id)


# --- (e) validation messages ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("job_type", "params", "field"),
    [
        ("demo.steps", {"steps": 0}, "steps"),
        ("demo.steps", {"step_ms": 60_001}, "step_ms"),
        ("demo.steps", {"steps": 2.5}, "steps"),
        ("email.send", {"to": "not-an-address", "subject": "Hi", "body": "Hello"}, "to"),
    ],
)
def test_the_launcher_shows_the_apis_message_next_to_the_bad_field(
    dashboard: Dashboard, job_type: str, params: dict[str, Any], field: str
) -> None:
    dashboard.fill_launcher(job_type, **params)
    dashboard.page.get_by_role("button", name="Start job").click()

    answer = dashboard.api().post("/api/v1/jobs", json={"type": job_type, "params": params})
    assert answer.status_code == 422
    problem = answer.json()
    message = next(e["message"] for e in problem["errors"] if e["field"] == f"params.{field}")
    summary = problem["detail"][0].upper() + problem["detail"][1:]

    field_input = dashboard.page.locator(f"#param-{field}")
    expect(dashboard.page.locator(f"#param-{field}-error")).to_have_text(message)
    expect(field_input).to_have_attribute("aria-invalid", "true")
    expect(field_input).to_be_focused()
    expect(dashboard.page.get_by_role("alert")).to_contain_text(summary)
    assert dashboard.job_ids() == []
    dashboard.screenshot(f"e-invalid-{job_type}-{field}")


def test_the_launchers_fields_carry_the_schemas_limits_and_labels(dashboard: Dashboard) -> None:
    page = dashboard.page
    steps = page.get_by_label("Steps", exact=True)
    expect(steps).to_have_attribute("type", "number")
    expect(steps).to_have_attribute("min", "1")
    expect(steps).to_have_attribute("max", "10000")
    expect(steps).to_have_value("10")
    expect(page.get_by_label("Step (ms)")).to_have_attribute("max", "60000")
    page.get_by_label("Job type").select_option("export.csv")
    expect(page.get_by_label("Region")).to_have_js_property("tagName", "SELECT")
    expect(page.get_by_label("Created from")).to_have_attribute("type", "date")
    page.get_by_label("Job type").select_option("email.send")
    expect(page.get_by_label("To")).to_have_attribute("type", "email")
    expect(page.get_by_label("Subject")).to_have_attribute("maxlength", "200")
    expect(page.get_by_label("Body")).to_have_js_property("tagName", "TEXTAREA")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea")]
               .filter(el => el.labels.length === 0 && !el.getAttribute("aria-label"))
               .map(el => el.id || el.name)"""
    )
    assert unlabelled == []


# --- the rest of a job's life ----------------------------------------------------------------


def test_every_state_of_a_job_reads_clearly_in_light_and_dark_and_on_a_phone(
    dashboard: Dashboard, server_app: Flask
) -> None:
    page = dashboard.page
    api = dashboard.api()
    StackData(server_app).seed(api.get("/api/v1/me").json()["id"], 2_000, seed=7)

    failed = dashboard.launch("test.fail")
    cancelled = dashboard.launch("demo.steps", steps=200, step_ms=200)
    dashboard.wait_status(cancelled, "running")
    dashboard.row(cancelled).get_by_role("button", name="Cancel").click()
    exported = dashboard.launch("export.csv", region="west")
    report = dashboard.launch("report.xlsx", status="paid")
    running = dashboard.launch("demo.steps", steps=300, step_ms=200)

    expect(dashboard.wait_status(failed, "failed").locator(".job-error")).to_have_text(
        "the input is unusable"
    )
    expect(dashboard.wait_status(cancelled, "cancelled").locator(".job-status")).to_have_text(
        "Cancelled"
    )
    expect(
        dashboard.wait_status(exported, "succeeded", timeout=90).get_by_role("link")
    ).to_have_text(_download_name("orders.csv"))
    expect(dashboard.wait_status(report, "succeeded", timeout=90).get_by_role("link")).to_have_text(
        _download_name("orders-report.xlsx")
    )
    dashboard.wait_progress(running, 12)
    expect(dashboard.row(running).locator(".job-eta")).to_have_text(DURATION)

    page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
    light = dashboard.screenshot("dashboard-light")
    if docs_screenshot_requested():
        shutil.copyfile(light, ROOT / "docs" / "dashboard.png")
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 18, 23)"
    dashboard.screenshot("dashboard-dark")

    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "the page scrolls sideways on a phone"
    dashboard.screenshot("dashboard-phone-dark", full_page=True)
    page.emulate_media(color_scheme="light")
    dashboard.screenshot("dashboard-phone-light")
    dashboard.row(running).get_by_role("button", name="Cancel").click()
    dashboard.wait_status(running, "cancelled")


def _download_name(filename: str) -> re.Pattern[str]:
    return re.compile(rf"^Download {re.escape(filename)} \(\d[\d.]* (bytes|KB|MB)\)$")


def test_load_more_pages_through_older_jobs_newest_first(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    dashboard = open_dashboard().sign_up()
    api = dashboard.api()
    ids = [api.submit("demo.steps", {"steps": 1, "step_ms": 0})["id"] for _ in range(23)]
    dashboard.page.reload()
    dashboard.wait_connection("live")
    expect(dashboard.page.locator("li.job")).to_have_count(20)
    more = dashboard.page.get_by_role("button", name="Load more")
    more.click()
    expect(dashboard.page.locator("li.job")).to_have_count(23)
    expect(more).to_be_hidden()
    assert dashboard.job_ids() == ids[::-1]
    for job_id in ids:
        dashboard.wait_status(job_id, "succeeded")


def test_jobs_started_in_another_tab_appear_live(open_dashboard: Callable[..., Dashboard]) -> None:
    dashboard = open_dashboard().sign_up()
    job = dashboard.api().submit("demo.steps", {"steps": 5, "step_ms": 200})
    row = dashboard.wait_status(job["id"], "succeeded")
    expect(row.locator(".job-percent")).to_have_text("100%")
    assert dashboard.job_ids() == [job["id"]]


def test_the_launcher_and_cancel_work_from_the_keyboard(dashboard: Dashboard) -> None:
    page = dashboard.page

    def tab_to(selector: str) -> None:
        for _ in range(25):
            page.keyboard.press("Tab")
            if page.evaluate("s => document.activeElement.matches(s)", selector):
                return
        raise AssertionError(f"Tab never reached {selector}")

    tab_to("#job-type")
    tab_to("#param-steps")
    page.keyboard.press("Control+A")
    page.keyboard.type("500")
    page.keyboard.press("Enter")
    expect(page.locator("li.job")).to_have_count(1)
    job_id = dashboard.job_ids()[0]
    dashboard.wait_status(job_id, "running")
    tab_to(f'li.job[data-job-id="{job_id}"] .job-cancel')
    page.keyboard.press("Enter")
    dashboard.wait_status(job_id, "cancelled")
    expect(page.locator("#announcer")).to_have_text("Demo: a loop of timed steps: Cancelled.")


STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def test_the_pages_work_under_a_strict_content_security_policy(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    """No inline script, handler or style anywhere: the pages run with script-src 'self'."""
    dashboard = open_dashboard()
    page = dashboard.page

    def with_policy(route: Any) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        route.fulfill(response=response, headers=headers)

    page.route(re.compile(r"^https?://[^/]+/(signin|signup)?$"), with_policy)
    page.add_init_script(
        """window.__violations = [];
        document.addEventListener("securitypolicyviolation",
          (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));"""
    )
    dashboard.sign_up()
    assert page.evaluate("document.contentType") == "text/html"
    job_id = dashboard.launch("test.file", text="under a policy")
    dashboard.wait_status(job_id, "succeeded")
    dashboard.fill_launcher("demo.steps", steps=0)
    page.get_by_role("button", name="Start job").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert page.evaluate("window.__violations") == []


# --- the session ----------------------------------------------------------------------------


def test_a_rejected_access_token_is_refreshed_and_a_dead_session_signs_out(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    stored = json.loads(page.evaluate("sessionStorage.getItem('jobcast.session')"))
    page.evaluate(
        "s => sessionStorage.setItem('jobcast.session', s)",
        json.dumps({**stored, "access_token": "not-a-token"}),
    )
    page.reload()
    dashboard.wait_connection("live")
    expect(page.locator("#account-email")).to_have_text(dashboard.email)
    renewed = json.loads(page.evaluate("sessionStorage.getItem('jobcast.session')"))
    assert renewed["access_token"] not in ("not-a-token", stored["access_token"])

    page.evaluate(
        "s => sessionStorage.setItem('jobcast.session', s)",
        json.dumps({**stored, "access_token": "not-a-token", "refresh_token": "nor-this"}),
    )
    page.reload()
    page.wait_for_url("**/signin")
    expect(page.get_by_role("status")).to_have_text(
        "Your session has expired. Please sign in again."
    )
    page.get_by_label("Email").fill(dashboard.email)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    dashboard.wait_connection("live")


READ_SESSION = "JSON.parse(sessionStorage.getItem('jobcast.session'))"


def duplicate_tab(dashboard: Dashboard) -> Dashboard:
    """A second tab with a copy of the first one's sessionStorage, as "Duplicate tab" makes."""
    stored = dashboard.page.evaluate("sessionStorage.getItem('jobcast.session')")
    twin = Dashboard(dashboard.page.context.new_page(), dashboard.base_url)
    twin.email = dashboard.email
    twin.page.goto("/signin")
    twin.page.evaluate("s => sessionStorage.setItem('jobcast.session', s)", stored)
    twin.page.goto("/")
    twin.wait_connection("live")
    return twin


def test_the_tokens_are_renewed_before_they_expire_and_the_page_stays_live(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    dashboard = open_dashboard()
    page = dashboard.page
    page.clock.install()  # the page's timers, moved forward below
    dashboard.sign_up()
    first = page.evaluate(READ_SESSION)

    page.clock.fast_forward("13:00")  # access tokens last 15 minutes
    page.wait_for_function(
        f"first => {READ_SESSION}.access_token !== first.access_token", arg=first
    )
    renewed = page.evaluate(READ_SESSION)
    assert renewed["refresh_token"] != first["refresh_token"], "the rotated refresh token is kept"
    dashboard.wait_connection("live")
    job_id = dashboard.launch("demo.steps", steps=3, step_ms=100)
    dashboard.wait_status(job_id, "succeeded")


def test_a_duplicated_tab_shares_the_sign_in_without_tripping_refresh_token_reuse(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    dashboard = open_dashboard()
    dashboard.page.context.clock.install()
    dashboard.sign_up()
    twin = duplicate_tab(dashboard)
    first = dashboard.page.evaluate(READ_SESSION)

    # Both tabs' refresh timers fire together, with the same (single-use) refresh token.
    dashboard.page.context.clock.fast_forward("13:00")
    for tab in (dashboard, twin):
        tab.page.wait_for_function(
            f"first => {READ_SESSION}.access_token !== first.access_token", arg=first
        )
    assert dashboard.page.evaluate(READ_SESSION) == twin.page.evaluate(READ_SESSION)
    for tab in (dashboard, twin):
        tab.page.reload()
        tab.wait_connection("live")
        expect(tab.page.locator("#account-email")).to_have_text(dashboard.email)


def test_signing_out_in_one_tab_signs_out_the_tabs_that_share_its_sign_in(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    dashboard = open_dashboard().sign_up()
    twin = duplicate_tab(dashboard)
    dashboard.page.get_by_role("button", name="Sign out").click()
    dashboard.page.wait_for_url("**/signin")
    # The server checks live connections' tokens every few seconds and says auth.revoked.
    twin.page.wait_for_url("**/signin", timeout=20_000)
    expect(twin.page.get_by_role("status")).to_have_text(
        "This sign-in has ended (signed out elsewhere). Please sign in again."
    )


def test_signing_out_forgets_the_tokens_and_the_dashboard_asks_to_sign_in(
    dashboard: Dashboard,
) -> None:
    page = dashboard.page
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    assert page.evaluate("sessionStorage.getItem('jobcast.session')") is None
    page.goto("/")
    page.wait_for_url("**/signin")


def test_a_wrong_password_is_answered_on_the_sign_in_page(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    page = open_dashboard().page
    page.goto("/signin")
    page.get_by_label("Email").fill("nobody@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Email or password is incorrect")
    page.goto("/signup")
    page.get_by_label("Email").fill("not an email")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#email-error")).to_contain_text("valid email address")
    expect(page.locator("#password-error")).to_contain_text("at least 8 characters")


# --- the page's own rules, run in the browser -------------------------------------------------

STORE_SCENARIO = """
async () => {
  const { JobStore } = await import("/assets/js/store.js");
  const applied = [];
  const resumes = [];
  const store = new JobStore({
    added() {},
    changed() {},
    applied: (entry, name, payload) => applied.push(payload.seq),
    unknown() {},
    canResume: () => true,
    resume: (entries) => resumes.push(entries.map((e) => [e.id, e.seq])),
  });
  const event = (seq, status = "running", progress = seq * 10) =>
    ({ job_id: "j", seq, status, progress, message: `step ${seq}`, ts: Date.now() / 1000 });
  const job = { id: "j", status: "queued", progress: 0, message: null, params: {}, attempts: 0,
                created_at: "2026-01-01T00:00:00Z", started_at: null, finished_at: null };
  const entry = store.add(job);
  store.receive("job.queued", event(1, "queued", 0));
  store.receive("job.queued", event(1, "queued", 0));   // twice
  store.receive("job.progress", event(4));             // 2 and 3 were missed
  store.receive("job.progress", event(5));             // arrives during the replay
  const held = entry.buffer.map(([, payload]) => payload.seq);
  for (const seq of [2, 3, 4]) store.receive("job.progress", event(seq));   // the replay
  store.endResume([entry]);
  store.receive("job.succeeded", event(6, "succeeded", 100));
  store.merge({ ...job, status: "running" });           // a stale snapshot
  return { applied, resumes, held, status: entry.job.status, progress: entry.job.progress };
}
"""


def test_the_store_applies_every_seq_once_in_order_and_replays_what_it_missed(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    page = open_dashboard().page
    page.goto("/signin")
    assert page.evaluate(STORE_SCENARIO) == {
        "applied": [1, 2, 3, 4, 5, 6],
        "resumes": [[["j", 1]]],
        "held": [4, 5],
        "status": "succeeded",
        "progress": 100,
    }


def test_the_event_stream_parser_copes_with_any_chunking(
    open_dashboard: Callable[..., Dashboard],
) -> None:
    page = open_dashboard().page
    page.goto("/signin")
    stream = (
        'retry: 2000\r\n\r\nid: 1\nevent: job.queued\ndata: {"seq":1}\n\n: keep-alive\n\n'
        'id: 2\r\nevent: job.started\r\ndata: {"seq":\r\ndata: 2}\r\n\r\n'
    )
    for size in (1, 2, 3, 7, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        parsed = page.evaluate(
            """async (chunks) => {
              const { EventStreamParser } = await import("/assets/js/sse.js");
              const parser = new EventStreamParser();
              const events = chunks.flatMap((chunk) => parser.push(chunk));
              return { events, retry: parser.retry };
            }""",
            chunks,
        )
        assert parsed == {
            "events": [
                {"event": "job.queued", "data": '{"seq":1}', "id": "1"},
                {"event": "job.started", "data": '{"seq":\n2}', "id": "2"},
            ],
            "retry": 2000,
        }, size


# --- the admin page ---------------------------------------------------------------------------


def promote(stack: Stack, email: str) -> None:
    """``jobcast users promote EMAIL`` against the stack's database."""
    from click.testing import CliRunner

    from jobcast.service.cli import main

    env = {k: v for k, v in stack.env.items() if k.startswith("JOBCAST_")}
    result = CliRunner().invoke(main, ["users", "promote", email], env=env)
    assert result.exit_code == 0, result.output


def test_an_admin_filters_every_users_jobs_reads_a_log_cancels_and_reruns(
    stack: Stack, open_dashboard: Callable[..., Dashboard]
) -> None:
    owner = stack.api().signup()
    failed = owner.wait_job(owner.submit("test.fail")["id"])
    running = owner.submit("test.chunks", {"chunks": 400, "chunk_ms": 50})
    owner.wait_job(running["id"], until=lambda j: j["status"] == "running")
    dashboard = open_dashboard().sign_up()
    page = dashboard.page
    expect(page.get_by_role("link", name="Admin")).to_be_hidden()
    promote(stack, dashboard.email)
    page.reload()
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url("**/admin")

    page.get_by_label("Owner email").fill(owner.email or "")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("tr.admin-job")).to_have_count(2)
    failed_row = page.locator(f'tr[data-job-id="{failed["id"]}"]')
    failed_row.get_by_role("button", name="Events").click()
    expect(page.locator("#event-log-items")).to_contain_text("job.failed")

    running_row = page.locator(f'tr[data-job-id="{running["id"]}"]')
    running_row.get_by_role("button", name="Cancel").click()
    expect(running_row).to_have_attribute("data-status", "cancelled", timeout=30_000)
    failed_row.get_by_role("button", name="Re-run").click()
    expect(page.locator("tr.admin-job")).to_have_count(3)
    expect(page.locator("#audit-items")).to_contain_text("job.rerun")
    expect(page.locator("#audit-items")).to_contain_text("job.cancel")
    assert owner.get(f"/api/v1/jobs/{running['id']}").json()["status"] == "cancelled"
    assert len(owner.get("/api/v1/jobs").json()["items"]) == 3
    assert dashboard.errors == []


def test_the_admin_page_shows_a_non_admin_nothing(open_dashboard: Callable[..., Dashboard]) -> None:
    dashboard = open_dashboard().sign_up()
    expect(dashboard.page.get_by_role("link", name="Admin")).to_be_hidden()
    dashboard.page.goto("/admin")
    expect(dashboard.page.locator("#admin-status")).to_have_text("This page is for admins only.")
    expect(dashboard.page.locator("#admin-view")).to_be_hidden()
