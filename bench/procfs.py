"""``/proc`` readings of process trees: who descends from whom, RSS and CPU time, and a sampler
that keeps each process's peak RSS while a job runs. Linux only, like the stacks the benchmarks
start.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (so index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root_pid: int) -> dict[int, int]:
    """``root_pid`` and all its descendants, each with its depth below the root (celery's
    supervisor runs workers in new sessions, so the process group alone would miss them)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: dict[int, int] = {}
    todo = [(root_pid, 0)]
    while todo:
        pid, depth = todo.pop()
        tree[pid] = depth
        todo.extend((child, depth + 1) for child in children.get(pid, ()))
    return tree


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (0 if it is gone)."""
    fields = _stat_fields(pid)
    return int(fields[21]) * _PAGE_KB if fields else 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by ``pids`` (not their reaped children)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


@dataclass
class RssSampler:
    """Samples the RSS of a process tree every ``interval`` s in a thread; keeps the peaks.

    The tree is re-read at every sample, so pool children that appear or are replaced during
    the run are counted. The first sample, taken on entering, is the baseline each process's
    growth is measured from. RSS sums double-count pages a forked child still shares with its
    parent; the single-process peak does not.
    """

    root_pid: int
    interval: float = 0.05
    baseline_kb: dict[int, int] = field(default_factory=dict)
    peak_kb: dict[int, int] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    commands: dict[int, str] = field(default_factory=dict)
    peak_sum_kb: int = 0
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.sample()
        self.baseline_kb = dict(self.peak_kb)
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        tree = process_tree(self.root_pid)
        sizes = {pid: rss_kb(pid) for pid in tree}
        self.samples += 1
        self.peak_sum_kb = max(self.peak_sum_kb, sum(sizes.values()))
        for pid, size in sizes.items():
            if pid not in self.commands:
                self.depth[pid], self.commands[pid] = tree[pid], command_line(pid)[:120]
            self.peak_kb[pid] = max(size, self.peak_kb.get(pid, 0))

    def report(self) -> dict[str, Any]:
        """Peaks of the whole tree; ``per_process`` tells the supervisor (depth 0), celery's
        main process (1) and its pool children (2) apart."""
        growth = {pid: peak - self.baseline_kb.get(pid, 0) for pid, peak in self.peak_kb.items()}
        return {
            "peak_single_process_mb": _mb(max(self.peak_kb.values(), default=0)),
            "peak_single_process_growth_mb": _mb(max(growth.values(), default=0)),
            "baseline_tree_sum_mb": _mb(sum(self.baseline_kb.values())),
            "peak_tree_sum_mb": _mb(self.peak_sum_kb),
            "per_process": [
                {
                    "pid": pid,
                    "depth": self.depth[pid],
                    "baseline_mb": _mb(self.baseline_kb.get(pid, 0)),
                    "peak_mb": _mb(peak),
                    "command": self.commands[pid],
                }
                for pid, peak in sorted(self.peak_kb.items(), key=lambda i: self.depth[i[0]])
            ],
            "samples": self.samples,
            "interval_ms": round(self.interval * 1000),
        }


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)
