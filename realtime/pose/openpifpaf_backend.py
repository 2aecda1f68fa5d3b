"""openpifpaf (0.13) as a live pose backend: a thin adapter around `openpifpaf.Predictor`.

Why an adapter and a checkpoint format of our own: openpifpaf's released ``.pkl`` checkpoints are
pickled whole modules, which can only be read with ``torch.load(weights_only=False)`` (arbitrary code
execution on load). This project loads weights with ``weights_only=True`` only, so the backend reads a
plain state dict plus the base-network name (``save_openpifpaf_checkpoint``) and rebuilds the network
through openpifpaf's own factory. Converting a released ``.pkl`` once, on a machine and with a file you
trust, is described in docs/pose_backends.md. openpifpaf itself is an optional extra (it needs
torchvision and a C++ extension); nothing here imports it until the backend is configured.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from core.cliflags import add_alias
from realtime.pose.base import PoseBackend, PoseBackendError, add_common_cli, check_frame, empty_result

CHECKPOINT_FORMAT = "ia-live/openpifpaf-1"
DATASET = "cocokp"  # COCO-17 person keypoints: the only head layout this adapter accepts
NUM_JOINTS = 17


# Schemas of the torchvision ops that torchvision 0.28's import registers "fake" kernels for without
# checking that its C++ extension loaded (torchvision/_meta_registrations.py). Declared only when that
# extension cannot load (PyPI's torchvision is a CUDA build; against the CPU torch its _C.so fails).
_TORCHVISION_OP_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _import_torchvision_without_ops() -> None:
    """Import torchvision's pure-Python parts even when its C++ ops do not load.

    openpifpaf's COCO keypoint path uses only torchvision's transforms and ``channel_shuffle``; the
    C++ ops (NMS, RoI ops) serve its detection decoder, which this backend never uses. Torchvision
    0.28 fails to import at all without its ops, so the two op schemas its import touches are
    declared here (without kernels: calling them still raises). A torchvision whose ops load is
    imported untouched.
    """
    import sys

    import torch

    for _ in range(len(_TORCHVISION_OP_SCHEMAS) + 1):
        try:
            import torchvision  # noqa: F401
            return
        except RuntimeError as exc:
            missing = [op for op in _TORCHVISION_OP_SCHEMAS if f"torchvision::{op} does not exist" in str(exc)]
            if not missing:
                raise
            for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
                del sys.modules[name]
            for op in missing:
                torch.library.define(f"torchvision::{op}", _TORCHVISION_OP_SCHEMAS[op])


def _restore_matplotlib_get_cmap() -> None:
    """openpifpaf 0.13 calls ``matplotlib.cm.get_cmap`` at import time (its visualizers), which
    matplotlib 3.9 removed; the project's dev/train extras install a current matplotlib. Put back the
    equivalent (``matplotlib.colormaps``) so the import works; without matplotlib openpifpaf skips it."""
    try:
        import matplotlib
        import matplotlib.cm
    except ImportError:
        return
    if not hasattr(matplotlib.cm, "get_cmap"):
        def get_cmap(name=None, lut=None):
            cmap = matplotlib.colormaps.get_cmap(name)
            return cmap if lut is None else cmap.resampled(lut)

        matplotlib.cm.get_cmap = get_cmap


def import_openpifpaf():
    """The openpifpaf module, or a one-line `PoseBackendError` saying how to install it."""
    try:
        _import_torchvision_without_ops()
        _restore_matplotlib_get_cmap()
        import openpifpaf
    except Exception as exc:  # ImportError, or torchvision/C++-extension errors raised while importing
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PoseBackendError(
            f"the openpifpaf pose backend needs the openpifpaf package, which failed to import ({first}); "
            "see docs/pose_backends.md for the install recipe"
        ) from None
    return openpifpaf


def coco_head_metas(openpifpaf) -> list:
    """CIF + CAF head descriptions of openpifpaf's COCO keypoint data module (no dataset files needed)."""
    from openpifpaf.plugins.coco import CocoKp

    return CocoKp().head_metas


