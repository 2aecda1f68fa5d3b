"""Dispatch `python -m tools.bench NAME ...` to `tools/bench/NAME.py` (`cli` + `run`)."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import tools.bench as _pkg

from core.cliflags import make_parser, parse_or_exit


def _benchmarks() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(_pkg.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(prog="python -m tools.bench", description=__doc__)
    sub = parser.add_subparsers(dest="name", required=True, metavar="{" + ",".join(_benchmarks()) + "}")
    modules = {}
    for name in _benchmarks():
        module = importlib.import_module(f"tools.bench.{name}")
        modules[name] = module
        module.cli(sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else None))
    args = parse_or_exit(parser, argv)
    return int(modules[args.name].run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
