"""CUDA PyTorch in fp16 with `torch.compile(mode="reduce-overhead")` (CUDA graphs), for GPUs without TensorRT.

Why reduce-overhead: a window is one small batch-1 forward, so kernel-launch overhead is a large share of
its latency; CUDA graphs replay the whole forward as one launch. The first calls compile and record the
graph (tens of seconds), so `create` warms up on zero inputs before the pipeline starts timing.

The flat `ExportWrapper` output (probs, logits, gate_mean) is compiled rather than the NamedTuple model so
this engine runs the same graph as the exported ones. Probabilities are computed in fp16 and returned as
float64 numpy. Not verified on a GPU in this project (the development machines have none).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.engines.base import (Engine, EngineError, EnginePlugin, EngineResult, EngineUnavailable,
                                   add_common_cli, gpu_device)


class CudaEngine(Engine):
    name = "cuda"

    def __init__(self, model: torch.nn.Module, precision: str = "fp16", compile_mode: str | None = "reduce-overhead",
                 warmup: int = 3, device: str = "cuda") -> None:
        import torch

        from core.export import ExportWrapper, input_names

        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.precision = precision
        self.device = torch.device(device)
        wrapper = ExportWrapper(model).eval().to(self.device, self.dtype)
        self.inputs = input_names(model)
        self.module = torch.compile(wrapper, mode=compile_mode, fullgraph=True) if compile_mode else wrapper
        self.compile_mode = compile_mode
        config = model.config
        shapes = {"rgb": (1, config.frames, 3, config.rgb_size, config.rgb_size),
                  "pose": (1, config.pose_frames, config.num_pose_channels, config.map_size, config.map_size)}
        zeros = {n: np.zeros(shapes[n], np.float32) for n in self.inputs}
        for _ in range(warmup):  # compile + record the CUDA graph now, not on the first live window
            self(zeros.get("rgb"), zeros.get("pose"))

    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        import torch

        feeds = {"rgb": rgb, "pose": pose}
        with torch.inference_mode():
            args = [torch.from_numpy(feeds[n]).to(self.device, self.dtype, non_blocking=True) for n in self.inputs]
            probs, _logits, gate = self.module(*args)
        # .cpu() copies and synchronises before the next replay overwrites the CUDA-graph outputs
        return EngineResult(probs=probs[0].float().cpu().double().numpy(), gate=float(gate[0].float().cpu()))

    def close(self) -> None:
        import torch

        self.module = None
        torch.cuda.empty_cache()

    def describe(self) -> str:
        import torch

        return f"cuda {self.precision} ({torch.cuda.get_device_name(self.device)}, torch.compile {self.compile_mode})"


@dataclass(frozen=True)
class Cuda(EnginePlugin):
    """``--engine cuda``: ``--precision`` (auto = fp16, or fp32)."""

    name = "cuda"
    precision: str = "auto"
    device: str = "cuda"              # --device cuda:N picks the GPU

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        add_common_cli(parser)  # --precision

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "Cuda":
        return cls(precision=getattr(args, "precision", None) or "auto", device=gpu_device(args))

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        import torch

        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, but no GPU is visible"
            raise EngineUnavailable(f"engine 'cuda' needs an NVIDIA GPU; torch {torch.__version__} here is {build}")
        precision = "fp16" if self.precision == "auto" else self.precision
        if precision not in ("fp16", "fp32"):
            raise EngineError(f"the cuda engine runs fp16 or fp32, not {precision}")
        try:
            return CudaEngine(model, precision, device=self.device)
        except torch.cuda.OutOfMemoryError:
            raise EngineError("engine 'cuda': out of GPU memory while compiling the model") from None
