"""The table ``python -m bench all`` ends with: each headline figure beside its reference and
issue 6's target, read from the benchmarks' documents. It restates targets; it judges nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import table

Row = tuple[str, Any, Any, Any, str]


def summary_rows(results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, build in _BUILDERS.items():
        if name in results:
            try:
                rows.extend(build(results[name]))
            except (KeyError, TypeError, IndexError) as exc:  # a changed document: say so
                rows.append((f"{name}: unreadable ({type(exc).__name__}: {exc})", "", "", "", ""))
    return rows


def print_summary(results: dict[str, Any]) -> None:
    table(
        "summary: jobcast beside its reference (same run)",
        summary_rows(results),
        ("figure", "jobcast", "reference", "ratio", "issue 6 target"),
    )


def _latency(doc: dict[str, Any]) -> list[Row]:
    clients = doc["params"]["clients"]
    rows: list[Row] = []
    for mode, run in doc["runs"].items():
        jc, floor = run["jobcast"]["latency_ms"], run["redis_floor"]["latency_ms"]
        for q, target in (("p50", "<= 3 ms"), ("p99", "<= 20 ms")):
            rows.append(
                (f"latency {q} ms, {clients} clients (log {mode})", jc[q], floor[q], None,
                 f"{target} at 200 clients")
            )  # fmt: skip
        rows.append((f"events lost (log {mode})", run["jobcast"]["lost"], None, None, "0"))
    return rows


def _replay(doc: dict[str, Any]) -> list[Row]:
    xrange = doc["redis_xrange"]["seconds"]
    return [
        (f"replay {doc['params']['events']:,} events via {way} s", doc[way]["seconds"], xrange,
         ratio, "-")
        for way, ratio in doc["ratio_to_redis_xrange"].items()
    ]  # fmt: skip


def _exports(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for kind, job in doc["jobcast"].items():
        bare = doc["bare"][kind]
        rows.append(
            (f"export.{kind} {doc['params']['rows']:,} rows s", job["seconds"], bare["seconds"],
             doc["ratio_jobcast_to_bare"][kind]["seconds"], ">= 80% of bare rows/s")
        )  # fmt: skip
        rows.append(
            (f"export.{kind} worker peak RSS MB", job["worker_rss"]["peak_single_process_mb"],
             bare["peak_rss_mb"], doc["ratio_jobcast_to_bare"][kind]["peak_rss"], "< 250 MB")
        )  # fmt: skip
    return rows


def _idle(doc: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for mode, run in doc["runs"].items():
        last = run["steps"][-1]
        rows.append(
            (f"idle WebSockets held ({mode})", last["connections"], None, None, ">= 10,000")
        )
        rows.append(
            (f"idle KB per connection ({mode})", last["kb_per_connection"], None, None, "<= 64 KB")
        )
    return rows


def _submit(doc: dict[str, Any]) -> list[Row]:
    jc, bare = doc["jobcast"], doc["bare_delay"]
    return [
        ("submit req/s", jc["per_second"], bare["per_second"], doc["ratio_jobcast_to_bare"],
         ">= 60% of bare"),
        ("submit p99 ms", jc["latency_ms"]["p99"], bare["latency_ms"]["p99"], None, "<= 50 ms"),
    ]  # fmt: skip


def _instructions(doc: dict[str, Any]) -> list[Row]:
    if "skipped" in doc:
        return [(f"submit instructions: skipped ({doc['skipped']})", "", "", "", "")]
    per = doc["instructions_per_request"]
    return [
        ("submit instructions/request (in-process)", per["jobcast"], per["bare_delay"],
         doc["ratio_bare_to_jobcast"], "(restates >= 60% as CPU)"),
    ]  # fmt: skip


def _overhead(doc: dict[str, Any]) -> list[Row]:
    best = doc["per_second_best"]
    return [
        ("no-op jobs/s", best["jobcast"], best["bare_celery"], doc["ratio_jobcast_to_bare"],
         ">= 70% of bare"),
    ]  # fmt: skip


def _fanout(doc: dict[str, Any]) -> list[Row]:
    return [
        (f"fan-out events/s, {n} clients (web cores)", r["events_per_second"], None,
         r["web_cores"], ">= 10,000 on <= 1 core")
        for n, r in doc["runs"].items()
    ]  # fmt: skip


def _flood(doc: dict[str, Any]) -> list[Row]:
    return [
        (f"flood: events per web core-second, {w} web process(es)", r["events_per_web_core"],
         None, None, ">= 10,000 on <= 1 core")
        for w, r in doc["runs"].items()
    ]  # fmt: skip


_BUILDERS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "latency": _latency,
    "replay": _replay,
    "exports": _exports,
    "idle": _idle,
    "submit": _submit,
    "overhead": _overhead,
    "instructions": _instructions,
    "fanout": _fanout,
    "flood": _flood,
}
