"""``python -m bench fanout``: events per second one web process delivers to N clients.

The latency workload turned into a flood: every client's job is ``demo.steps`` with
``--fanout-steps`` steps of 1 ms and ``JOBCAST_PROGRESS_INTERVAL=0``, so every step is an event.
For each ``--fanout-clients`` count, one latency run on a fresh stack; the figures taken from it
are the events received per second (whole run and best second), the CPU the web process used
per second of the run (1.0 = one core) and the worker's, which tells which side limited the rate.
"""

from __future__ import annotations

import argparse
import copy
import os
from typing import Any

from bench import latency
from bench.common import machine, table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fanout-clients", default="10,200", help="client counts, comma-separated")
    parser.add_argument("--fanout-steps", type=int, default=200, help="events per job, about")


def run(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(c) for c in str(args.fanout_clients).split(",") if c.strip()]
    # LocalStack hands this process's environment to the servers it starts.
    previous = os.environ.get("JOBCAST_PROGRESS_INTERVAL")
    os.environ["JOBCAST_PROGRESS_INTERVAL"] = "0"
    results: dict[str, Any] = {}
    try:
        for count in counts:
            sub = copy.copy(args)
            sub.clients, sub.users, sub.durable = count, None, "on"
            sub.steps, sub.step_ms = args.fanout_steps, 1
            document = latency.run(sub)
            results[str(count)] = _figures(document["runs"]["on"]["jobcast"])
    finally:
        if previous is None:
            os.environ.pop("JOBCAST_PROGRESS_INTERVAL", None)
        else:
            os.environ["JOBCAST_PROGRESS_INTERVAL"] = previous
    table(
        "fan-out: events one web process delivered",
        [
            (n, r["events_received"], r["lost"], r["events_per_second"],
             r["events_per_second_peak_1s"], r["web_cores"], r["worker_cores"])
            for n, r in results.items()
        ],
        ("clients", "events", "lost", "events/s", "peak 1 s", "web cores", "worker cores"),
    )  # fmt: skip
    return {
        "benchmark": "fanout",
        "params": {
            "clients": counts,
            "steps": args.fanout_steps,
            "step_ms": 1,
            "async_mode": os.environ.get("JOBCAST_ASYNC_MODE", "gevent"),
        },
        "machine": machine(),
        "runs": results,
    }


def _figures(jobcast: dict[str, Any]) -> dict[str, Any]:
    wall = jobcast["wall_seconds"] or 0
    cpu = jobcast["cpu_seconds"]

    def cores(name: str) -> float | None:
        return round(cpu.get(name, 0) / wall, 2) if wall else None

    return {
        "events_received": jobcast["events_received"],
        "events_expected": jobcast["events_expected"],
        "lost": jobcast["lost"],
        "wall_seconds": wall,
        "events_per_second": jobcast["events_per_second"],
        "events_per_second_peak_1s": jobcast["events_per_second_peak_1s"],
        "latency_ms": jobcast["latency_ms"],
        "cpu_seconds": cpu,
        "web_cores": cores("web"),
        "worker_cores": cores("worker-io"),
    }
