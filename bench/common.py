"""What every benchmark shares: a LocalStack in a temp dir, signed-up users, a reader of job
event logs, percentiles, and the JSON + table output. ``/proc`` readings live in ``procfs``.

Benchmarks report, they never judge: nothing here compares a number with a threshold.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from redis import Redis

from jobcast.jobs import states
from jobcast.jobs.redis_events import RedisEventLog
from jobcast.realtime.wire import UserChannelWire
from jobcast.service.testing import LocalStack, fresh_database

PASSWORD = "bench-password-not-secret"
TERMINAL_EVENTS = frozenset(states.EVENT_FOR_STATE[s] for s in states.TERMINAL)
#: Every benchmark is a load test from one address: the abuse limits would refuse it.
DATABASE_ENV = "JOBCAST_BENCH_DATABASE_URL"
STACK_DEFAULTS = {"JOBCAST_LOG_LEVEL": "WARNING", "JOBCAST_RATE_LIMITS": "false"}


# --- output -------------------------------------------------------------------------------


def say(message: str) -> None:
    """Progress for the person watching; stdout is kept for the one JSON document."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(document: dict[str, Any]) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    sys.stdout.flush()


def table(title: str, rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain aligned table on stderr."""
    cells = [[str(c) for c in header], *[[_cell(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    rule = "-" * len(lines[0])
    print(f"\n{title}\n{rule}\n{lines[0]}\n{rule}", file=sys.stderr)
    print("\n".join(lines[1:]), file=sys.stderr, flush=True)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> dict[str, Any]:
    """Enough about the host to tell two result files apart."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_mb": _meminfo_mb("MemTotal"),
        # Other work on the same cores skews every number: say how busy the host was.
        "loadavg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "database": "postgresql" if os.environ.get(DATABASE_ENV) else "sqlite",
    }


def _meminfo_mb(key: str) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return None


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# --- statistics ---------------------------------------------------------------------------


def percentiles(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """count, min, mean, p50, p95, p99 and max of ``values`` (linear interpolation)."""
    if not values:
        return {
            "count": 0,
            "min": None,
            "mean": None,
            "p50": None,
            "p95": None,
            "p99": None,
            "max": None,
        }
    data = sorted(values)

    def at(q: float) -> float:
        k = (len(data) - 1) * q
        lo = math.floor(k)
        hi = min(lo + 1, len(data) - 1)
        return data[lo] + (data[hi] - data[lo]) * (k - lo)

    return {
        "count": len(data),
        "min": round(data[0], digits),
        "mean": round(math.fsum(data) / len(data), digits),
        "p50": round(at(0.50), digits),
        "p95": round(at(0.95), digits),
        "p99": round(at(0.99), digits),
        "max": round(data[-1], digits),
    }


# --- the stack ----------------------------------------------------------------------------


@contextlib.contextmanager
def local_stack(
    name: str,
    *,
    env_overrides: dict[str, str] | None = None,
    worker_pools: tuple[str, ...] = ("all",),
    keep: bool = False,
) -> Iterator[LocalStack]:
    """A LocalStack in a fresh temp dir, stopped on any exit, Ctrl-C included.

    The temp dir is removed afterwards unless ``keep`` or a failure happened, in which case the
    tail of every log is printed and the directory is left for a look.
    """
    root = Path(tempfile.mkdtemp(prefix=f"jobcast-bench-{name}-"))
    overrides = {**STACK_DEFAULTS, **(env_overrides or {})}
    failed = False
    say(f"starting the stack in {root}")
    with _database() as database_url:
        stack = LocalStack(
            root, database_url=database_url, env_overrides=overrides, worker_pools=worker_pools
        )
        try:
            stack.__enter__()
            say(f"stack up: {stack.base_url} (redis {stack.redis_url})")
            yield stack
        except Exception:
            failed = True
            _print_log_tails(stack.logs)
            raise
        finally:
            say("stopping the stack")
            with _signals_held():
                stack.stop()
            if keep or failed:
                say(f"kept {root}")
            else:
                shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _database() -> Iterator[str | None]:
    """None (SQLite in the stack's dir), or with ``JOBCAST_BENCH_DATABASE_URL`` (a PostgreSQL
    server URL allowed to create databases) a fresh database there, dropped afterwards."""
    admin_url = os.environ.get(DATABASE_ENV)
    if not admin_url:
        yield None
        return
    with fresh_database(admin_url, prefix="jobcast_bench") as url:
        yield url


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """A second Ctrl-C while stopping would orphan servers: hold signals until all are down."""
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _print_log_tails(logs: Path, chars: int = 3000) -> None:
    for log in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        text = log.read_text(errors="replace")[-chars:]
        print(f"===== {log} (tail)\n{text}", file=sys.stderr)


_CHAINED = ("During handling of the above exception", "The above exception was the direct")
_EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Timeout)\b")
# jobcast's log format: "<date> <time> ERROR <logger> [req=.. job=..] <message>".
_ERROR_RECORD = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) (\S+) (?:\[[^\]]*\] )?(.*)$")
_IDS = re.compile(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b|\b[0-9a-f]{16,}\b")


def log_errors(logs: Path, top: int = 5) -> dict[str, dict[str, int]]:
    """Per log, the most frequent ERROR records (ids masked) and the exceptions tracebacks end
    with (in a chain, only the last): a run's numbers mean little if servers were failing."""
    found: dict[str, dict[str, int]] = {}
    for log in sorted(logs.glob("*.log")):
        counts: dict[str, int] = {}
        pending: str | None = None
        with log.open(errors="replace") as lines:
            for line in lines:
                if not line.strip():
                    continue
                if pending and not line.startswith(_CHAINED):
                    counts[pending] = counts.get(pending, 0) + 1
                exception = _EXCEPTION_LINE.match(line)
                pending = exception.group() if exception else None
                record = _ERROR_RECORD.match(line.rstrip())
                if record:
                    level, logger, message = record.groups()
                    key = f"{level} {logger}: {_IDS.sub('*', message)[:160]}"
                    counts[key] = counts.get(key, 0) + 1
        if pending:
            counts[pending] = counts.get(pending, 0) + 1
        if counts:
            found[log.name] = dict(sorted(counts.items(), key=lambda item: -item[1])[:top])
    return found


def stop_on_sigterm() -> None:
    """Turn SIGTERM and SIGHUP into KeyboardInterrupt, so ``finally`` blocks stop the stack."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupt)


def signup(base_url: str, email: str, session: requests.Session | None = None) -> str:
    """Register ``email`` and log in; returns the access token."""
    http = session or requests.Session()
    body = {"email": email, "password": PASSWORD}
    response = http.post(f"{base_url}/api/v1/auth/register", json=body, timeout=60)
    if response.status_code != 201:
        raise RuntimeError(f"register {email}: HTTP {response.status_code} {response.text}")
    response = http.post(f"{base_url}/api/v1/auth/login", json=body, timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"login {email}: HTTP {response.status_code} {response.text}")
    token: str = response.json()["access_token"]
    return token


def signup_many(base_url: str, emails: Sequence[str], parallel: int = 4) -> list[str]:
    """Access tokens for ``emails``; argon2 makes each signup cost ~2 hashes, so few at once."""
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda email: signup(base_url, email), emails))


# --- event logs ---------------------------------------------------------------------------


def event_log(redis_url: str) -> RedisEventLog:
    """jobcast's own reader of job event logs (``history``), for checking what clients got."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    return RedisEventLog(redis, wire=UserChannelWire("jobcast"), retention_seconds=3600)
