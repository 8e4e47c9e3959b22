"""``python -m bench <benchmark>|durability|all [options]``: print JSON to stdout."""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bench.common import emit, stop_on_sigterm
from bench.summary import print_summary

#: Each module has ``add_arguments(parser)`` and ``run(args) -> dict``.
BENCHMARKS = {
    "latency": "bench.latency",
    "replay": "bench.replay",
    "exports": "bench.exports",
    "idle": "bench.idle",
    "submit": "bench.submit",
    "overhead": "bench.overhead",
    "fanout": "bench.fanout",
    "flood": "bench.flood",
    "instructions": "bench.instructions",
    "llm": "bench.llm",
}


@dataclass(frozen=True)
class Preset:
    """A benchmark run with other defaults, under a name of its own (options still apply)."""

    benchmark: str
    help: str
    defaults: dict[str, Any]
    #: Reported in the document's params, for whoever reads the numbers.
    notes: dict[str, Any] = field(default_factory=dict)


PRESETS = {
    "durability": Preset(
        "latency",
        "issue 3's workload, with the durable event log on then off: what durability costs",
        {"durable": "both", "clients": 200, "steps": 50, "step_ms": 100},
        {"issue_3_target": "latency overhead of the durable log (on vs off) under 25% at p50"},
    ),
}


def _module(name: str) -> ModuleType:
    return importlib.import_module(BENCHMARKS[name])


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m bench", description=_summary(__doc__))
    commands = main.add_subparsers(dest="benchmark", required=True)
    defaults = argparse.ArgumentDefaultsHelpFormatter
    for name in BENCHMARKS:
        module = _module(name)
        sub = commands.add_parser(name, help=_summary(module.__doc__), formatter_class=defaults)
        module.add_arguments(_with_common(sub))
    for name, preset in PRESETS.items():
        sub = commands.add_parser(name, help=preset.help, formatter_class=defaults)
        _module(preset.benchmark).add_arguments(_with_common(sub))
        sub.set_defaults(**preset.defaults, preset=name, preset_params=preset.notes)
    every = commands.add_parser(
        "all", help="every benchmark in turn (not the presets)", formatter_class=defaults
    )
    _with_common(every)
    for name in BENCHMARKS:
        _module(name).add_arguments(every)
    return main


def _summary(doc: str | None) -> str:
    """A module docstring's first line without its leading ``command``: part."""
    return (doc or "").strip().splitlines()[0].split(": ", 1)[-1]


def _with_common(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
    sub.add_argument("--keep", action="store_true", help="keep the stack's temp dir and logs")
    return sub


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stop_on_sigterm()
    if args.benchmark == "all":
        names = list(BENCHMARKS)
    elif args.benchmark in PRESETS:
        names = [PRESETS[args.benchmark].benchmark]
    else:
        names = [args.benchmark]
    try:
        results = {name: _module(name).run(args) for name in names}
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        return 130
    if args.benchmark == "all":
        print_summary(results)
    emit(results if args.benchmark == "all" else results[names[0]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
