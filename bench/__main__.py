"""``python -m bench latency|exports|all [options]``: run benchmarks, print JSON to stdout."""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from bench.common import emit, stop_on_sigterm

#: Each module has ``add_arguments(parser)`` and ``run(args) -> dict``.
BENCHMARKS = {"latency": "bench.latency", "exports": "bench.exports"}


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
    every = commands.add_parser("all", help="every benchmark in turn", formatter_class=defaults)
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
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]
    try:
        results = {name: _module(name).run(args) for name in names}
    except KeyboardInterrupt:
        print("interrupted: the stack was stopped", file=sys.stderr)
        return 130
    emit(results if args.benchmark == "all" else results[args.benchmark])
    return 0


if __name__ == "__main__":
    sys.exit(main())
