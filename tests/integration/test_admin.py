"""The operator's view: admins read and act on every user's jobs, each action audited; anyone
else finds no admin API at all (404 on every admin path and method, like a path that does not
exist), and ordinary users still see only their own jobs.
"""

from __future__ import annotations

import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from jobcast import create_app
from jobcast.service.cli import main
from tests.integration.conftest import Stack
from tests.integration.support import Api, assert_problem

PREFIX = "/api/v1/admin"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def admin_paths() -> list[str]:
    """Every admin route of the service, read from its URL map: a new one is covered at once."""
    # Nothing connects to the database while an app is built: no file is made.
    unused = Path(tempfile.gettempdir()) / "jobcast-admin-routes.db"
    app = create_app({"env": "testing", "database_url": f"sqlite:///{unused}"})
    return sorted(
        {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX + "/")}
    )


ADMIN_PATHS = admin_paths()


def cli(stack: Stack, *args: str) -> Result:
    """``jobcast ARGS`` in this process, configured like the stack's servers."""
    env = {k: v for k, v in stack.env.items() if k.startswith("JOBCAST_")}
    return CliRunner().invoke(main, list(args), env=env)


def promote(stack: Stack, user: Api) -> Api:
    result = cli(stack, "users", "promote", user.email or "")
    assert result.exit_code == 0, result.output
    return user


def user_id(user: Api) -> str:
    return str(user.get("/api/v1/me").json()["id"])


def audit_of(admin: Api, **filters: str) -> list[dict[str, Any]]:
    response = admin.get(f"{PREFIX}/audit", params=filters)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Api:
    return promote(stack, stack.api().signup())


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Api:
    return stack.api().signup()


@pytest.fixture(scope="module")
def alice_jobs(alice: Api) -> list[dict[str, Any]]:
    """Alice's finished jobs, oldest first: one that succeeded, one that failed. Tests that
    act on jobs act on other users' (the listing tests count Alice's)."""
    made = [alice.submit("test.file", {"text": "alice's"}), alice.submit("test.fail")]
    return [alice.wait_job(job["id"]) for job in made]


# --- nobody but an admin finds anything ----------------------------------------------------


def test_the_admin_routes_are_all_there() -> None:
    assert {
        f"{PREFIX}/jobs",
        f"{PREFIX}/jobs/<job_id>",
        f"{PREFIX}/jobs/<job_id>/events",
        f"{PREFIX}/jobs/<job_id>/cancel",
        f"{PREFIX}/jobs/<job_id>/rerun",
        f"{PREFIX}/audit",
    } <= set(ADMIN_PATHS)


@pytest.fixture(scope="module")
def callers(stack: Stack) -> dict[str, Api]:
    """Everyone who is not an admin: nobody, a user, a demoted admin (same token), a bad token."""
    demoted = promote(stack, stack.api().signup())
    assert demoted.get(f"{PREFIX}/jobs").status_code == 200
    assert cli(stack, "users", "demote", demoted.email or "").exit_code == 0
    forged = Api(stack.base_url, token="not.a.token")
    return {"anonymous": stack.api(), "user": stack.api().signup(), "demoted": demoted,
            "bad-token": forged}  # fmt: skip


@pytest.mark.parametrize("caller", ["anonymous", "user", "demoted", "bad-token"])
@pytest.mark.parametrize("path", [*ADMIN_PATHS, PREFIX, f"{PREFIX}/nothing"])
def test_anyone_but_an_admin_gets_404_on_every_admin_path_and_method(
    callers: dict[str, Api], alice_jobs: list[dict[str, Any]], caller: str, path: str
) -> None:
    """The same 404 as a path that does not exist: never a 401, 403 or 405 that would say
    an admin API is there."""
    client = callers[caller]
    concrete = re.sub(r"<(?:[^<>:]+:)?job_id>", alice_jobs[1]["id"], path)
    nowhere = assert_problem(client.get("/api/v1/no-such-path"), 404)
    for method in METHODS:
        response = client.request(method, concrete)
        assert response.status_code == 404, (method, concrete, response.status_code)
        assert "Allow" not in response.headers, (method, concrete)
        if method != "HEAD":
            body = assert_problem(response, 404)
            assert {k: v for k, v in body.items() if k != "request_id"} == {
                k: v for k, v in nowhere.items() if k != "request_id"
            }


# --- reading -------------------------------------------------------------------------------


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["items"]]


