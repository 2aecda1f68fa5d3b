"""The project checkpoint: weights + model config + class names + pre-processing facts, in one file.

Only tensors and plain Python values are stored, so a checkpoint loads with
``torch.load(path, weights_only=True)`` and never unpickles code. The config travels with the weights
(timm style): a checkpoint alone rebuilds its network and tells the live pipeline how to sample and crop.
"""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import UserError, one_line
from core.model import IntegralAction, ModelConfig, build_model

FORMAT = "integralaction-live/1"


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used; the message is one line naming the problem."""


def preprocess_facts(config: ModelConfig) -> dict[str, Any]:
    """What a consumer must do to frames and poses before the model (derived from the config, for readers
    that do not build the model; loading never reads it back)."""
    return {
        "rgb": {"order": "RGB", "range": [0.0, 1.0], "mean": list(config.rgb_mean) if config.rgb_mean else None,
                "std": list(config.rgb_std) if config.rgb_std else None, "applied_inside_model": True},
        "spatial": {"short_side": config.short_side, "center_crop": config.rgb_size, "pose_map_size": config.map_size},
        "temporal": {"frames": config.frames, "tau": config.tau, "pose_frames": config.pose_frames,
                     "pose_tau": config.pose_tau, "ref_fps": config.ref_fps},
        "pose": {"skeleton": config.skeleton, "top_k_persons": config.top_k_persons,
                 "score_thr": config.score_thr, "threshold_mode": config.threshold_mode},
    }


def save_checkpoint(path: str | os.PathLike, model: IntegralAction, class_names: list[str] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename) so that an interrupted save never leaves a broken file."""
    path = Path(path)
    names = list(class_names if class_names is not None else model.class_names)
    if len(names) != model.config.num_classes:
        raise CheckpointError(f"{len(names)} class names for a model with {model.config.num_classes} classes")
    payload = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "class_names": names,
        "preprocess": preprocess_facts(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a checkpoint is an ordinary shareable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _validated_payload(payload: Any, path: Path) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = ""
        if isinstance(payload, dict) and ("network" in payload or any(str(k).startswith("module.") for k in payload)):
            hint = "; it looks like an authors' release: convert it with `python -m tools.import_official`"
        raise CheckpointError(f"{path} is not an IntegralAction Live checkpoint (format {FORMAT!r}){hint}")
    for key in ("config", "class_names", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"checkpoint {path} lacks {key!r}")
    return payload


def _torch_load(source: Any, path: Path) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt/untrusted files
        head = _head(source)
        if head is not None and not head.startswith((b"PK\x03\x04", b"\x80")):
            raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint (neither a zip "
                                  f"archive nor a pickle; it starts with {head[:8]!r})") from None
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if "central directory" in first:                  # miniz's words for a cut-off download or copy
            first = "the zip archive is truncated or damaged"
        elif isinstance(exc, KeyError) or len(first) < 8:   # e.g. KeyError(101) says nothing on its own
            first = f"{type(exc).__name__}: {first}"
        raise CheckpointError(f"cannot read checkpoint {path} with weights_only=True: {one_line(first, 200)}") from None


def _head(source: Any) -> bytes | None:
    """The first bytes of a checkpoint file or buffer (None when unreadable), to tell junk from damage."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as f:
                return f.read(16)
        if hasattr(source, "getvalue"):
            return bytes(source.getvalue()[:16])
    except OSError:
        return None
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate the payload without building the model."""
    path = Path(path)
    _check_file(path)
    return _validated_payload(_torch_load(path, path), path)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {path}")


def _build(payload: dict[str, Any], path: Path) -> IntegralAction:
    try:
        config = ModelConfig.from_dict(payload["config"])
        model = build_model(config, class_names=payload["class_names"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"incompatible checkpoint {path}: {exc}") from None
    try:
        result = model.load_state_dict(payload["state_dict"], strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = one_line(exc)
        raise CheckpointError(f"incompatible checkpoint {path}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing {len(result.missing_keys)} tensors (e.g. {result.missing_keys[0]})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[0]})")
        raise CheckpointError(f"incompatible checkpoint {path}: " + ", ".join(parts))
    model.checkpoint_extra = payload.get("extra", {})
    return model.eval()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> IntegralAction:
    """Rebuild the model in eval mode with `config`, `class_names` and `checkpoint_extra` attached."""
    path = Path(path)
    return _build(read_checkpoint(path), path).to(map_location)


@dataclass(frozen=True)
class CheckpointBlob:
    """A checkpoint file read once: its bytes and their sha256.

    Why: the live pipeline needs the checkpoint in two processes (the parent validates it before anything
    starts, the inference process runs it) and its hash as the key of compiled-engine caches. Reading the
    file once and handing these bytes to the inference process means one read and one hash, and the process
    runs exactly the weights the parent validated, even if the file is replaced meanwhile.
    """

    path: str
    data: bytes
    sha256: str

    @classmethod
    def read(cls, path: str | os.PathLike) -> "CheckpointBlob":
        p = Path(path)
        _check_file(p)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {p}: {exc.strerror or exc}") from None
        return cls(path=str(p), data=data, sha256=hashlib.sha256(data).hexdigest())

    def payload(self) -> dict[str, Any]:
        return _validated_payload(_torch_load(io.BytesIO(self.data), Path(self.path)), Path(self.path))

    def model(self) -> IntegralAction:
        """The model in eval mode on the CPU (same checks and attributes as `load_checkpoint`)."""
        return _build(self.payload(), Path(self.path))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
