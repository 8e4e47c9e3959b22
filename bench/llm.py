"""``python -m bench llm``: N LLM answers streamed at once, through jobcast and the direct way.

A fake model (``jobcast.llm.fake_provider``, ``--rate`` tokens a second per stream) runs in a
child process of its own and notes when it wrote each token (``on_token``, ``time.monotonic()``:
one clock for every process on Linux). In this process its 100 serving threads would share the
GIL with the clients and delay the times they take on receipt. Each stream asks for
``LEN=<--tokens> <uuid>``, so every answer is known in advance and tied to its stream by prompt.

- ``direct``: the guides' pattern (``bench.llm_direct``), a Flask route under the same gunicorn
  worker class as ``jobcast web`` that proxies the provider's stream as SSE, one event per
  delta; N aiohttp clients read it.
- ``jobcast``: a LocalStack (one web process, the io worker) pointed at the provider, every
  LLM limit and the cache off; N users each connect one ``socketio.AsyncClient`` and submit one
  ``llm.chat`` job, whose answer arrives as merged ``job.output`` events.

Every event received is timed against the provider's write of the last token it carries
(``latency_ms``: provider chunk -> client); ``every_token_latency_ms`` times each token it
carries, so it includes the wait of tokens held back to be merged (up to
``JOBCAST_OUTPUT_INTERVAL``). A warm-up stream on each side is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.clients import _loop_lag
from bench.common import (
    local_stack,
    log_errors,
    machine,
    percentiles,
    positive,
    say,
    signup_many,
    table,
)
from bench.llm_clients import Stream, analyse, read_direct, read_jobcast
from bench.procfs import cpu_seconds, process_tree
from jobcast.config import Settings
from jobcast.llm.fake_provider import MODEL, FakeProvider, Seen
from jobcast.service.procs import free_port, wait_for_port

#: The stack's processes whose CPU a jobcast run is charged, by the names the document uses.
JOBCAST_PROCESSES = {"web": "web", "worker": "worker-io", "redis": "redis"}
#: The issue's figures, restated for whoever reads the numbers; nothing here judges them.
TARGET = "p99 latency <= 50 ms added over the direct pattern at 100 streams, 0 tokens lost"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=positive, default=100, help="concurrent streams")
    parser.add_argument("--tokens", type=positive, default=200, help="tokens per stream")
    parser.add_argument(
        "--rate", type=_rate, default=200.0, help="the fake model's tokens/s per stream"
    )


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = os.environ.get("JOBCAST_ASYNC_MODE", "gevent")
    n = args.streams
    overrides = {
        "JOBCAST_LLM_MODEL": MODEL,
        "JOBCAST_LLM_CACHE_TTL_SECONDS": "0",
        "JOBCAST_LLM_DAILY_TOKENS": "0",
        "JOBCAST_LLM_MAX_CONCURRENT": "0",
        "JOBCAST_LLM_REDACT": "false",
        "JOBCAST_LLM_MAX_OUTPUT_TOKENS": str(max(4096, args.tokens)),
        # Every stream runs at once, and under threading every websocket holds a web thread.
        "JOBCAST_IO_CONCURRENCY": str(max(n, 10)),
        "JOBCAST_WEB_THREADS": str(max(500, n + 100)),
    }
    interval = (
        os.environ.get("JOBCAST_OUTPUT_INTERVAL")
        or Settings.model_fields["output_interval"].default
    )
    with ProviderProcess(args.rate) as provider:
        overrides["JOBCAST_LLM_BASE_URL"] = provider.url
        with local_stack(
            "llm", env_overrides=overrides, worker_pools=("io",), keep=args.keep
        ) as st:
            direct_url, direct = _start_direct(provider.url, mode, st.logs)
            try:
                direct_result = _side(
                    "direct",
                    provider,
                    args,
                    {"web": direct.pid},
                    lambda streams, meter: read_direct(direct_url, args.tokens, streams, meter),
                )
            finally:
                direct.terminate()
                direct.wait(timeout=20)
            say(f"signing up {n + 1} users")
            run_id = uuid.uuid4().hex[:6]
            emails = [f"llm-{run_id}-{i}@example.com" for i in range(n + 1)]
            *tokens, warm_token = signup_many(st.base_url, emails)
            jobcast_result = _side(
                "jobcast",
                provider,
                args,
                {name: st.process(proc).pid for name, proc in JOBCAST_PROCESSES.items()},
                lambda streams, meter: read_jobcast(
                    st.base_url, tokens, warm_token, args, streams, meter
                ),
            )
            errors = log_errors(st.logs)
    document = {
        "benchmark": "llm",
        "params": {
            "streams": n,
            "tokens": args.tokens,
            "rate": args.rate,
            "output_interval": float(interval),
            "async_mode": mode,
            "target": TARGET,
        },
        "machine": machine(),
        "jobcast": jobcast_result,
        "direct": direct_result,
        "added_p99_ms": _minus(jobcast_result, direct_result, "latency_ms", "p99"),
        "added_p50_ms": _minus(jobcast_result, direct_result, "latency_ms", "p50"),
        "added_every_token_p99_ms": _minus(
            jobcast_result, direct_result, "every_token_latency_ms", "p99"
        ),
        "server_errors": errors,
    }
    _print(document)
    return document


# --- the provider -------------------------------------------------------------------------


class ProviderProcess:
    """The fake provider in a child process; ``sent()`` hands over (and forgets) when it wrote
    each token: ``{prompt: {token index: monotonic time}}``."""

    def __init__(self, rate: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=_serve_provider, args=(rate, child), name="fake-provider", daemon=True
        )
        self.process.start()
        assert self.process.pid is not None
        self.pid: int = self.process.pid
        self.url: str = self._receive()

    def sent(self) -> dict[str, dict[int, float]]:
        self._conn.send("sent")
        times: dict[str, dict[int, float]] = self._receive()
        return times

    def _receive(self) -> Any:
        if not self._conn.poll(60):
            self.process.terminate()
            raise RuntimeError(f"the fake provider (pid {self.pid}) did not answer in 60 s")
        return self._conn.recv()

    def __enter__(self) -> ProviderProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


def _serve_provider(rate: float, conn: Connection) -> None:
    sent: dict[str, dict[int, float]] = {}

    def on_token(seen: Seen, index: int, at: float) -> None:
        sent.setdefault(seen.body["messages"][-1]["content"], {})[index] = at

    with FakeProvider(tokens_per_second=rate, on_token=on_token) as provider:
        conn.send(provider.url)
        while conn.recv() != "stop":
            conn.send(dict(sent))
            sent.clear()


# --- one side -----------------------------------------------------------------------------


class Meter:
    """The measured phase of one side, between ``start()`` (after its warm-up) and ``stop()``:
    CPU of each process tree, and how late this process's event loop woke up meanwhile."""

    def __init__(self, provider: ProviderProcess, trees: dict[str, int]) -> None:
        self.provider = provider
        self.trees = trees
        self.lag: list[float] = []
        self.cpu: dict[str, float] = {}
        self.seconds = 0.0
        self._began = 0.0
        self._stop = asyncio.Event()
        self._lag_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.provider.sent()  # the warm-up's tokens are not counted
        self.cpu = _cpu(self.trees)
        gc.collect()
        gc.disable()  # a collection while events arrive would be counted as latency
        self._lag_task = asyncio.create_task(_loop_lag(self.lag, self._stop))
        self._began = time.monotonic()

    def stop(self) -> None:
        self.seconds = time.monotonic() - self._began
        self.cpu = {k: round(v - self.cpu[k], 3) for k, v in _cpu(self.trees).items()}
        self._stop.set()

    async def run(self, drive: Awaitable[None]) -> None:
        try:
            await drive
        finally:
            self._stop.set()
            gc.enable()
            if self._lag_task is not None:
                await self._lag_task


