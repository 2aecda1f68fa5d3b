"""Eager PyTorch on the CPU: the reference engine, always available, numerically the training model."""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.engines.base import Engine, EnginePlugin, EngineResult


class TorchCPUEngine(Engine):
    name = "torch"

    def __init__(self, model: "torch.nn.Module", threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.threads = torch.get_num_threads()
        self.model = model.to("cpu").eval()
        config = model.config
        self._rgb = bool(getattr(config, "uses_appearance", True))
        self._pose = bool(getattr(config, "uses_pose", True))

    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(rgb) if self._rgb else None,
                             torch.from_numpy(pose) if self._pose else None)
        probs = out.probs[0].double().numpy().copy()
        gate = float(out.gate.mean()) if out.gate is not None else math.nan
        return EngineResult(probs=probs, gate=gate)

    def describe(self) -> str:
        return f"torch cpu ({self.threads} thread{'s' if self.threads != 1 else ''})"


@dataclass(frozen=True)
class TorchCPU(EnginePlugin):
    """``--engine torch``: intra-op threads from ``--threads``."""

    name = "torch"
    threads: int | None = None

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "TorchCPU":
        return cls(threads=getattr(args, "threads", None))

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        return TorchCPUEngine(model, threads=self.threads)
