"""``python -m bench latency``: how late do job events reach many Socket.IO clients at once?

N clients (one process, ``socketio.AsyncClient`` over asyncio, websocket transport) connect to
a LocalStack, each submits one ``demo.steps`` job at about the same moment, and every event
received is timed as ``receive time - payload["ts"]`` (``ts`` is taken in the publishing
process right before the event is recorded and emitted). The same stack then measures the
floor: plain Redis pub/sub on the same server, with as many messages in the same bursts,
received by a separate process.

``--api-web separate`` starts a second web process that takes the submits, while the clients'
sockets stay on the first: the layout where a proxy routes ``/api`` and ``/socket.io`` to
separate pools, so the submit burst does not share a gevent loop with event delivery.

``--durable both`` runs the same workload twice, each time on a fresh stack: with the durable
event log (one Redis Stream per job) on, then off (``JOBCAST_DURABLE_EVENTS=false``), and
compares the two. The floor measured on each stack says how much the machine itself changed
between the runs.

``--telemetry off,metrics,tracing`` runs the workload once per variant (``bench.telemetry``),
each on a fresh stack whose every process has that variant's environment, and compares each
variant's latency and throughput with ``off``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from typing import Any

from bench.clients import drive
from bench.common import (
    event_log,
    local_stack,
    log_errors,
    machine,
    positive,
    say,
    signup_many,
    table,
)
from bench.delivery import analyse, job_timings
from bench.redis_floor import redis_floor
from bench.telemetry import add_argument, environment, otlp_sink, overhead, sink_url, variants

#: ``--durable``: which runs, in order.
DURABLE_RUNS = {"on": ("on",), "off": ("off",), "both": ("on", "off")}
#: The delivery numbers the stderr table shows, in order.
SUMMARY = (
    "submit_burst_seconds",
    "events_received",
    "events_expected",
    "lost",
    "duplicates",
    "duplicates_after_dedupe",
    "foreign_events",
    "clients_dropped",
    "max_jobs_running_at_once",
    "wall_seconds",
    "events_per_second",
    "events_per_second_peak_1s",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clients", type=positive, default=200, help="Socket.IO clients and jobs")
    parser.add_argument(
        "--users",
        type=positive,
        default=None,
        help="distinct users the clients share round-robin; None: one per client, so each"
        " client sees only its own job",
    )
    parser.add_argument("--steps", type=positive, default=20, help="demo.steps: steps per job")
    parser.add_argument("--step-ms", type=positive, default=100, help="demo.steps: ms per step")
    parser.add_argument(
        "--durable",
        choices=tuple(DURABLE_RUNS),
        default="on",
        help="the durable event log on, off, or both (two runs, each on a fresh stack)",
    )
    parser.add_argument(
        "--api-web",
        choices=("same", "separate"),
        default="same",
        help="submit to the web process holding the sockets, or to a second one",
    )
    add_argument(parser)


def run(args: argparse.Namespace) -> dict[str, Any]:
    compared = variants(args.telemetry)
    if compared:
        return _run_variants(args, compared)
    runs = {mode: _run_once(args, durable=mode == "on") for mode in DURABLE_RUNS[args.durable]}
    preset = getattr(args, "preset", None)
    document: dict[str, Any] = {
        "benchmark": preset or "latency",
        "params": {
            "clients": args.clients,
            "users": args.users or args.clients,
            "steps": args.steps,
            "step_ms": args.step_ms,
            "durable": args.durable,
            "transport": "websocket",
            "api_web": args.api_web,
            **(getattr(args, "preset_params", None) or {}),
        },
        "machine": machine(),
    }
    if len(runs) == 2:
        document["comparison"] = compare(runs["on"], runs["off"])
    document["runs"] = runs
    _print(document)
    return document


def _run_variants(args: argparse.Namespace, compared: tuple[str, ...]) -> dict[str, Any]:
    """The workload once per telemetry variant, each on a fresh stack, durable log as chosen."""
    durable = args.durable != "off"
    with otlp_sink() as sink:
        runs = {
            v: _run_once(args, durable=durable, variant=v, extra=environment(v, sink_url(sink)))
            for v in compared
        }
        exported = {"exports": sink.exports, "bytes": sink.bytes_received}
    document: dict[str, Any] = {
        "benchmark": "latency",
        "params": {
            "clients": args.clients,
            "users": args.users or args.clients,
            "steps": args.steps,
            "step_ms": args.step_ms,
            "durable": "on" if durable else "off",
            "telemetry": list(compared),
            "api_web": args.api_web,
        },
        "machine": machine(),
    }
    if "off" in compared:
        off = runs["off"]["jobcast"]
        document["telemetry"] = {
            "compared_to_off": {
                v: {
                    **{
                        f"latency_ms_{q}": overhead(
                            r["jobcast"]["latency_ms"][q], off["latency_ms"][q]
                        )
                        for q in ("p50", "p99")
                    },
                    "events_per_second": overhead(
                        r["jobcast"]["events_per_second"], off["events_per_second"]
                    ),
                    "lost": r["jobcast"]["lost"],
                }
                for v, r in runs.items()
                if v != "off"
            },
            "otlp_sink": exported,
        }
    document["runs"] = runs
    _print(document)
    return document


def _run_once(
    args: argparse.Namespace,
    *,
    durable: bool,
    variant: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One workload on a fresh stack: the clients' view, checked against the logs, and the
    Redis floor on the same server."""
    mode = "on" if durable else "off"
    clients, users = args.clients, args.users or args.clients
    overrides = {
        # Every job must run at once, and every websocket holds one web thread.
        "JOBCAST_IO_CONCURRENCY": str(clients),
        "JOBCAST_WEB_THREADS": str(max(500, clients + 100)),
        "JOBCAST_DURABLE_EVENTS": "true" if durable else "false",
        **(extra or {}),
    }
    load_before = _loadavg()
    say(f"latency run with the durable event log {mode}, telemetry {variant or 'default'}")
    with local_stack(
        f"latency-{variant or mode}", env_overrides=overrides, worker_pools=("io",), keep=args.keep
    ) as stack:
        say(f"signing up {users} users")
        run_id = uuid.uuid4().hex[:6]
        tokens = signup_many(
            stack.base_url, [f"bench-{run_id}-{i}@example.com" for i in range(users)]
        )
        api_url = stack.base_url
        names = ["web", "worker-io", "redis"]
        if args.api_web == "separate":
            api_url = stack.start_web(name="web-api")
            names.append("web-api")
        pids = {name: stack.process(name).pid for name in names}
        params = {"steps": args.steps, "step_ms": args.step_ms}
        result = asyncio.run(drive(stack.base_url, tokens, params, clients, pids, api_url=api_url))
        assert stack.redis_url is not None
        log = event_log(stack.redis_url)
        history = {
            c.job_id: [p["seq"] for _, p in log.history(c.job_id)]
            for c in result.clients
            if c.job_id
        }
        jobcast = {**analyse(result, history), **job_timings(result)}
        jobcast["server_errors"] = log_errors(stack.logs)
        received = jobcast["events_received"] or 1
        say(f"measuring the Redis pub/sub floor with {received} messages")
        floor = redis_floor(stack.redis_url, received, burst=clients, period=args.step_ms / 1000)
    return {
        "durable_events": durable,
        "telemetry": variant,
        "io_concurrency": int(overrides["JOBCAST_IO_CONCURRENCY"]),
        "web_threads": int(overrides["JOBCAST_WEB_THREADS"]),
        # The host is shared: how busy it was around this run, to tell noise from overhead.
        "loadavg_1m_before_after": [load_before, _loadavg()],
        "jobcast": jobcast,
        "redis_floor": floor,
    }


