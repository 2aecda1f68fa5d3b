"""ONNX Runtime on the CPU: the checkpoint's model exported once to ONNX, cached on disk, fp32 or int8.

The export (seconds to tens of seconds on 2 cores) happens on first use only: the graph is cached as
``<cache>/<checkpoint sha256>-<input shapes>-opset<N>-torch<version>[-int8-cal<calibration hash>].onnx``
(`core.export.cache_dir()`: ``$IA_LIVE_CACHE`` or ``~/.cache/ia-live/engines``), so a restart loads it
directly. ``--precision int8`` runs the static int8 model of `realtime.engines.quantize`, calibrated on
``--calibration clips.npz`` (real clips; see that module).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import one_line
from realtime.engines.base import Engine, EngineError, EnginePlugin, EngineResult, add_common_cli

OPSET = 17
#: how many times this process exported / quantized (lets tests prove that a cache hit skips the work)
STATS = {"exports": 0, "quantizations": 0}


def onnx_cache_path(model: "torch.nn.Module", checkpoint_path: Any, directory: Path,
                    calibration_digest: str | None = None) -> Path:
    import torch

    from core.export import model_digest, shape_key

    key = f"{model_digest(model, checkpoint_path)}-{shape_key(model)}-opset{OPSET}-torch{torch.__version__.split('+')[0]}"
    if calibration_digest is not None:
        from realtime.engines.quantize import RECIPE

        key += f"-int8-{RECIPE}-cal{calibration_digest[:16]}"
    return directory / f"{key}.onnx"


def ensure_onnx(model: "torch.nn.Module", checkpoint_path: Any, directory: Path) -> Path:
    """The cached fp32 ONNX file for this model, exporting it first if it is not there yet."""
    from core.export import export_onnx

    path = onnx_cache_path(model, checkpoint_path, directory)
    if not path.is_file():
        export_onnx(model, path, opset=OPSET, dynamic_batch=False)
        STATS["exports"] += 1
    return path


def ensure_int8(model: "torch.nn.Module", checkpoint_path: Any, directory: Path,
                clips: list) -> Path:
    from realtime.engines.quantize import clips_digest, quantize_int8

    path = onnx_cache_path(model, checkpoint_path, directory, clips_digest(clips))
    if not path.is_file():
        quantize_int8(ensure_onnx(model, checkpoint_path, directory), path, clips)
        STATS["quantizations"] += 1
    return path


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, inputs: list[str], threads: int | None = None,
                 precision: str = "fp32") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # corrupt cache file, unsupported op
            raise EngineError(f"onnxruntime cannot load {onnx_path}: {one_line(str(exc).splitlines()[0] if str(exc) else exc, 200)}") from None
        self.path = Path(onnx_path)
        self.inputs = list(inputs)
        self.threads = threads
        self.precision = precision

    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        feeds = {"rgb": rgb, "pose": pose}
        probs, _logits, gate = self.session.run(None, {n: np.ascontiguousarray(feeds[n], np.float32) for n in self.inputs})
        return EngineResult(probs=probs[0].astype(np.float64), gate=float(gate[0]))  # NaN: no gate

    def close(self) -> None:
        self.session = None

    def describe(self) -> str:
        threads = f"{self.threads} threads" if self.threads else "default threads"
        return f"onnxruntime cpu {self.precision} ({threads})"


@dataclass(frozen=True)
class OnnxRuntime(EnginePlugin):
    """``--engine onnxruntime``: ``--threads``, ``--precision`` (auto = fp32, or int8 with ``--calibration``),
    ``--engine-cache``."""

    name = "onnxruntime"
    threads: int | None = None
    precision: str = "auto"
    calibration: str | None = None
    engine_cache: str | None = None

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        add_common_cli(parser)

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "OnnxRuntime":
        return cls(threads=getattr(args, "threads", None), precision=getattr(args, "precision", None) or "auto",
                   calibration=getattr(args, "calibration", None), engine_cache=getattr(args, "engine_cache", None))

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        from core.export import cache_dir, input_names

        precision = "fp32" if self.precision == "auto" else self.precision
        if precision not in ("fp32", "int8"):
            raise EngineError(f"onnxruntime runs fp32 or int8 on the CPU, not {precision}")
        directory = Path(self.engine_cache or cache_dir()).expanduser()
        model = model.to("cpu").eval()
        try:
            if precision == "int8":
                if not self.calibration:
                    raise EngineError("--precision int8 needs --calibration clips.npz "
                                      "(make one with python -m realtime.engines.quantize)")
                from realtime.engines.quantize import load_clips

                try:
                    clips = load_clips(self.calibration)
                except ValueError as exc:
                    raise EngineError(str(exc)) from None
                path = ensure_int8(model, checkpoint, directory, clips)
            else:
                path = ensure_onnx(model, checkpoint, directory)
        except OSError as exc:
            raise EngineError(f"cannot write the engine cache in {directory}: {exc.strerror or exc}") from None
        return OnnxRuntimeEngine(path, input_names(model), threads=self.threads, precision=precision)
