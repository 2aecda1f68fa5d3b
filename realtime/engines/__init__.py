"""Engine registry: `configure_engine(name, args)` -> a configured `EnginePlugin`; its `create(model, checkpoint)`
builds the engine (in the inference process). `create_engine(name, model, checkpoint, args)` does both.

Engines follow the plugin convention of the pose backends (`realtime.plugins`): each is a class named in
`ENGINES` below, imported only when asked for (so importing the pipeline never imports TensorRT or CUDA),
with ``cli(parser)`` for its own flags and ``configure(args)`` for a picklable configured instance. Adding an
engine is one module plus one line here. A listed module or package that is missing makes that engine
unavailable (`EngineUnavailable`, which ``auto`` skips), reported where the engine is built.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from realtime import defaults
from realtime.engines.base import Engine, EngineError, EnginePlugin, EngineResult, EngineUnavailable, add_device_cli
from realtime.plugins import Registry

__all__ = ["ENGINES", "AUTO_ORDER", "Engine", "EngineError", "EnginePlugin", "EngineResult", "EngineUnavailable",
           "add_cli", "configure_engine", "create_engine", "engine_names"]

#: name -> plugin class
ENGINES: dict[str, str] = {
    "tensorrt": "realtime.engines.tensorrt:TensorRT",
    "cuda": "realtime.engines.cuda:Cuda",
    "onnxruntime": "realtime.engines.onnxruntime_cpu:OnnxRuntime",
    "torch": "realtime.engines.torch_cpu:TorchCPU",
}
#: what `--engine auto` tries, fastest first
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "onnxruntime", "torch")
#: engines that run on a GPU (the others run on the CPU): what `--device` selects among
GPU_ENGINES: frozenset[str] = frozenset({"tensorrt", "cuda"})

REGISTRY = Registry(
    "engine", ENGINES,
    unknown=lambda name: EngineError(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}"),
    missing=lambda name, why: EngineUnavailable(f"engine {name!r} {why}"),
)


def engine_names() -> list[str]:
    return [defaults.ENGINE, *ENGINES]


def add_cli(parser: argparse.ArgumentParser) -> None:
    """``--device``, then each importable engine's own flags, in one help group."""
    group = parser.add_argument_group("inference engine")
    add_device_cli(group)
    REGISTRY.add_cli(group)


@dataclass(frozen=True)
class Unavailable(EnginePlugin):
    """An engine whose class could not even be imported here; building it says why."""

    name = "unavailable"
    engine: str = ""
    reason: str = ""

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "Unavailable":  # pragma: no cover - never registered
        raise NotImplementedError

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        raise EngineUnavailable(self.reason)


@dataclass(frozen=True)
class Auto(EnginePlugin):
    """``--engine auto``: the first of `AUTO_ORDER` that can be built here."""

    name = "auto"
    candidates: tuple[EnginePlugin, ...] = ()

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "Auto":
        kind = _device_kind(args)
        names = [n for n in AUTO_ORDER if kind == "auto" or (n in GPU_ENGINES) == (kind == "cuda")]
        return cls(tuple(configure_engine(name, args) for name in names))

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        reasons = []
        for candidate in self.candidates:
            try:
                return candidate.create(model, checkpoint)
            except EngineUnavailable as exc:
                reasons.append(str(exc))
        raise EngineUnavailable("no engine is available: " + "; ".join(reasons))


def configure_engine(name: str, args: argparse.Namespace) -> EnginePlugin:
    """The configured plugin for ``--engine name`` (EngineError for an unknown name)."""
    if name == defaults.ENGINE:
        return Auto.configure(args)
    kind = _device_kind(args)
    if kind != "auto" and name in ENGINES and (name in GPU_ENGINES) != (kind == "cuda"):
        where = "a GPU" if name in GPU_ENGINES else "the CPU"
        raise EngineError(f"engine {name!r} runs on {where}, not on --device {args.device}; "
                          f"use --engine auto or drop --device")
    try:
        plugin = REGISTRY.get(name)
    except EngineUnavailable as exc:
        return Unavailable(engine=name, reason=str(exc))
    return plugin.configure(args)


def _device_kind(args: argparse.Namespace) -> str:
    """auto, cpu or cuda from ``--device`` (absent: auto)."""
    from core.devices import parse_device

    return parse_device(getattr(args, "device", None) or "auto").kind


def create_engine(name: str, model: Any, checkpoint: Any, args: argparse.Namespace) -> Engine:
    """Configure and build engine ``name`` ("auto" = first available of AUTO_ORDER) for a loaded model.

    Raises EngineUnavailable (with every reason, for auto) or EngineError, each with a one-line message.
    """
    return configure_engine(name, args).create(model, checkpoint)