#: One side's workload: its clients, driven from the warm-up to the last stream's end.
Driver = Callable[[list[Stream], Meter], Awaitable[None]]


def _side(
    name: str,
    provider: ProviderProcess,
    args: argparse.Namespace,
    pids: dict[str, int],
    drive: Driver,
) -> dict[str, Any]:
    """Run one side's workload; what its clients got against what the provider sent."""
    say(f"{name}: {args.streams} streams of {args.tokens} tokens at {args.rate:g} tokens/s")
    streams = [Stream(f"LEN={args.tokens} {uuid.uuid4()}") for _ in range(args.streams)]
    meter = Meter(provider, {**pids, "provider": provider.pid})
    asyncio.run(meter.run(drive(streams, meter)))
    result = analyse(streams, provider.sent())
    delivered = result["tokens_expected"] - result["tokens_lost"]
    result["wall_seconds"] = round(meter.seconds, 3)
    result["cpu_seconds"] = meter.cpu
    result["cpu_seconds_per_1000_tokens"] = {
        who: round(meter.cpu[who] * 1000 / delivered, 4) if who in meter.cpu and delivered else None
        for who in dict.fromkeys(["web", "worker", *meter.cpu])
    }
    # A process near 1.0 was the bottleneck: latency is then its queue, not its overhead.
    result["cores"] = {
        who: round(seconds / meter.seconds, 2) if meter.seconds else None
        for who, seconds in meter.cpu.items()
    }
    result["client_loop_lag_ms"] = percentiles(meter.lag, 2)
    say(f"{name}: p99 {result['latency_ms']['p99']} ms, {result['tokens_lost']} tokens lost")
    return result


