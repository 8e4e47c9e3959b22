"""What the clients of a latency run received, judged against each job's own record.

Nothing is lost if, for every job a client should see, it got every ``seq`` from 1 to the last
one (the highest seq the job's durable log holds, or with the log off, its terminal event's),
ending with a terminal event. A duplicate is the same (job, seq) received twice: what a client's
dedupe by seq removes. What survives that dedupe and still repeats an earlier event of the job
(same name, same payload but for seq and ts) is a duplicate the product itself published.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from bench.clients import BenchClient, Run
from bench.common import TERMINAL_EVENTS, percentiles

#: Payload fields that differ between two publications of one event.
_VOLATILE = ("seq", "ts")


def analyse(run: Run, history: dict[str, list[int]]) -> dict[str, Any]:
    """Latency, completeness and rate, per client, against ``history`` (job id -> logged seqs)."""
    latencies: list[float] = []
    settled: list[float] = []
    by_event: dict[str, list[float]] = defaultdict(list)
    per_second: Counter[int] = Counter()
    tally: Counter[str] = Counter()
    last_receive = run.first_submit
    for client in run.clients:
        tally.update(_check_client(run, client, history))
        for received, event, payload in client.received:
            if payload.get("job_id") in run.jobs_for(client):
                ms = (received - payload["ts"]) * 1000
                latencies.append(ms)
                if payload["ts"] >= run.all_submitted:
                    settled.append(ms)
                by_event[event].append(ms)
                per_second[int(received - run.first_submit)] += 1
                last_receive = max(last_receive, received)
    wall = last_receive - run.first_submit
    return {
        "jobs": _outcomes(run),
        "latency_ms": percentiles(latencies),
        "latency_ms_by_event": {e: percentiles(v) for e, v in sorted(by_event.items())},
        # The same, only for events published once every submit was answered.
        "latency_ms_once_submitted": percentiles(settled),
        "submit_burst_seconds": round(run.all_submitted - run.first_submit, 3),
        "events_received": len(latencies),
        "events_expected": tally["expected"],
        "lost": tally["missing"] + tally["no_terminal"],
        "lost_events": tally["missing"],
        "jobs_without_terminal": tally["no_terminal"],
        "duplicates": tally["duplicates"],
        "duplicates_after_dedupe": tally["repeats"],
        "extra_terminal_events": tally["extra_terminal"],
        "foreign_events": tally["foreign"],
        "clients_dropped": sum(c.dropped for c in run.clients),
        "timed_out": run.timed_out,
        "event_log": _log_summary(history),
        "wall_seconds": round(wall, 3),
        "events_per_second": round(len(latencies) / wall, 1) if wall > 0 else None,
        "events_per_second_peak_1s": max(per_second.values(), default=0),
    }


def _check_client(run: Run, client: BenchClient, history: dict[str, list[int]]) -> Counter[str]:
    tally: Counter[str] = Counter()
    mine = run.jobs_for(client)
    by_job: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for _, event, payload in client.received:
        if payload.get("job_id") in mine:
            by_job[payload["job_id"]].append((event, payload))
        else:
            tally["foreign"] += 1
    for job_id in mine:
        events = by_job.get(job_id, [])
        got = [p["seq"] for _, p in events]
        terminal = [p["seq"] for e, p in events if e in TERMINAL_EVENTS]
        logged = history.get(job_id, [])
        # The durable log is the truth; with it off, the terminal event's seq says how many.
        last = max(logged) if logged else (terminal[0] if terminal else max(got, default=0))
        expected = set(range(1, last + 1)) | set(logged)
        tally["expected"] += len(expected)
        tally["missing"] += len(expected - set(got))
        tally["duplicates"] += len(got) - len(set(got))
        tally["no_terminal"] += not terminal
        tally.update(_repeats_after_dedupe(events))
    return tally


def _repeats_after_dedupe(events: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    """Keep the first of each seq, as a client would; count what still repeats an event."""
    seen_seqs: set[int] = set()
    seen: set[str] = set()
    tally: Counter[str] = Counter()
    terminals = 0
    for event, payload in events:
        if payload["seq"] in seen_seqs:
            continue
        seen_seqs.add(payload["seq"])
        content = {k: v for k, v in payload.items() if k not in _VOLATILE}
        key = json.dumps([event, content], sort_keys=True)
        tally["repeats"] += key in seen
        seen.add(key)
        terminals += event in TERMINAL_EVENTS
    tally["extra_terminal"] += max(0, terminals - 1)
    return tally


def _log_summary(history: dict[str, list[int]]) -> dict[str, int]:
    """What the durable logs hold: every event, with no hole in seq; nothing with the log off."""
    return {
        "jobs": sum(bool(seqs) for seqs in history.values()),
        "events": sum(len(seqs) for seqs in history.values()),
        "gaps": sum(max(seqs) - len(set(seqs)) for seqs in history.values() if seqs),
    }


def _outcomes(run: Run) -> dict[str, Any]:
    """How many jobs were accepted and how each ended, with the distinct reasons why not."""
    refusals = Counter(c.submit_error for c in run.clients if c.submit_error)
    ended: dict[str, tuple[str, dict[str, Any]]] = {}
    for c in run.clients:
        for _, event, payload in c.received:
            if event in TERMINAL_EVENTS:
                ended[payload["job_id"]] = (event, payload)
    errors = Counter(
        json.dumps(p.get("error"), sort_keys=True)
        for e, p in ended.values()
        if e != "job.succeeded"
    )
    return {
        "submitted": len(run.clients),
        "accepted": sum(c.job_id is not None for c in run.clients),
        "refused": sum(refusals.values()),
        "refusal_reasons": dict(refusals.most_common(3)),
        **{
            e.removeprefix("job."): sum(n == e for n, _ in ended.values())
            for e in sorted(TERMINAL_EVENTS)
        },
        "failure_reasons": dict(errors.most_common(3)),
    }


def job_timings(run: Run) -> dict[str, Any]:
    """From the events' own timestamps: did every job start at once and run its nominal time?"""
    first: dict[str, dict[str, float]] = defaultdict(dict)
    for c in run.clients:
        for _, event, payload in c.received:
            first[payload["job_id"]].setdefault(event, payload["ts"])
    queued_to_started, spans = [], []
    for events in first.values():
        if "job.queued" in events and "job.started" in events:
            queued_to_started.append((events["job.started"] - events["job.queued"]) * 1000)
        finished = next((events[e] for e in TERMINAL_EVENTS if e in events), None)
        if "job.started" in events and finished is not None:
            spans.append((events["job.started"], finished))
    return {
        "max_jobs_running_at_once": _max_overlap(spans),
        "submit_http_ms": percentiles([c.submit_ms for c in run.clients if c.submit_ms]),
        "queued_to_started_ms": percentiles(queued_to_started),
        "started_to_finished_s": percentiles([end - start for start, end in spans]),
        "client_loop_lag_ms": percentiles(run.lag_ms),
        "cpu_seconds": run.cpu,
    }


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most (start, end) spans open at one instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


__all__ = ["analyse", "job_timings"]
