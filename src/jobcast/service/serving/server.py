"""``jobcast web``: the app under gunicorn, with the worker class its async mode needs.

One gunicorn worker per port: Socket.IO's long-polling needs every request of a session on the
same process, so scaling out means more processes on more ports behind a sticky proxy.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, NoReturn

from gunicorn.app.base import BaseApplication

from jobcast.config import load_settings
from jobcast.service.procs import tie_to_parent, tied_to_parent

#: gevent mode: connections one worker accepts at once (each idle WebSocket is one greenlet).
GEVENT_CONNECTIONS = 20_000


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from jobcast.service.wsgi import app

        return app


def serve(host: str, port: int) -> None:
    settings = load_settings()
    if settings.async_mode == "gevent":
        _exec_gevent(host, port, settings.log_level.lower())
    options: dict[str, Any] = {}
    if tied_to_parent():
        # Under jobcast dev the arbiter goes when dev goes; the worker must go with it, or a
        # thread serving a WebSocket keeps it alive. (gevent's worker needs no hook: it checks
        # its parent every second and exits, and greenlets hold no exit up.)
        options["post_fork"] = _go_with_the_arbiter
    _Gunicorn(
        {
            **options,
            "bind": f"{host}:{port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": settings.web_threads,
            # gthread caps open connections at worker_connections (1,000 by default) and keeps
            # worker_connections - threads of them alive between requests: scale both with
            # the threads (one per WebSocket) and keep as many keep-alive slots as threads.
            "worker_connections": settings.web_threads * 2,
            "timeout": 120,
            "accesslog": None,
            "loglevel": settings.log_level.lower(),
        }
    ).run()


def _go_with_the_arbiter(_arbiter: Any, worker: Any) -> None:
    tie_to_parent(signal.SIGKILL, parent_pid=worker.ppid)


def _exec_gevent(host: str, port: int, log_level: str) -> NoReturn:
    """Replace this process with a fresh gunicorn whose gevent worker patches the stdlib first.

    ``jobcast web`` has already imported ssl, redis, aiohttp and the rest by the time it gets
    here; patching then is too late (gevent warns, and modules keep unpatched references). A new
    interpreter that imports only gunicorn before the worker forks and patches avoids that.
    """
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        "1",
        "--worker-class",
        "gevent",
        "--worker-connections",
        str(GEVENT_CONNECTIONS),
        # Greenlets cannot be killed from the arbiter's heartbeat check; a long WebSocket
        # would look stuck to it.
        "--timeout",
        "0",
        "--log-level",
        log_level,
        "jobcast.service.wsgi:app",
    ]
    env = dict(os.environ)
    # gevent records every greenlet's spawning stack and tree by default: a few KB per idle
    # WebSocket for debugging aids jobcast does not use.
    env.setdefault("GEVENT_TRACK_GREENLET_TREE", "false")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)
