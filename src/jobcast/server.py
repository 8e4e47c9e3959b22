"""``jobcast web``: the app under gunicorn, with the worker class its async mode needs.

One gunicorn worker per port: Socket.IO's long-polling needs every request of a session on the
same process, so scaling out means more processes on more ports behind a sticky proxy.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from jobcast.config import load_settings


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from jobcast.wsgi import app

        return app


def serve(host: str, port: int) -> None:
    settings = load_settings()
    options: dict[str, Any] = {
        "bind": f"{host}:{port}",
        "workers": 1,
        "timeout": 0 if settings.async_mode == "gevent" else 120,
        "accesslog": None,
        "loglevel": settings.log_level.lower(),
    }
    if settings.async_mode == "gevent":
        options["worker_class"] = "gevent"
        options["worker_connections"] = 20_000
    else:
        options["worker_class"] = "gthread"
        options["threads"] = settings.web_threads
    _Gunicorn(options).run()
