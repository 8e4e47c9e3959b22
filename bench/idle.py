"""``python -m bench idle``: how many idle Socket.IO WebSocket clients one web process holds.

For each ``--mode`` (threading: gunicorn gthread, one thread per WebSocket; gevent: gunicorn's
gevent worker, one greenlet each) a fresh LocalStack with no worker is started, and a separate
client process (``bench.idle_clients``, fd limit raised to the hard limit) ramps up through
``--steps`` connections. After each step settles, the web worker's RSS and CPU are read from
``/proc``; RSS per connection is the growth over the idle baseline divided by the connections
held, and ``marginal_kb_per_connection`` is the slope between two steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.common import local_stack, machine, say, signup_many, table
from bench.procfs import cpu_seconds, process_tree, rss_kb

#: Seconds to let the server settle after a step before reading its RSS.
SETTLE_SECONDS = 3.0
SOCKETS_PER_USER = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ramp",
        default="500,1000,2000",
        help="connection counts to ramp through, comma-separated",
    )
    parser.add_argument(
        "--mode",
        choices=("threading", "gevent", "both"),
        default="both",
        help="the web server's JOBCAST_ASYNC_MODE",
    )
    parser.add_argument(
        "--hold-seconds", type=float, default=5.0, help="idle time at the last step (CPU)"
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    steps = sorted({int(s) for s in str(args.ramp).split(",") if s.strip()})
    modes = ("threading", "gevent") if args.mode == "both" else (args.mode,)
    runs = {mode: _run_mode(mode, steps, args) for mode in modes}
    rows = [
        (mode, s["connections"], s["failed"], s["web_rss_mb"], s["kb_per_connection"],
         s["marginal_kb_per_connection"], s["threads"], s["loadavg_1m"])
        for mode, r in runs.items()
        for s in r["steps"]
    ]  # fmt: skip
    table(
        "idle Socket.IO WebSocket connections on one web process",
        rows,
        ("mode", "held", "failed", "web RSS MB", "KB/conn", "marginal KB", "threads", "load 1m"),
    )
    return {
        "benchmark": "idle",
        "params": {"steps": steps, "hold_seconds": args.hold_seconds},
        "machine": machine(),
        "runs": runs,
    }


def _run_mode(mode: str, steps: list[int], args: argparse.Namespace) -> dict[str, Any]:
    say(f"idle: {mode} mode, ramping to {steps[-1]} connections")
    env = {
        "JOBCAST_ASYNC_MODE": mode,
        # gthread: each WebSocket holds a thread for its whole life.
        "JOBCAST_WEB_THREADS": str(min(10_000, max(500, steps[-1] + 100))),
        "JOBCAST_MAX_SOCKETS_PER_USER": str(SOCKETS_PER_USER),
    }
    with local_stack(f"idle-{mode}", env_overrides=env, worker_pools=(), keep=args.keep) as stack:
        users = max(1, -(-steps[-1] // SOCKETS_PER_USER))
        emails = [f"idle-{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(users)]
        tokens = signup_many(stack.base_url, emails)
        web = _web_worker_pid(stack.process("web").pid)
        time.sleep(1)
        base_kb = rss_kb(web)
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.idle_clients", stack.base_url, ",".join(tokens)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdin is not None and clients.stdout is not None
        results: list[dict[str, Any]] = []
        previous = (0, base_kb)
        try:
            for target in steps:
                clients.stdin.write(f"{target}\n")
                clients.stdin.flush()
                line = clients.stdout.readline()
                if not line:
                    raise RuntimeError("the client process died")
                got = json.loads(line)
                time.sleep(SETTLE_SECONDS)
                now_kb = rss_kb(web)
                held = got["connected"]
                growth = now_kb - base_kb
                marginal = (now_kb - previous[1]) / max(1, held - previous[0])
                results.append(
                    {
                        "target": target,
                        "connections": held,
                        "failed": got["failed"],
                        "dropped": got["dropped"],
                        "first_errors": got["first_errors"],
                        "connect_seconds": got["seconds"],
                        "web_rss_mb": round(now_kb / 1024, 1),
                        "kb_per_connection": round(growth / held, 1) if held else None,
                        "marginal_kb_per_connection": round(marginal, 1),
                        "threads": _threads(web),
                        "client_rss_mb": got["client_rss_mb"],
                        # The host is shared: say how busy it was when this step was read.
                        "loadavg_1m": round(os.getloadavg()[0], 2),
                    }
                )
                say(f"idle {mode}: {results[-1]}")
                previous = (held, now_kb)
                if got["failed"] > target // 10:
                    say(f"idle {mode}: stopping the ramp, too many failures")
                    break
            cpu_before = cpu_seconds([web])
            time.sleep(args.hold_seconds)
            idle_cpu = cpu_seconds([web]) - cpu_before
            clients.stdin.write(f"{results[-1]['connections']}\n")
            clients.stdin.flush()
            after_hold = json.loads(clients.stdout.readline())
        finally:
            clients.stdin.close()
            try:
                clients.wait(timeout=30)
            except subprocess.TimeoutExpired:
                clients.kill()
        return {
            "async_mode": mode,
            "web_threads_setting": env["JOBCAST_WEB_THREADS"],
            "web_baseline_rss_mb": round(base_kb / 1024, 1),
            "steps": results,
            "held_after_hold": after_hold["connected"],
            "dropped_during_hold": after_hold["dropped"] - results[-1]["dropped"],
            "web_cpu_percent_while_idle": round(100 * idle_cpu / args.hold_seconds, 1),
        }


def _web_worker_pid(root: int) -> int:
    """gunicorn's one worker (depth 1) holds the connections; the arbiter (depth 0) does not."""
    tree = process_tree(root)
    workers = [pid for pid, depth in tree.items() if depth == 1]
    return workers[0] if workers else root


def _threads(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None