def test_an_admin_lists_another_users_jobs_with_each_filter(
    admin: Api, alice: Api, alice_jobs: list[dict[str, Any]]
) -> None:
    done, failed = alice_jobs
    owner = user_id(alice)

    def listed(**filters: str) -> list[str]:
        return ids(admin.get(f"{PREFIX}/jobs", params=filters))

    assert listed(owner=owner) == [failed["id"], done["id"]]
    assert listed(owner_email=(alice.email or "").upper()) == [failed["id"], done["id"]]
    assert listed(owner=owner, type="test.fail") == [failed["id"]]
    assert listed(owner=owner, status="succeeded") == [done["id"]]
    assert listed(owner=owner, created_after=done["created_at"]) == [failed["id"]]
    assert listed(owner=owner, created_before=failed["created_at"]) == [done["id"]]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert listed(owner=owner, created_after=later) == []
    assert listed(owner_email="nobody-at-all@example.com") == []

    item = admin.get(f"{PREFIX}/jobs", params={"owner": owner}).json()["items"][0]
    assert item["owner"] == {"id": owner, "email": alice.email}
    assert item["status"] == "failed" and item["error"]["type"] == "bad_input"


def test_an_admin_pages_through_every_users_jobs(admin: Api, alice: Api, alice_jobs: Any) -> None:
    first = admin.get(f"{PREFIX}/jobs", params={"owner": user_id(alice), "limit": 1}).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    params = {"owner": user_id(alice), "limit": 1, "cursor": first["next_cursor"]}
    second = admin.get(f"{PREFIX}/jobs", params=params).json()
    assert [j["id"] for j in first["items"] + second["items"]] == [
        alice_jobs[1]["id"],
        alice_jobs[0]["id"],
    ]
    assert second["next_cursor"] is None


def test_an_admin_reads_one_job_and_its_whole_event_log(
    admin: Api, alice_jobs: list[dict[str, Any]]
) -> None:
    failed = alice_jobs[1]
    job = admin.get(f"{PREFIX}/jobs/{failed['id']}").json()
    assert job["id"] == failed["id"] and job["params"] == failed["params"]
    assert job["updated_at"] and job["request_id"]
    log = admin.get(f"{PREFIX}/jobs/{failed['id']}/events").json()
    names = [item["event"] for item in log["items"]]
    assert names[0] == "job.queued" and names[-1] == "job.failed"
    assert "job.started" in names and "job.progress" in names
    assert [item["data"]["seq"] for item in log["items"]] == list(range(1, len(names) + 1))
    assert all(item["data"]["job_id"] == failed["id"] for item in log["items"])


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/jobs", "status=lost"),
        ("/jobs", "limit=0"),
        ("/jobs", "limit=many"),
        ("/jobs", "owner=alice"),
        ("/jobs", "owner=99999999999999999999999"),
        ("/jobs", "type=%00"),
        ("/jobs", "owner_email=a%00b"),
        ("/jobs", "created_after=yesterday"),
        ("/jobs", "created_after=2024-01-01T00:00:00"),  # no offset: which zone?
        ("/jobs", "created_before=0001-01-01T00:00:00%2B01:00"),  # before year 1 in UTC
        ("/jobs", "created_after=9999-12-31T23:59:59-01:00"),  # after 9999 in UTC
        ("/jobs", "cursor=not-a-cursor"),
        ("/jobs", "colour=red"),
        ("/audit", "cursor=abc"),
        ("/audit", "actor=-1"),
        ("/audit", "action=DROP%20TABLE"),
        ("/audit", "limit=101"),
    ],
)
def test_bad_filters_are_a_422_problem_never_a_500(admin: Api, path: str, query: str) -> None:
    assert_problem(admin.get(f"{PREFIX}{path}?{query}"), 422)


def test_an_unknown_job_is_a_404_for_an_admin_too(admin: Api) -> None:
    for path in ("/jobs/00000000-0000-4000-8000-000000000000", "/jobs/not-a-uuid/events"):
        assert_problem(admin.get(PREFIX + path), 404)
    assert_problem(admin.post(f"{PREFIX}/jobs/not-a-uuid/rerun"), 404)


def test_an_admin_still_sees_only_their_own_jobs_in_the_users_api(
    admin: Api, alice_jobs: list[dict[str, Any]]
) -> None:
    assert_problem(admin.get(f"/api/v1/jobs/{alice_jobs[0]['id']}"), 404)
    assert alice_jobs[0]["id"] not in ids(admin.get("/api/v1/jobs"))


# --- acting, audited -------------------------------------------------------------------------


def test_an_admin_cancels_another_users_running_job_and_it_is_audited(
    stack: Stack, admin: Api, listener_factory: Any
) -> None:
    alice = stack.api().signup()
    ears = listener_factory(alice.token)
    job = alice.submit("test.chunks", {"chunks": 200, "chunk_ms": 50})
    alice.wait_job(job["id"], until=lambda j: j["progress"] >= 5)
    before = datetime.now(UTC)

    response = admin.post(f"{PREFIX}/jobs/{job['id']}/cancel")

    assert response.status_code == 202, response.text
    assert response.json()["owner"]["email"] == alice.email
    events = ears.wait_terminal(job["id"])
    assert events[-1][0] == "job.cancelled"
    assert alice.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    (entry,) = audit_of(admin, target_type="job", target_id=job["id"])
    assert entry["action"] == "job.cancel" and entry["actor_id"] == int(user_id(admin))
    assert before - timedelta(seconds=5) <= datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)
    detail = entry["detail"]
    assert detail["outcome"] == "done" and detail["via"] == "api" and detail["request_id"]
    assert detail["owner_id"] == user_id(alice) and detail["status_before"] == "running"


