"""The inference engine contract: one window in, class probabilities and the mean gate out.

Engines differ only in how they run the same network (eager PyTorch, ONNX Runtime, TensorRT, CUDA); the
pipeline, the averaging and the message never know which one ran, so results are comparable across them.
"""
from __future__ import annotations

import abc
import argparse
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from core.errors import UserError


class EngineError(UserError, RuntimeError):
    """An engine could not be built or run; the message is one line for the user."""


class EngineUnavailable(EngineError):
    """This engine cannot run here (missing package, no GPU, module not written); `auto` moves on."""


@dataclass
class EngineResult:
    """`probs` (K,) float; `gate` = mean appearance weight G (0 = pose only, 1 = appearance only),
    NaN for variants without a gate."""

    probs: np.ndarray
    gate: float = math.nan


class Engine(abc.ABC):
    """Runs one window: `rgb` float32 (1, T, 3, S, S) in [0, 1], `pose` float32 (1, T_pose, C, S/4, S/4).

    Inputs are C-contiguous numpy arrays (the assembler's shared-memory slot copies); an engine must not
    keep references to them after returning.
    """

    name: str = "engine"

    @abc.abstractmethod
    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        ...

    def close(self) -> None:
        """Release resources (sessions, GPU memory)."""

    def describe(self) -> str:
        """Short human description for logs (`torch (2 threads)`)."""
        return self.name


class EnginePlugin(abc.ABC):
    """A configured engine (the `realtime.plugins` convention): `cli` adds the engine's flags, `configure`
    turns parsed flags into an instance of this class (a small frozen dataclass, picklable, no runtime
    state), and `create` builds the runtime `Engine` inside the inference process.

    `configure` only reads flags; `create` checks availability (a GPU, a package) and raises
    `EngineUnavailable` (which ``--engine auto`` skips) or `EngineError`.
    """

    name: ClassVar[str] = ""

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        """Add this engine's own flags (shared ones through `add_common_cli`, which is idempotent)."""

    @classmethod
    @abc.abstractmethod
    def configure(cls, args: argparse.Namespace) -> "EnginePlugin":
        ...

    @abc.abstractmethod
    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        """Build the engine for a loaded model. ``checkpoint`` (a path or a `core.checkpoint.CheckpointBlob`)
        keys on-disk caches of exported graphs (`core.export.model_digest`)."""


def add_device_cli(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the engine runs (every engine reads it, so it is added once by `realtime.engines`)."""
    from core.devices import device_arg

    if "--device" not in parser._option_string_actions:  # noqa: SLF001
        parser.add_argument("--device", type=device_arg, default="auto", metavar="DEVICE",
                            help="auto, cpu, cuda or cuda:N: cpu limits --engine auto to the CPU engines, cuda to "
                                 "the GPU engines; cuda:N picks the GPU (default: auto)")


def gpu_device(args: argparse.Namespace) -> str:
    """The torch device string a GPU engine uses: ``cuda:N`` from ``--device``, else ``cuda``."""
    from core.devices import parse_device

    dev = parse_device(getattr(args, "device", None) or "auto")
    return str(dev) if dev.is_cuda else "cuda"


def add_common_cli(parser: argparse.ArgumentParser) -> None:
    """Flags the compiled engines (onnxruntime, tensorrt, cuda) share; each engine's `cli` calls this, and a
    flag is added once however many engines are importable."""
    from core.export import CACHE_ENV

    flags = {
        "--precision": dict(default="auto", choices=("auto", "fp32", "fp16", "int8"),
                            help="engine precision (auto: fp32 on CPU engines, fp16 on GPU engines; int8: onnxruntime only)"),
        "--calibration": dict(default=None, metavar="NPZ",
                              help="real clips for int8 calibration (python -m realtime.engines.quantize)"),
        "--engine-cache": dict(default=None, metavar="DIR",
                               help=f"cache of exported/compiled engines (default ${CACHE_ENV} or ~/.cache/ia-live/engines)"),
    }
    for flag, kwargs in flags.items():
        if flag not in parser._option_string_actions:  # noqa: SLF001  argparse has no public query
            parser.add_argument(flag, **kwargs)
