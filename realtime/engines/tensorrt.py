"""TensorRT through torch-tensorrt's dynamo path, compiled once per (weights, shapes, TensorRT version).

Compiling a TensorRT engine takes minutes, so the compiled program is saved as an ExportedProgram
(``torch_tensorrt.save(..., output_format="exported_program")``) in the engine cache
(`core.export.cache_dir()`), keyed by the checkpoint's sha256, the input shapes, the precision and the
torch-tensorrt + TensorRT versions (an engine serialized by one TensorRT version does not load in another).
A restart with the same checkpoint loads the cached program (``torch_tensorrt.load``) in seconds.

What is compiled is exactly `core.export.export_program(model, dynamic_batch=False)`: the ExportWrapper's
``(rgb, pose) -> (probs, logits, gate_mean)`` graph at batch 1, the same one the CPU tests `torch.export`.

Not verified on a GPU: torch-tensorrt cannot be installed on the project's machines; the code follows the
documented API (torch_tensorrt.compile(ir="dynamo"), torch_tensorrt.save / load), and everything up to the
compile call (export, cache keying, cache hit/miss) is tested on CPU with an injected compile function.
"""
from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.engines.base import (Engine, EngineError, EnginePlugin, EngineResult, EngineUnavailable,
                                   add_common_cli, gpu_device)

#: how many compilations this process ran (a cache hit must not add one)
STATS = {"compiles": 0}


def cache_key(digest: str, shapes: list[tuple[int, ...]], trt_version: str, precision: str = "fp16") -> str:
    """File stem of a compiled program: everything that makes a cached engine valid or invalid."""
    text = f"{digest}|{shapes}|{trt_version}|{precision}"
    return f"{digest[:16]}-trt-{precision}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


@dataclass
class Backend:
    """The three torch-tensorrt calls this engine makes; tests inject CPU stand-ins for `compile`."""

    version: str
    compile: Callable[[Any, list[tuple[int, ...]], str], Any]  # (exported_program, shapes, precision) -> module
    save: Callable[[Any, Path, list], None]
    load: Callable[[Path], Callable[..., Any]]  # -> callable module


def tensorrt_backend() -> Backend:
    """The real torch-tensorrt; EngineUnavailable (one line) where it or a CUDA GPU is missing."""
    import torch

    if not torch.cuda.is_available():
        raise EngineUnavailable("engine 'tensorrt' needs an NVIDIA GPU with CUDA; torch here "
                                f"({torch.__version__}) sees none")
    try:
        import tensorrt as trt  # noqa: F401
        import torch_tensorrt
    except ImportError as exc:
        raise EngineUnavailable(f"engine 'tensorrt' needs torch-tensorrt and tensorrt ({exc.name or exc} is not installed)") from None
    version = f"torch_tensorrt{torch_tensorrt.__version__}-tensorrt{trt.__version__}"

    def compile_(program: Any, shapes: list[tuple[int, ...]], precision: str) -> Any:
        dtype = torch.float16 if precision == "fp16" else torch.float32
        return torch_tensorrt.compile(program, ir="dynamo",
                                      inputs=[torch_tensorrt.Input(shape, dtype=torch.float32) for shape in shapes],
                                      enabled_precisions={dtype})

    def save(module: Any, path: Path, inputs: list[torch.Tensor]) -> None:
        try:
            torch_tensorrt.save(module, str(path), output_format="exported_program", arg_inputs=inputs)
        except TypeError:  # torch-tensorrt < 2.5 names it `inputs`
            torch_tensorrt.save(module, str(path), output_format="exported_program", inputs=inputs)

    def load(path: Path) -> Any:
        return torch_tensorrt.load(str(path)).module()

    return Backend(version=version, compile=compile_, save=save, load=load)


def compiled_module(model: "torch.nn.Module", checkpoint_path: Any, directory: Path,
                    backend: Backend, precision: str = "fp16", device: str = "cuda") -> tuple[Any, Path, bool]:
    """(callable module, cache file, cache hit?): load the cached program, or export + compile + save it."""
    import torch

    from core.export import export_program, input_shapes, model_digest

    shapes = input_shapes(model, batch=1)
    path = Path(directory) / f"{cache_key(model_digest(model, checkpoint_path), shapes, backend.version, precision)}.ep"
    if path.is_file():
        return backend.load(path), path, True
    program = export_program(model.to(device).eval(), batch=1, dynamic_batch=False)
    compiled = backend.compile(program, shapes, precision)
    STATS["compiles"] += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        backend.save(compiled, tmp, [torch.zeros(s, device=device) for s in shapes])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return compiled, path, False


class TensorRTEngine(Engine):
    name = "tensorrt"

    def __init__(self, module: Any, inputs: list[str], precision: str, path: Path, device: str = "cuda") -> None:
        self.module, self.inputs, self.precision, self.path, self.device = module, inputs, precision, path, device

    def __call__(self, rgb: np.ndarray, pose: np.ndarray) -> EngineResult:
        import torch

        feeds = {"rgb": rgb, "pose": pose}
        with torch.inference_mode():
            args = [torch.from_numpy(feeds[n]).to(self.device, non_blocking=True) for n in self.inputs]
            probs, _logits, gate = self.module(*args)
        return EngineResult(probs=probs[0].double().cpu().numpy(), gate=float(gate[0]))

    def close(self) -> None:
        import torch

        self.module = None
        if self.device == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def describe(self) -> str:
        return f"tensorrt {self.precision} ({self.path.name})"


@dataclass(frozen=True)
class TensorRT(EnginePlugin):
    """``--engine tensorrt``: ``--precision`` (auto = fp16, or fp32), ``--engine-cache``. ``backend`` replaces
    the torch-tensorrt calls (tests inject CPU stand-ins)."""

    name = "tensorrt"
    precision: str = "auto"
    engine_cache: str | None = None
    backend: Backend | None = None
    device: str = "cuda"              # --device cuda:N picks the GPU

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        add_common_cli(parser)  # --precision, --engine-cache

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "TensorRT":
        return cls(precision=getattr(args, "precision", None) or "auto", engine_cache=getattr(args, "engine_cache", None),
                   device=gpu_device(args))

    def create(self, model: Any, checkpoint: Any = None) -> Engine:
        from core.export import cache_dir, input_names

        backend = self.backend or tensorrt_backend()
        precision = "fp16" if self.precision == "auto" else self.precision
        if precision not in ("fp16", "fp32"):
            raise EngineError(f"the tensorrt engine runs fp16 or fp32, not {precision}")
        directory = Path(self.engine_cache or cache_dir()).expanduser()
        try:
            module, path, _hit = compiled_module(model, checkpoint, directory, backend, precision, self.device)
        except OSError as exc:
            raise EngineError(f"cannot use the engine cache in {directory}: {exc.strerror or exc}") from None
        return TensorRTEngine(module, input_names(model), precision, path, self.device)
