"""Engine registry: `create_engine(name, model, checkpoint_path, args)`.

The registry maps a name to a module (imported only when that engine is asked for), so importing the
pipeline never imports TensorRT or CUDA, and adding an engine touches one file: a module here named in
`ENGINES` below (the planned ones are listed already) that defines

    def create(model, checkpoint_path, args) -> Engine     # raise EngineUnavailable(reason) if it cannot run here

and optionally `add_cli(parser)` for its own flags. A listed module that does not exist yet simply makes
that engine unavailable.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from realtime.engines.base import Engine, EngineError, EngineResult, EngineUnavailable

__all__ = ["ENGINES", "AUTO_ORDER", "Engine", "EngineError", "EngineResult", "EngineUnavailable",
           "create_engine", "engine_names", "add_cli"]

#: name -> module under realtime.engines
ENGINES: dict[str, str] = {
    "tensorrt": "tensorrt",
    "cuda": "cuda",
    "onnxruntime": "onnxruntime_cpu",
    "torch": "torch_cpu",
}
#: what `--engine auto` tries, fastest first
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "onnxruntime", "torch")


def engine_names() -> list[str]:
    return ["auto", *ENGINES]


def _module(name: str):
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}")
    qualified = f"realtime.engines.{ENGINES[name]}"
    try:
        return importlib.import_module(qualified)
    except ModuleNotFoundError as exc:
        if exc.name == qualified:
            raise EngineUnavailable(f"engine {name!r} is not part of this build ({qualified} does not exist)") from None
        raise EngineUnavailable(f"engine {name!r} needs the Python package {exc.name!r}, which is not installed") from None
    except ImportError as exc:
        raise EngineUnavailable(f"engine {name!r} cannot be imported here: {str(exc).splitlines()[0]}") from None


def add_cli(parser: argparse.ArgumentParser) -> None:
    """Let each importable engine module add its own flags (modules that cannot import are skipped)."""
    for name in ENGINES:
        try:
            module = _module(name)
        except EngineError:
            continue
        hook = getattr(module, "add_cli", None)
        if hook is not None:
            hook(parser)


def create_engine(name: str, model: Any, checkpoint_path: str | Path | None, args: argparse.Namespace) -> Engine:
    """Build engine `name` ("auto" = first available of AUTO_ORDER) for a loaded model.

    Raises EngineUnavailable (with every reason, for auto) or EngineError, each with a one-line message.
    """
    if name != "auto":
        return _module(name).create(model, checkpoint_path, args)
    reasons = []
    for candidate in AUTO_ORDER:
        try:
            return _module(candidate).create(model, checkpoint_path, args)
        except EngineUnavailable as exc:
            reasons.append(str(exc))
    raise EngineUnavailable("no engine is available: " + "; ".join(reasons))