def save_openpifpaf_checkpoint(path: str | Path, net: Any) -> Path:
    """Write an openpifpaf network (``nets.Shell``) in the weights-only format this backend reads."""
    import torch

    base = getattr(getattr(net, "base_net", None), "name", None)
    if not base:
        raise ValueError("expected an openpifpaf network (nets.Shell) with base_net.name")
    datasets = sorted({hn.meta.dataset for hn in net.head_nets})
    if datasets != [DATASET]:
        raise ValueError(f"expected {DATASET} heads, the network has {datasets}")
    path = Path(path)
    torch.save({"format": CHECKPOINT_FORMAT, "basenet": str(base), "dataset": DATASET,
                "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()}}, path)
    return path


def load_openpifpaf_checkpoint(path: Path) -> dict:
    """Read and check the weights-only checkpoint; `PoseBackendError` names what is wrong."""
    import torch

    if not path.is_file():
        raise PoseBackendError(f"openpifpaf checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, "Weights only load failed", ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        hint = ""
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            hint = " (a released openpifpaf .pkl must be converted first, see docs/pose_backends.md)"
        raise PoseBackendError(f"cannot read openpifpaf checkpoint {path}: {first[:160]}{hint}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise PoseBackendError(
            f"{path} is not an {CHECKPOINT_FORMAT} checkpoint (convert it with "
            "realtime.pose.openpifpaf_backend.save_openpifpaf_checkpoint, see docs/pose_backends.md)"
        )
    if ckpt.get("dataset") != DATASET or not isinstance(ckpt.get("state_dict"), dict):
        raise PoseBackendError(f"{path}: expected {DATASET} heads and a state_dict")
    return ckpt


def annotations_to_arrays(annotations: list, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """openpifpaf annotations (``.data`` (17, 3) x, y, confidence in frame pixels, ``.score``) ->
    the contract's coords (P, 17, 2) and scores (P, 17), best person first, weak persons dropped."""
    people = [a for a in annotations if float(a.score) >= min_score and np.shape(a.data) == (NUM_JOINTS, 3)]
    if not people:
        return empty_result(NUM_JOINTS)
    people.sort(key=lambda a: -float(a.score))
    data = np.stack([np.asarray(a.data, np.float32) for a in people])
    return np.ascontiguousarray(data[..., :2]), np.ascontiguousarray(data[..., 2])


class OpenPifPafBackend(PoseBackend):
    """COCO-17 persons from an openpifpaf network; the Predictor is built lazily in the worker."""

    name = "openpifpaf"
    skeleton = "coco17"

    def __init__(self, checkpoint: Path, long_edge: int | None = None, min_score: float = 0.2,
                 threads: int = 1) -> None:
        self.checkpoint = Path(checkpoint)
        self.long_edge = long_edge
        self.min_score = float(min_score)
        self.threads = int(threads)
        self._predictor = None
        if long_edge is not None and long_edge < 32:
            raise PoseBackendError(f"--pose-long-edge must be at least 32, got {long_edge}")
        if not 0.0 <= self.min_score <= 1.0:
            raise PoseBackendError(f"--pose-min-score must be in [0, 1], got {self.min_score}")
        if self.threads < 1:
            raise PoseBackendError(f"--pose-threads must be at least 1, got {self.threads}")
        openpifpaf = import_openpifpaf()
        ckpt = load_openpifpaf_checkpoint(self.checkpoint)
        if ckpt["basenet"] not in openpifpaf.BASE_FACTORIES:
            raise PoseBackendError(f"{self.checkpoint}: unknown openpifpaf base network {ckpt['basenet']!r}")
        self.basenet = ckpt["basenet"]

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        add_common_cli(parser)
        group = parser.add_argument_group("openpifpaf pose backend (optional extra)")
        group.add_argument("--openpifpaf-checkpoint", dest="openpifpaf_checkpoint", default=None, metavar="PATH",
                           help=f"openpifpaf weights in the {CHECKPOINT_FORMAT} format (see docs/pose_backends.md)")
        # --pose-checkpoint names a stage-1 pose-stream checkpoint elsewhere (train.stage2, train.evaluate)
        add_alias(parser, "--pose-checkpoint", "--openpifpaf-checkpoint")
        group.add_argument("--pose-long-edge", type=int, default=None, metavar="N",
                           help="rescale frames to N pixels on the long side before openpifpaf (default: native)")

    @classmethod
    def configure(cls, args: argparse.Namespace, source_name: str) -> "OpenPifPafBackend":
        checkpoint = getattr(args, "openpifpaf_checkpoint", None)
        if not checkpoint:
            raise PoseBackendError("the openpifpaf pose backend needs --openpifpaf-checkpoint PATH "
                                   "(trained weights are not downloaded; see docs/pose_backends.md)")
        return cls(Path(checkpoint), long_edge=getattr(args, "pose_long_edge", None),
                   min_score=getattr(args, "pose_min_score", 0.2), threads=getattr(args, "pose_threads", 1))

    def _open(self):
        if self._predictor is None:
            self._predictor = self._build_predictor()
        return self._predictor

    def _build_predictor(self):
        import torch

        openpifpaf = import_openpifpaf()
        torch.set_num_threads(self.threads)  # in the worker process only (the predictor is built lazily)
        ckpt = load_openpifpaf_checkpoint(self.checkpoint)
        factory = openpifpaf.network.Factory
        saved = (factory.base_name, factory.checkpoint, openpifpaf.Predictor.long_edge)
        # Build the architecture from scratch (no download, no pickled module), then load the weights.
        # torchvision-based base networks must not fetch ImageNet weights either.
        for base_type in openpifpaf.BASE_TYPES:
            if hasattr(base_type, "pretrained"):
                base_type.pretrained = False
        factory.base_name, factory.checkpoint = self.basenet, None
        openpifpaf.Predictor.long_edge = self.long_edge
        try:
            predictor = openpifpaf.Predictor(head_metas=coco_head_metas(openpifpaf))
        finally:
            factory.base_name, factory.checkpoint, openpifpaf.Predictor.long_edge = saved
        try:
            predictor.model_cpu.load_state_dict(ckpt["state_dict"], strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise PoseBackendError(f"{self.checkpoint}: weights do not fit {self.basenet}: {first[:160]}") from None
        predictor.model_cpu.eval()
        return predictor

    def __call__(self, frame_bgr: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        check_frame(frame_bgr)
        predictor = self._open()
        annotations, _, _ = predictor.numpy_image(np.ascontiguousarray(frame_bgr[:, :, ::-1]))
        return annotations_to_arrays(annotations, self.min_score)

    def close(self) -> None:
        self._predictor = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_predictor"] = None
        return state