def _cpu(trees: dict[str, int]) -> dict[str, float]:
    times = {name: cpu_seconds(list(process_tree(pid))) for name, pid in trees.items()}
    own = os.times()
    times["bench_clients"] = own.user + own.system
    return times


def _start_direct(provider_url: str, mode: str, logs: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """``bench.llm_direct`` under gunicorn, one process, the worker class ``jobcast web`` uses."""
    port = free_port()
    worker = ["-k", "gevent", "--worker-connections", "1000"]
    if mode != "gevent":
        worker = ["-k", "gthread", "--threads", "500"]
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", *worker, "-b", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        [*argv, "--log-level", "warning", "bench.llm_direct:app"],
        env={**os.environ, "BENCH_LLM_BASE_URL": provider_url, "BENCH_LLM_MODEL": MODEL},
        stdout=(logs / "direct.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    wait_for_port("127.0.0.1", port)
    return f"http://127.0.0.1:{port}", proc


def _minus(a: dict[str, Any], b: dict[str, Any], key: str, q: str) -> float | None:
    x, y = a[key][q], b[key][q]
    return None if x is None or y is None else round(x - y, 2)


def _print(document: dict[str, Any]) -> None:
    rows = []
    for side in ("jobcast", "direct"):
        r = document[side]
        per_1k = r["cpu_seconds_per_1000_tokens"]
        rows.append(
            [
                side,
                r["latency_ms"]["p50"],
                r["latency_ms"]["p99"],
                r["latency_ms"]["max"],
                r["every_token_latency_ms"]["p99"],
                r["events_per_stream_per_second"]["p50"],
                r["tokens_lost"],
                f"{r['streams_completed']}/{r['streams']}",
                per_1k["web"],
                per_1k["worker"],
            ]
        )
    header = [
        "side",
        "p50 ms",
        "p99 ms",
        "max ms",
        "every-token p99",
        "events/s/stream",
        "lost",
        "completed",
        "web CPU s/1k tok",
        "worker CPU s/1k tok",
    ]
    table(
        f"LLM streams: provider chunk -> client (added p99 {document['added_p99_ms']} ms)",
        rows,
        header,
    )


__all__ = ["ProviderProcess", "add_arguments", "run"]
