"""Result files: stored under the storage dir, served to their owner only, expired by beat."""

from __future__ import annotations

import time

from jobcast.jobs.tasks import expire_results
from tests.integration.conftest import Stack
from tests.integration.support import Api


def test_file_result_is_served_by_signed_link_and_bearer_only_to_its_owner(
    stack: Stack, api: Api
) -> None:
    job = api.wait_job(api.submit("test.file", {"text": "payload-1"})["id"])
    assert job["status"] == "succeeded"
    result = job["result"]
    assert result["filename"] == "greeting.txt" and result["size"] == len("payload-1")
    assert result["content_type"] == "text/plain" and result["chars"] == 9

    plain = stack.api()  # no Authorization header, like a browser following a link
    by_link = plain.get(result["download_url"], auth=False)
    assert by_link.status_code == 200 and by_link.text == "payload-1"
    assert by_link.headers["Content-Disposition"].startswith("attachment")
    by_bearer = api.get(f"/api/v1/jobs/{job['id']}/result")
    assert by_bearer.status_code == 200 and by_bearer.text == "payload-1"

    stored = list(stack.storage_dir.rglob(f"{job['id']}/**/greeting.txt"))
    assert len(stored) == 1 and ".staging" not in str(stored[0])

    mallory = stack.api().signup()
    assert mallory.get(f"/api/v1/jobs/{job['id']}/result").status_code == 404
    other = mallory.wait_job(mallory.submit("test.file")["id"])
    token = result["download_url"].split("token=", 1)[1]
    stolen = plain.get(f"/api/v1/jobs/{other['id']}/result?token={token}", auth=False)
    assert stolen.status_code == 401
    url = result["download_url"]
    flipped = url[:-10] + ("A" if url[-10] != "A" else "B") + url[-9:]
    assert plain.get(flipped, auth=False).status_code == 401


def test_beat_task_removes_files_past_retention_and_the_job_says_so(stack: Stack, api: Api) -> None:
    job = api.wait_job(api.submit("test.file")["id"])
    assert api.get(f"/api/v1/jobs/{job['id']}/result").status_code == 200
    time.sleep(0.1)
    app = stack.app(result_retention_hours=0.00001)
    with app.app_context():
        assert expire_results() >= 1

    assert api.get(f"/api/v1/jobs/{job['id']}/result").status_code == 404
    after = api.get(f"/api/v1/jobs/{job['id']}").json()
    assert after["result"]["expired"] is True and "download_url" not in after["result"]
    assert not list(stack.storage_dir.glob(f"*/{job['id']}/*"))
