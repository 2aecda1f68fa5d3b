"""An engine plugin for tests: the torch engine, plus a copy of every window it is given.

It is a real `realtime.engines.base.EnginePlugin` (the plugin convention lets a run's `Settings` carry any
configured engine, imported in the inference process by its module path), so a test sees exactly the tensors
the live pipeline hands the network, through the real processes and shared-memory rings.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from realtime.engines.base import Engine, EnginePlugin, EngineResult
from realtime.engines.torch_cpu import TorchCPU


@dataclass(frozen=True)
class RecordingEngine(EnginePlugin):
    name = "recording"
    folder: str = ""

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "RecordingEngine":
        return cls(folder=args.record)

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        return _Recorder(TorchCPU(threads=1).create(model, checkpoint), Path(self.folder))


class _Recorder(Engine):
    name = "recording"

    def __init__(self, inner: Engine, folder: Path) -> None:
        self.inner, self.folder, self.calls = inner, folder, 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        np.savez(self.folder / f"{self.calls:05d}.npz", rgb=rgb, pose=pose)
        self.calls += 1
        return self.inner(rgb, pose)


def recorded(folder: Path) -> list[dict[str, np.ndarray]]:
    """The windows a `RecordingEngine` saw, in call order."""
    out = []
    for path in sorted(Path(folder).glob("*.npz")):
        with np.load(path) as data:
            out.append({"rgb": data["rgb"], "pose": data["pose"]})
    return out
