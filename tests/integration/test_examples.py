"""The example host apps of ``examples/`` add jobcast in a few lines, and it works in them.

Each example runs for real (its own worker and web server, over the suite's Redis) and its
users get what jobcast promises any host's users: live progress on ``/jobcast``, a replay of
what a dropped connection missed, their result file, and nothing of anyone else's jobs.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import socketio

from tests.integration.hosts import (
    NAMESPACE,
    PREFIX,
    ROOT,
    ExampleHost,
    HostUser,
    JobSocket,
    logs_on_failure,
    on_db,
    sign_in_with_form,
    sign_in_with_token,
    sse_events,
)

EXAMPLES = ROOT / "examples"
USERS = {"ada@example.com": "ada's long password", "bob@example.com": "bob's long password"}
ADA, BOB = USERS

BEGIN, END = "# --- jobcast ---", "# --- end jobcast ---"
# What wires jobcast into a host: it must all sit between the markers to be counted.
WIRING = re.compile(
    r"^\s*(from|import) jobcast\b|\bJobcast\(|^\s*JOBCAST_\w+\s*=|"
    r"\bjobcast\.(init_app|submit|get|cancel|disconnect|create_all)\("
)


def jobcast_lines(example: Path) -> list[str]:
    """The code lines inside the example's ``# --- jobcast ---`` blocks (comments and blank
    lines not counted); fails on unbalanced markers or on wiring outside the blocks."""
    counted = []
    for source in sorted(example.rglob("*.py")):
        inside = False
        for number, line in enumerate(source.read_text().splitlines(), 1):
            where = f"{source.relative_to(ROOT)}:{number}"
            if line.strip() in (BEGIN, END):
                assert inside == (line.strip() == END), f"unbalanced marker at {where}"
                inside = not inside
            elif inside and line.strip() and not line.strip().startswith("#"):
                counted.append(f"{where}: {line.strip()}")
            elif not inside:
                assert not WIRING.search(line), f"jobcast wiring outside the markers at {where}"
        assert not inside, f"{source} ends inside a jobcast block"
    return counted


@pytest.mark.parametrize("example", ["flask_login_app", "jwt_api"])
def test_adding_jobcast_takes_at_most_15_lines(example: str) -> None:
    lines = jobcast_lines(EXAMPLES / example)
    assert lines, "no # --- jobcast --- blocks found"
    assert len(lines) <= 15, "\n".join(lines)


def job_seqs(events: list[tuple[str, dict[str, Any]]]) -> list[int]:
    return [payload["seq"] for _, payload in events]


class HostContract:
    """What every example host gives its users once jobcast is in; a subclass names the
    example, how its users sign in, and how its own route starts a job."""

    package: ClassVar[str]
    redis_db: ClassVar[int]
    job_type: ClassVar[str]
    env: ClassVar[dict[str, str]] = {}

    def sign_in(self, host: ExampleHost, email: str) -> HostUser:
        raise NotImplementedError

    def start_from_host(self, user: HostUser, pause: float) -> requests.Response:
        """Start a job through the host's own route (which calls ``jobcast.submit``)."""
        raise NotImplementedError

    def job_params(self, pause: float) -> dict[str, Any]:
        raise NotImplementedError

    def check_result_file(self, content: bytes, result: dict[str, Any]) -> None:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    def host(
        self,
        request: pytest.FixtureRequest,
        redis_url: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> Iterator[ExampleHost]:
        cls = request.cls
        assert cls is not None
        running = ExampleHost(
            tmp_path_factory.mktemp(cls.package.rpartition(".")[2]),
            redis_url=on_db(redis_url, cls.redis_db),
            env_overrides=cls.env,
            package=cls.package,
            users=USERS,
        )
        with running:
            yield running

    @pytest.fixture(autouse=True)
    def _logs_on_failure(self, request: pytest.FixtureRequest, host: ExampleHost) -> Iterator[None]:
        with logs_on_failure(request, host):
            yield

    @pytest.mark.timeout(360)
    def test_a_job_started_by_the_host_streams_live_and_its_file_downloads(
        self, host: ExampleHost
    ) -> None:
        ada = self.sign_in(host, ADA)
        live = ada.socket()
        started = self.start_from_host(ada, pause=0.05)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        assert started.headers["Location"] == f"{PREFIX}/jobs/{job_id}"

        events = live.wait_terminal(job_id)
        names = [name for name, _ in events]
        assert names[:2] == ["job.queued", "job.started"], names
        assert names[-1] == "job.succeeded", events[-1]
        assert names.count("job.progress") >= 2, names
        assert job_seqs(events) == list(range(1, len(events) + 1))
        progress = [payload["progress"] for _, payload in events]
        assert progress == sorted(progress) and progress[-1] == 100

        result = events[-1][1]["result"]
        link = requests.get(host.base_url + result["download_url"], timeout=30)  # no sign-in
        assert link.status_code == 200, link.text
        assert result["filename"] in link.headers["Content-Disposition"]
        self.check_result_file(link.content, result)
        job = ada.get(f"{PREFIX}/jobs/{job_id}").json()
        assert (job["status"], job["type"]) == ("succeeded", self.job_type)
        live.close()

    @pytest.mark.timeout(360)
    def test_a_job_submitted_to_the_api_replays_what_a_dropped_socket_missed(
        self, host: ExampleHost
    ) -> None:
        ada = self.sign_in(host, ADA)
        first = ada.socket()
        submitted = ada.post(
            f"{PREFIX}/jobs", json={"type": self.job_type, "params": self.job_params(0.3)}
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.headers["Location"] == f"{PREFIX}/jobs/{job_id}"

        first.wait_event(job_id, "job.progress")
        first.close()
        before = first.for_job(job_id)
        last = before[-1][1]
        time.sleep(1.5)  # the job goes on while nobody listens

        second = ada.socket()
        ack = second.resume(job_id, last["seq"], last["epoch"])
        assert ack.get("job_id") == job_id and ack.get("replayed", 0) >= 1, ack
        after = second.wait_terminal(job_id)
        assert min(job_seqs(after)) == last["seq"] + 1
        seen = sorted(set(job_seqs(before) + job_seqs(after)))
        assert seen == list(range(1, seen[-1] + 1)), "an event was lost"
        assert after[-1][0] == "job.succeeded"

        # The same resume over Server-Sent Events: after Last-Event-ID, to the end.
        stream = ada.get(
            f"{PREFIX}/jobs/{job_id}/events",
            headers={"Last-Event-ID": f"{last['epoch']}-{last['seq']}"},
        )
        assert stream.status_code == 200, stream.text
        ids = [event_id for event_id, _, _ in sse_events(stream)]
        assert ids == [f"{last['epoch']}-{seq}" for seq in range(last["seq"] + 1, seen[-1] + 1)]
        second.close()

    @pytest.mark.timeout(360)
    def test_a_second_user_sees_nothing_of_the_first_users_job(self, host: ExampleHost) -> None:
        ada, bob = self.sign_in(host, ADA), self.sign_in(host, BOB)
        ada_live, bob_live = ada.socket(), bob.socket()
        started = self.start_from_host(ada, pause=0.05)
        assert started.status_code == 202, started.text
        job_id = started.json()["id"]
        ada_live.wait_terminal(job_id)

        for method, path in [
            ("GET", f"{PREFIX}/jobs/{job_id}"),
            ("POST", f"{PREFIX}/jobs/{job_id}/cancel"),
            ("GET", f"{PREFIX}/jobs/{job_id}/events"),
            ("GET", f"{PREFIX}/jobs/{job_id}/result"),
        ]:
            response = bob.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
        listed = bob.get(f"{PREFIX}/jobs")
        assert listed.status_code == 200, listed.text
        assert job_id not in {job["id"] for job in listed.json()["items"]}

        assert bob_live.resume(job_id, 0) == {"job_id": job_id, "error": "not found"}
        time.sleep(1)  # anything on its way would have arrived
        assert bob_live.for_job(job_id) == []
        ada_live.close()
        bob_live.close()


class TestFlaskLoginApp(HostContract):
    """examples/flask_login_app: Flask-Login sessions, its own SocketIO and Flask-SQLAlchemy."""

    package = "examples.flask_login_app"
    redis_db = 11
    job_type = "words.count"
    TEXT = "the cat and the hat and the bat " * 25

    def sign_in(self, host: ExampleHost, email: str) -> HostUser:
        return sign_in_with_form(host.base_url, email, USERS[email])

    def start_from_host(self, user: HostUser, pause: float) -> requests.Response:
        return user.post("/count", data={"text": self.TEXT, "pause": str(pause)})

    def job_params(self, pause: float) -> dict[str, Any]:
        return {"text": self.TEXT, "pause": pause}

    def check_result_file(self, content: bytes, result: dict[str, Any]) -> None:
        rows = list(csv.reader(io.StringIO(content.decode())))
        assert rows[0] == ["word", "count"]
        assert dict(rows[1:]) == {"the": "75", "and": "50", "cat": "25", "hat": "25", "bat": "25"}
        assert (result["words"], result["distinct"]) == (200, 5)

    @pytest.mark.timeout(360)
    def test_the_sites_own_socketio_handler_still_answers(self, host: ExampleHost) -> None:
        ada = self.sign_in(host, ADA)
        client = socketio.Client(reconnection=False)
        pongs: list[Any] = []
        client.on("pong", pongs.append)
        client.connect(
            host.base_url, namespaces=["/", NAMESPACE], wait_timeout=10, **ada.socket_connect()
        )
        try:
            assert client.call("ping", None, timeout=10) == "pong"
            deadline = time.monotonic() + 10
            while not pongs and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pongs == [{"email": ADA}]
        finally:
            client.disconnect()

    @pytest.mark.timeout(360)
    def test_signing_out_ends_the_users_live_sockets(self, host: ExampleHost) -> None:
        ada = self.sign_in(host, ADA)
        live = ada.socket()
        signed_out = ada.post("/logout")
        assert signed_out.url == host.base_url + "/login", signed_out.url
        live.wait_until(lambda: any(n == "auth.revoked" for n, _ in live.events), "auth.revoked")
        deadline = time.monotonic() + 10
        while NAMESPACE in live.client.namespaces and time.monotonic() < deadline:
            time.sleep(0.05)
        assert NAMESPACE not in live.client.namespaces
        assert ada.get(f"{PREFIX}/jobs").status_code == 401
        live.close()


class TestJwtApi(HostContract):
    """examples/jwt_api: Flask-JWT-Extended tokens, the SocketIO jobcast makes, an Engine."""

    package = "examples.jwt_api"
    redis_db = 12
    job_type = "primes.find"
    # The example leaves the Socket.IO channel to jobcast's settings: one of this run's own.
    env: ClassVar[dict[str, str]] = {"JOBCAST_SOCKETIO_CHANNEL": "jobcast-example-jwt-api"}

    def sign_in(self, host: ExampleHost, email: str) -> HostUser:
        return sign_in_with_token(host.base_url, email, USERS[email])

    def start_from_host(self, user: HostUser, pause: float) -> requests.Response:
        return user.post("/primes", json={"below": 1000, "pause": pause})

    def job_params(self, pause: float) -> dict[str, Any]:
        return {"below": 1000, "pause": pause}

    def check_result_file(self, content: bytes, result: dict[str, Any]) -> None:
        primes = [int(line) for line in content.decode().split()]
        assert primes[:5] == [2, 3, 5, 7, 11] and len(primes) == 168
        assert (result["count"], result["largest"]) == (168, 997)

    @pytest.mark.timeout(360)
    def test_sockets_and_requests_need_a_valid_token(self, host: ExampleHost) -> None:
        assert requests.get(host.base_url + f"{PREFIX}/jobs", timeout=30).status_code == 401
        assert requests.post(host.base_url + "/primes", json={}, timeout=30).status_code == 401
        with pytest.raises(socketio.exceptions.ConnectionError):
            JobSocket(host.base_url, auth={"token": "not-a-token"})

    @pytest.mark.timeout(360)
    def test_the_hosts_route_answers_invalid_params_with_their_fields(
        self, host: ExampleHost
    ) -> None:
        ada = self.sign_in(host, ADA)
        refused = ada.post("/primes", json={"below": 1})
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["params.below"]
