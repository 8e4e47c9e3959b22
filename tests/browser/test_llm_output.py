"""An LLM answer on the dashboard: the text grows as job.output events arrive, and a reload in
the middle shows it whole again (replayed from the event log), then complete at the end."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from jobcast.llm.fake_provider import reply_for
from tests.browser.conftest import Dashboard


def _text(dashboard: Dashboard, job_id: str) -> str:
    return dashboard.row(job_id).locator(".job-output").text_content() or ""


def test_an_llm_answer_grows_live_and_is_whole_after_a_reload(dashboard: Dashboard) -> None:
    prompt = f"Tell me about streams ({uuid.uuid4().hex[:8]})"
    job = dashboard.api().submit("llm.chat", {"prompt": prompt})
    answer = reply_for([{"role": "user", "content": prompt}])
    output = dashboard.row(job["id"]).locator(".job-output")
    expect(output).to_be_visible(timeout=20_000)
    first = _text(dashboard, job["id"])
    dashboard.page.wait_for_function(
        """([id, n]) => {
          const out = document.querySelector(`li.job[data-job-id="${id}"] .job-output`);
          return out && out.textContent.length > n;
        }""",
        arg=[job["id"], len(first)],
    )
    grown = _text(dashboard, job["id"])
    assert answer.startswith(first) and answer.startswith(grown) and len(grown) > len(first)
    assert dashboard.row(job["id"]).get_attribute("data-status") == "running"

    dashboard.page.reload()
    dashboard.wait_connection("live")
    expect(output).to_be_visible()
    again = _text(dashboard, job["id"])
    assert answer.startswith(again) and len(again) >= len(grown)

    dashboard.wait_status(job["id"], "succeeded")
    expect(output).to_have_text(answer)
