"""The metrics' pieces that need no server: labels, the delivery timestamp, dead processes,
the metrics directory, a broker that does not answer, an app that counts nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from jobcast import create_app
from jobcast.realtime.pubsub import _TS
from jobcast.realtime.wire import UserChannelWire
from jobcast.service.procs import METRICS_DIR, free_port, share_metrics_dir
from jobcast.telemetry.scrape import QueueLengths, forget_dead

JOB = "9f1c4a52-2d7e-4c1a-9d1e-0a3b5c7d9e11"


def _requests(route: str, status: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("jobcast_http_requests_total", labels) or 0.0


@pytest.mark.parametrize("metrics", [True, False])
def test_requests_are_counted_by_route_rule_only_when_the_app_counts(
    tmp_path: Path, metrics: bool
) -> None:
    app = create_app(
        {"env": "testing", "database_url": f"sqlite:///{tmp_path / 'j.db'}", "metrics": metrics}
    )
    route = "/api/v1/jobs/<job_id>"
    before = _requests(route, "401")
    assert app.test_client().get(f"/api/v1/jobs/{JOB}").status_code == 401
    assert _requests(route, "401") - before == (1 if metrics else 0)
    assert (
        REGISTRY.get_sample_value(
            "jobcast_http_requests_total", {"method": "GET", "route": f"/api/v1/jobs/{JOB}"}
        )
        is None
    )
    assert (app.test_client().get("/metrics").status_code == 200) is metrics


def test_an_unknown_method_is_one_label_value(tmp_path: Path) -> None:
    app = create_app({"env": "testing", "database_url": f"sqlite:///{tmp_path / 'j.db'}"})
    before = _requests("(unmatched)", "405", method="other")
    app.test_client().open("/healthz", method="BREW")
    assert _requests("(unmatched)", "405", method="other") - before == 1


@pytest.mark.parametrize("message", [None, 'a "ts":1.0 lookalike', "plain"])
def test_the_delivery_timestamp_is_read_from_the_packet_without_decoding_it(
    message: str | None,
) -> None:
    now = time.time()
    body = orjson.dumps(
        {"status": "running", "progress": 5.0, "message": message, "ts": now, "ts2": 1}
    ).decode()
    frame = UserChannelWire("jobcast", "/").frame("job.progress", JOB, "owner", body)
    packet = (frame.head + "7" + ',"epoch":1' + frame.tail).encode()
    found = _TS.search(packet)
    assert found is not None and float(found.group(1)) == now


def test_the_live_gauges_of_a_dead_process_are_dropped(tmp_path: Path) -> None:
    code = (
        "from prometheus_client import Gauge;"
        " Gauge('jobcast_test_live', 'x', multiprocess_mode='livesum').set(1)"
    )
    env = {**os.environ, METRICS_DIR: str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, str(tmp_path))
    assert registry.get_sample_value("jobcast_test_live") == 1
    forget_dead(str(tmp_path))
    assert not registry.get_sample_value("jobcast_test_live")


def test_a_metrics_directory_is_made_private_and_empty_unless_the_user_gave_one(
    tmp_path: Path,
) -> None:
    given = {METRICS_DIR: str(tmp_path)}
    assert share_metrics_dir(given) is None and given[METRICS_DIR] == str(tmp_path)
    env: dict[str, str] = {}
    made = share_metrics_dir(env)
    try:
        assert made is not None and env[METRICS_DIR] == str(made)
        assert list(made.iterdir()) == []
        assert made.stat().st_mode & 0o777 == 0o700
    finally:
        if made is not None:
            made.rmdir()


def test_a_broker_that_does_not_answer_leaves_the_queue_lengths_out() -> None:
    lengths = QueueLengths()
    lengths.watch(f"redis://127.0.0.1:{free_port()}/0", ["jobcast.io"])
    lengths.watch("amqp://guest@127.0.0.1//", ["jobcast.io"])  # not Redis: not asked
    started = time.monotonic()
    (family,) = lengths.collect()
    assert family.name == "jobcast_queue_length" and family.samples == []
    assert time.monotonic() - started < 2