def test_an_admin_reruns_a_failed_job_for_its_owner_and_it_is_audited(
    stack: Stack, admin: Api
) -> None:
    alice = stack.api().signup()
    failed = alice.wait_job(alice.submit("test.fail")["id"])

    response = admin.post(f"{PREFIX}/jobs/{failed['id']}/rerun")

    assert response.status_code == 202, response.text
    rerun = response.json()
    assert rerun["id"] != failed["id"] and rerun["status"] == "queued"
    assert response.headers["Location"].endswith(f"{PREFIX}/jobs/{rerun['id']}")
    assert (rerun["type"], rerun["params"]) == (failed["type"], failed["params"])
    assert rerun["owner"]["id"] == user_id(alice)
    ended = alice.wait_job(rerun["id"])  # the owner sees it as their own, to its end
    assert ended["status"] == "failed" and ended["attempts"] == 1
    assert rerun["id"] in ids(alice.get("/api/v1/jobs"))
    assert_problem(stack.api().signup().get(f"/api/v1/jobs/{rerun['id']}"), 404)
    (entry,) = audit_of(admin, action="job.rerun", target_id=failed["id"])
    assert entry["detail"]["new_job_id"] == rerun["id"]
    assert entry["detail"]["outcome"] == "done" and entry["detail"]["source_status"] == "failed"


def test_a_cancelled_job_reruns_to_success(stack: Stack, admin: Api) -> None:
    alice = stack.api().signup()
    job = alice.submit("test.chunks", {"chunks": 100, "chunk_ms": 50})
    alice.wait_job(job["id"], until=lambda j: j["status"] == "running")
    assert alice.post(f"/api/v1/jobs/{job['id']}/cancel").status_code == 202
    assert alice.wait_job(job["id"])["status"] == "cancelled"
    rerun = admin.post(f"{PREFIX}/jobs/{job['id']}/rerun").json()
    assert alice.wait_job(rerun["id"])["status"] == "succeeded"


def test_only_failed_or_cancelled_jobs_rerun_and_refusals_leave_no_entry(
    admin: Api, alice_jobs: list[dict[str, Any]]
) -> None:
    succeeded = alice_jobs[0]
    assert_problem(admin.post(f"{PREFIX}/jobs/{succeeded['id']}/rerun"), 409)
    assert_problem(admin.post(f"{PREFIX}/jobs/{succeeded['id']}/cancel"), 409)
    assert audit_of(admin, target_id=succeeded["id"]) == []


# --- the command line ------------------------------------------------------------------------


def test_users_create_admin_makes_an_admin_and_audits_it(stack: Stack) -> None:
    email = f"ops-{datetime.now(UTC).timestamp()}@example.com"
    result = cli(stack, "users", "create", "--admin", email, "--password", "a long password")
    assert result.exit_code == 0, result.output
    assert "created admin" in result.output
    ops = stack.api().login(email, "a long password")
    assert ops.get(f"{PREFIX}/jobs").status_code == 200
    (entry,) = audit_of(ops, action="user.create", target_id=user_id(ops))
    assert entry["actor_id"] is None and entry["detail"]["via"] == "cli"
    assert entry["detail"]["admin"] is True


def test_promote_and_demote_take_effect_at_once_and_are_audited(stack: Stack, admin: Api) -> None:
    bob = stack.api().signup()
    assert_problem(bob.get(f"{PREFIX}/jobs"), 404)
    promote(stack, bob)
    assert bob.get(f"{PREFIX}/jobs").status_code == 200  # the same token, no new sign-in
    again = cli(stack, "users", "promote", bob.email or "")
    assert again.exit_code == 0 and "already" in again.output
    demoted = cli(stack, "users", "demote", (bob.email or "").upper())
    assert demoted.exit_code == 0 and "now not an admin" in demoted.output
    assert_problem(bob.get(f"{PREFIX}/jobs"), 404)
    entries = audit_of(admin, target_type="user", target_id=user_id(bob))
    assert [e["action"] for e in entries] == ["user.demote", "user.promote"]
    assert all(e["actor_id"] is None and e["detail"]["via"] == "cli" for e in entries)


def test_promoting_an_unknown_user_says_so(stack: Stack) -> None:
    result = cli(stack, "users", "promote", "nobody-here@example.com")
    assert result.exit_code == 1 and "no user" in result.output
