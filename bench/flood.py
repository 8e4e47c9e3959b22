"""``python -m bench flood``: how many events per second web processes deliver, and per core.

``bench fanout`` makes its events with real jobs, so one worker's CPU sets the pace and the web
process's ceiling is never reached. Here producer processes publish through jobcast's own
``RedisEventLog`` (the worker's path: number, log, publish on the owner's channel) as fast as
they can, ``--flood-events`` per user, to ``--flood-clients`` users each with one connection,
spread round-robin over ``--webs`` web processes. Per web count, on a fresh stack: the events
delivered, lost (gaps in seq), the delivery rate, and the CPU every web process used, so
``events_per_web_core`` = events delivered / web CPU seconds, the figure that does not depend on
how many cores were left for the web on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from redis import Redis

from bench.common import local_stack, machine, say, signup_many, table
from bench.procfs import cpu_seconds, process_tree
from jobcast.jobs.redis_events import RedisEventLog
from jobcast.realtime.wire import UserChannelWire

ROOT = Path(__file__).resolve().parent.parent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flood-clients", type=int, default=200, help="users, one socket each")
    parser.add_argument("--flood-events", type=int, default=100, help="events per user")
    parser.add_argument("--webs", default="1,2", help="web process counts, comma-separated")
    parser.add_argument("--producers", type=int, default=2, help="publishing processes")


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for webs in [int(w) for w in str(args.webs).split(",") if w.strip()]:
        results[str(webs)] = _run_once(args, webs)
    table(
        "flood: events delivered by the web processes (producers publish directly)",
        [
            (w, r["delivered"], r["lost"], r["events_per_second"], r["web_cpu_seconds"],
             r["events_per_web_core"], r["producer_events_per_second"])
            for w, r in results.items()
        ],
        ("webs", "delivered", "lost", "events/s", "web CPU s", "events/web core s", "published/s"),
    )  # fmt: skip
    return {
        "benchmark": "flood",
        "params": {
            "clients": args.flood_clients,
            "events_per_client": args.flood_events,
            "producers": args.producers,
            "async_mode": os.environ.get("JOBCAST_ASYNC_MODE", "gevent"),
        },
        "machine": machine(),
        "runs": results,
    }


def _run_once(args: argparse.Namespace, webs: int) -> dict[str, Any]:
    env = {"JOBCAST_MAX_SOCKETS_PER_USER": "10"}
    with local_stack(f"flood-{webs}", env_overrides=env, worker_pools=(), keep=args.keep) as stack:
        assert stack.redis_url is not None
        urls = [stack.base_url] + [stack.start_web(name=f"web-{i}") for i in range(2, webs + 1)]
        names = ["web"] + [f"web-{i}" for i in range(2, webs + 1)]
        say(f"signing up {args.flood_clients} users")
        run_id = uuid.uuid4().hex[:6]
        tokens = signup_many(
            stack.base_url, [f"flood-{run_id}-{i}@example.com" for i in range(args.flood_clients)]
        )
        user_ids = [_user_id(token) for token in tokens]
        clients = subprocess.Popen(
            [sys.executable, "-m", "bench.flood_clients"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert clients.stdin is not None and clients.stdout is not None
        clients.stdin.write(json.dumps({"urls": urls, "tokens": tokens}) + "\n")
        clients.stdin.flush()
        say(f"clients: {clients.stdout.readline().strip()}")
        web_pids = [pid for name in names for pid in process_tree(stack.process(name).pid)]
        cpu_before = cpu_seconds(web_pids)
        started, published = _produce(stack.redis_url, stack.env, user_ids, args)
        if _never_reported(clients):
            clients.stdin.write("stop\n")  # some event never came: report what did
            clients.stdin.flush()
        report = json.loads(clients.stdout.readline())
        web_cpu = cpu_seconds(web_pids) - cpu_before
        clients.stdin.close()
        clients.wait(timeout=60)
    expected = args.flood_events
    delivered = sum(len(r["seqs"]) for r in report)
    lost = sum(expected - len(set(r["seqs"])) for r in report)
    last = max((r["last"] or started) for r in report)
    wall = last - started
    return {
        "webs": webs,
        "clients": len(report),
        "delivered": delivered,
        "lost": lost,
        "wall_seconds": round(wall, 2),
        "events_per_second": round(delivered / wall) if wall > 0 else None,
        "web_cpu_seconds": round(web_cpu, 2),
        "events_per_web_core": round(delivered / web_cpu) if web_cpu > 0 else None,
        "producer_events_per_second": published,
    }


def _user_id(token: str) -> int:
    # The benchmark only reads the subject of a token the server just issued to it.
    return int(jwt.decode(token, options={"verify_signature": False})["sub"])


def _produce(
    redis_url: str, env: dict[str, str], user_ids: list[int], args: argparse.Namespace
) -> tuple[float, int]:
    """Run the producers to completion; returns when the first began publishing and the
    events per second they published (their start-up does not count)."""
    shares = [user_ids[i :: args.producers] for i in range(args.producers)]
    config = {
        "redis_url": redis_url,
        "channel": env["JOBCAST_SOCKETIO_CHANNEL"],
        "events": args.flood_events,
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.flood", "produce", json.dumps({**config, "users": s})],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for s in shares
        if s
    ]
    spans = [json.loads(proc.communicate(timeout=600)[0]) for proc in procs]
    began, ended = min(s["began"] for s in spans), max(s["ended"] for s in spans)
    return began, round(len(user_ids) * args.flood_events / (ended - began))


def _never_reported(clients: subprocess.Popen[str], timeout: float = 60) -> bool:
    """True if the clients have not reported within ``timeout`` (some event never came)."""
    assert clients.stdout is not None
    ready, _, _ = select.select([clients.stdout], [], [], timeout)
    return not ready


def produce(config: dict[str, Any]) -> None:
    """One producer: ``events`` events for each of its users' one job, round-robin over users,
    so every room is busy at once; the last event of each job is terminal."""
    publisher = RedisEventLog(
        Redis.from_url(config["redis_url"], decode_responses=True),
        wire=UserChannelWire(config["channel"]),
        retention_seconds=3600,
    )
    jobs = {user: str(uuid.uuid4()) for user in config["users"]}
    total = config["events"]
    began = time.time()
    for n in range(1, total + 1):
        event = "job.succeeded" if n == total else "job.progress"
        for user, job_id in jobs.items():
            publisher.publish(
                event,
                job_id=job_id,
                owner_id=user,
                status="succeeded" if n == total else "running",
                progress=100.0 * n / total,
                message=f"step {n} of {total}",
            )
    print(json.dumps({"began": began, "ended": time.time()}), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["produce"]:
    produce(json.loads(sys.argv[2]))
