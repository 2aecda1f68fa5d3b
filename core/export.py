"""Export the model to fixed-signature graphs: ONNX (for ONNX Runtime) and `torch.export` (for TensorRT).

`IntegralAction.forward` returns a NamedTuple whose fields may be None depending on the variant, and it
takes optional inputs. Graph runtimes want a fixed signature, so `ExportWrapper` pins one down:

* inputs: only the tensors the variant uses, in the order ``(rgb, pose)`` (``rgb`` alone for the
  appearance-only variant, ``pose`` alone for the pose-only variant);
* outputs: always the flat tuple ``(probs (B, K), logits (B, K), gate_mean (B,))`` where ``gate_mean`` is G
  (the appearance weight) averaged over frames and channels of each clip. Variants without a gate
  (appearance, pose, feature_fuse, score_average, no_gating) return **NaN** there, not zeros: 0 would read as
  "pose only", a real and meaningful gate value, while NaN is what the engine contract uses for "no gate".

Exporter choice (torch 2.13 + onnxscript 0.7): `export_onnx` uses the legacy TorchScript exporter
(`torch.onnx.export(..., dynamo=False)` with `dynamic_axes`). It exports every preset in seconds and gives
a plain graph; the dynamo exporter also works but is slower to export and adds nothing for this network.
Pass ``dynamo=True`` to try it.
"""
from __future__ import annotations

import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["ExportWrapper", "OUTPUT_NAMES", "cache_dir", "example_inputs", "export_onnx", "export_program",
           "input_names", "input_shapes", "model_digest", "shape_key"]

OUTPUT_NAMES = ("probs", "logits", "gate_mean")


class ExportWrapper(nn.Module):
    """Flat-tuple view of an IntegralAction model: ``(*inputs the variant uses) -> (probs, logits, gate_mean)``.

    The wrapped model is put in eval mode (BatchNorm must use its running statistics in a graph).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()
        config = model.config
        self.uses_rgb = bool(config.uses_appearance)
        self.uses_pose = bool(config.uses_pose)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        expected = int(self.uses_rgb) + int(self.uses_pose)
        if len(inputs) != expected:
            raise TypeError(f"expected {expected} input tensor(s) {input_names(self.model)}, got {len(inputs)}")
        it = iter(inputs)
        rgb = next(it) if self.uses_rgb else None
        pose = next(it) if self.uses_pose else None
        out = self.model(rgb, pose)
        if out.gate is not None:
            gate_mean = out.gate.flatten(1).mean(1)
        else:  # no gate in this variant: NaN (the engine contract's "no gate"), never 0 (= "pose only")
            gate_mean = torch.full_like(out.probs[:, 0], math.nan)
        return out.probs, out.logits, gate_mean


def input_names(model: nn.Module) -> list[str]:
    config = model.config
    return [name for name, used in (("rgb", config.uses_appearance), ("pose", config.uses_pose)) if used]


def input_shapes(model: nn.Module, batch: int = 1) -> list[tuple[int, ...]]:
    """Shapes of the inputs the variant uses, in `ExportWrapper` order."""
    config = model.config
    shapes = []
    if config.uses_appearance:
        shapes.append((batch, config.frames, 3, config.rgb_size, config.rgb_size))
    if config.uses_pose:
        shapes.append((batch, config.pose_frames, config.num_pose_channels, config.map_size, config.map_size))
    return shapes


def example_inputs(model: nn.Module, batch: int = 1, seed: int | None = 0) -> tuple[torch.Tensor, ...]:
    """Random inputs in [0, 1) of the shapes the model's config expects, in `ExportWrapper` order."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return tuple(torch.rand(shape, generator=gen) for shape in input_shapes(model, batch))


def export_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17, dynamic_batch: bool = True,
                dynamo: bool = False) -> Path:
    """Write the model as ONNX (inputs `rgb`/`pose`, outputs `probs`, `logits`, `gate_mean`).

    Written to a temporary file and renamed, so that a reader (an engine cache) never sees a half file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(model).eval()
    args = example_inputs(model, batch=2 if dynamic_batch else 1)
    names = input_names(model)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-derived Python ints
            if dynamo:
                batch = torch.export.Dim("batch", min=1, max=1024)
                shapes = (tuple({0: batch} for _ in args),) if dynamic_batch else None
                program = torch.onnx.export(wrapper, args, dynamo=True, opset_version=opset, input_names=names,
                                            output_names=list(OUTPUT_NAMES), dynamic_shapes=shapes)
                program.save(tmp)
            else:
                axes: dict[str, dict[int, str]] | None = None
                if dynamic_batch:
                    axes = {name: {0: "batch"} for name in (*names, *OUTPUT_NAMES)}
                torch.onnx.export(wrapper, args, tmp, dynamo=False, opset_version=opset, input_names=names,
                                  output_names=list(OUTPUT_NAMES), dynamic_axes=axes, do_constant_folding=True)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_program(model: nn.Module, batch: int = 1, dynamic_batch: bool = True,
                   max_batch: int = 64) -> Any:
    """`torch.export.export` of `ExportWrapper(model)`; the batch dimension is a `Dim` when `dynamic_batch`.

    The example batch is at least 2 because torch.export specialises a dimension of size 1.
    """
    wrapper = ExportWrapper(model).eval()
    example_batch = max(batch, 2) if dynamic_batch else batch
    args = example_inputs(model, batch=example_batch)
    shapes = None
    if dynamic_batch:
        dim = torch.export.Dim("batch", min=1, max=max_batch)
        shapes = (tuple({0: dim} for _ in args),)  # one entry: the forward's *inputs
    with torch.no_grad():
        return torch.export.export(wrapper, args, dynamic_shapes=shapes)


# -- on-disk caches of exported/compiled engines ------------------------------------------------------
CACHE_ENV = "IA_LIVE_CACHE"


def cache_dir() -> Path:
    """Where engines keep exported graphs: ``$IA_LIVE_CACHE`` or ``~/.cache/ia-live/engines``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ia-live" / "engines"


def model_digest(model: nn.Module, checkpoint_path: Any = None) -> str:
    """sha256 of the checkpoint file when there is one, else of the model's config and weights.

    Either way the same weights give the same key, so a restart finds its cached engine, and new weights
    (a retrained checkpoint at the same path) give a new one. ``checkpoint_path`` may be a
    `core.checkpoint.CheckpointBlob`, whose hash was taken when the file was read (the live pipeline reads
    and hashes a checkpoint once).
    """
    import hashlib
    import json

    known = getattr(checkpoint_path, "sha256", None)
    if isinstance(known, str):
        return known
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        from core.checkpoint import file_sha256

        return file_sha256(checkpoint_path)
    digest = hashlib.sha256()
    digest.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(value.shape)).encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def shape_key(model: nn.Module, batch: int = 1) -> str:
    """Input shapes of one window, for cache file names (`b1-rgb8x3x224-pose8x52x56`)."""
    parts = [f"b{batch}"]
    for name, shape in zip(input_names(model), input_shapes(model, batch)):
        parts.append(name + "x".join(str(d) for d in shape[1:]))
    return "-".join(parts)
