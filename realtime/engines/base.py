"""The inference engine contract: one window in, class probabilities and the mean gate out.

Engines differ only in how they run the same network (eager PyTorch, ONNX Runtime, TensorRT, CUDA); the
pipeline, the averaging and the message never know which one ran, so results are comparable across them.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np


class EngineError(RuntimeError):
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
