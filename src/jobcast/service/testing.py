"""A whole jobcast stack on this machine, for integration tests and benchmarks.

``LocalStack`` starts what production runs, as separate processes: a Redis server (unless one is
given), ``jobcast web`` and ``jobcast worker``, over one database, and stops them all on exit.
App authors can use it to test their own job types end to end. Its processes share one
Prometheus metrics directory (``metrics_dir``), so the web server's ``/metrics`` shows the
workers' metrics too, as on one production machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from jobcast.service.procs import METRICS_DIR, free_port, redis_server_command, wait_for_port


@dataclass
class LocalStack:
    """Start with ``with LocalStack(root) as stack:``; ``stack.base_url`` is the web server."""

    root: Path
    redis_url: str | None = None
    database_url: str | None = None
    env_overrides: dict[str, str] = field(default_factory=dict)
    web: bool = True
    worker_pools: tuple[str, ...] = ("all",)
    base_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    _procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def storage_dir(self) -> Path:
        return self.root / "results"

    @property
    def metrics_dir(self) -> Path:
        return self.root / "metrics"

    def __enter__(self) -> LocalStack:
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.stop()

    def _start(self) -> None:
        if self.redis_url is None:
            port = free_port()
            self.start_process("redis", redis_server_command(port, self.root, persist=False))
            wait_for_port("127.0.0.1", port)
            self.redis_url = f"redis://127.0.0.1:{port}/0"
        shutil.rmtree(self.metrics_dir, ignore_errors=True)  # a stack's own, from its start
        self.metrics_dir.mkdir(parents=True)
        self.env = {
            **os.environ,
            "JOBCAST_ENV": "testing",
            "JOBCAST_REDIS_URL": self.redis_url,
            "JOBCAST_DATABASE_URL": self.database_url or f"sqlite:///{self.root / 'jobcast.db'}",
            "JOBCAST_STORAGE_DIR": str(self.storage_dir),
            "JOBCAST_SOCKETIO_CHANNEL": f"jobcast-{uuid.uuid4().hex[:8]}",
            # Tests and benchmarks sign up many users from one address; limits are tested
            # on stacks that turn them back on.
            "JOBCAST_RATE_LIMITS": "false",
            METRICS_DIR: str(self.metrics_dir),
            **self.env_overrides,
        }
        subprocess.run(
            [sys.executable, "-m", "jobcast", "db", "upgrade"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        for pool in self.worker_pools:
            self.start_process(
                f"worker-{pool}", [sys.executable, "-m", "jobcast", "worker", "--pool", pool]
            )
        if self.web:
            self.base_url = self.start_web()

    def start_process(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a child with the stack's environment (plus ``env``), its output in
        ``logs/<name>.log``."""
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            argv,
            env={**self.env, **(env or {})} or None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._procs.append((name, proc))
        return proc

    def start_web(
        self, port: int | None = None, name: str = "web", env: dict[str, str] | None = None
    ) -> str:
        """Start one more ``jobcast web`` process (its settings changed by ``env``); returns
        its base URL once it answers."""
        port = port or free_port()
        proc = self.start_process(
            name, [sys.executable, "-m", "jobcast", "web", "--port", str(port)], env
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: see {self.logs}")
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not answer on {url}")
            time.sleep(0.1)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(proc for n, proc in reversed(self._procs) if n == name)

    def stop(self) -> None:
        """Stop every process, newest first (Redis last); kill what does not stop in 20 s."""
        for _name, proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        self._procs.clear()


@contextmanager
def fresh_database(admin_url: str, prefix: str = "jobcast") -> Iterator[str]:
    """The URL of a new, empty database on the server of ``admin_url`` (a PostgreSQL URL
    allowed to create databases), dropped with its connections on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