def _loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def compare(on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    """Issue 3's figures side by side: what the durable log costs, and that it loses nothing."""
    jc_on, jc_off = on["jobcast"], off["jobcast"]

    def side_by_side(key: str) -> dict[str, Any]:
        return {"on": jc_on[key], "off": jc_off[key]}

    return {
        "lost": side_by_side("lost"),
        "duplicates": side_by_side("duplicates"),
        "duplicates_after_dedupe": side_by_side("duplicates_after_dedupe"),
        "latency_ms": {
            q: overhead(jc_on["latency_ms"][q], jc_off["latency_ms"][q]) for q in ("p50", "p99")
        },
        "events_per_second": side_by_side("events_per_second"),
        "events_per_second_peak_1s": side_by_side("events_per_second_peak_1s"),
        "redis_floor_latency_ms": {
            q: overhead(on["redis_floor"]["latency_ms"][q], off["redis_floor"]["latency_ms"][q])
            for q in ("p50", "p99")
        },
    }


def _print(document: dict[str, Any]) -> None:
    for mode, result in document["runs"].items():
        jc, floor = result["jobcast"], result["redis_floor"]
        rows = [
            ["jobcast: worker -> client", *_quantiles(jc["latency_ms"])],
            *[[f"  {event}", *_quantiles(s)] for event, s in jc["latency_ms_by_event"].items()],
            ["  once every job was submitted", *_quantiles(jc["latency_ms_once_submitted"])],
            ["redis pub/sub floor", *_quantiles(floor["latency_ms"])],
            ["client event-loop lag", *_quantiles(jc["client_loop_lag_ms"])],
        ]
        header = ["path", "count", "p50", "p95", "p99", "max"]
        table(f"event latency (ms), run {mode}", rows, header)
        jobs = jc["jobs"]
        summary = [[f"jobs {k}", jobs[k]] for k in ("accepted", "refused", "succeeded", "failed")]
        summary += [[key, jc[key]] for key in SUMMARY]
        summary += [[f"cpu s: {name}", secs] for name, secs in jc["cpu_seconds"].items()]
        table(f"delivery, run {mode}", summary, ["what", "value"])
    if "telemetry" in document:
        rows = [
            [
                variant,
                *(c[f"latency_ms_{q}"]["overhead_percent"] for q in ("p50", "p99")),
                c["events_per_second"]["overhead_percent"],
                c["lost"],
            ]
            for variant, c in document["telemetry"]["compared_to_off"].items()
        ]
        table(
            "telemetry on vs off (latency overhead %)",
            rows,
            ["variant", "p50 %", "p99 %", "events/s %", "lost"],
        )
    if "comparison" in document:
        cmp = document["comparison"]
        rows = [
            [f"latency {q} ms", v["on"], v["off"], v["overhead_percent"]]
            for q, v in cmp["latency_ms"].items()
        ]
        rows += [
            [f"redis floor {q} ms", v["on"], v["off"], v["overhead_percent"]]
            for q, v in cmp["redis_floor_latency_ms"].items()
        ]
        for key in ("lost", "duplicates_after_dedupe", "events_per_second"):
            rows.append([key, cmp[key]["on"], cmp[key]["off"], None])
        table("durable log on vs off", rows, ["what", "on", "off", "overhead %"])


def _quantiles(stats: dict[str, Any]) -> list[Any]:
    return [stats["count"], stats["p50"], stats["p95"], stats["p99"], stats["max"]]


__all__ = ["add_arguments", "compare", "run"]
