"""MoveNet MultiPose Lightning through onnxruntime: the default, download-free live pose estimator.

Why MoveNet: it is a real trained multi-person COCO-17 model small enough to run at camera rate on
one or two CPU threads, and it ships as a single ONNX file committed in ``models/`` (Apache-2.0,
``models/NOTICE.md``), so a plain clone runs the live path with no torch model and no network access.
"""
from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.devices import DeviceError, device_arg, onnxruntime_providers
from realtime.pose.base import PoseBackend, PoseBackendError, add_common_cli, check_frame, empty_result

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_FILE = "movenet_multipose_lightning.onnx"
MODEL_ENV = "IA_LIVE_POSE_MODEL"
INPUT_NAME = "input:0"
OUTPUT_NAME = "Identity:0"
NUM_JOINTS = 17
MAX_PERSONS = 6


def default_model_path() -> Path:
    """`$IA_LIVE_POSE_MODEL` if set, else ``models/`` under the repository root."""
    env = os.environ.get(MODEL_ENV)
    return Path(env) if env else REPO_ROOT / "models" / MODEL_FILE


@dataclass(frozen=True)
class Letterbox:
    """How a frame was resized and padded into the network input, so it can be undone exactly."""

    scale_x: float  # resized width / original width
    scale_y: float
    resized_w: int
    resized_h: int
    input_w: int  # padded to a multiple of 32
    input_h: int

    @classmethod
    def for_frame(cls, width: int, height: int, long_side: int) -> "Letterbox":
        scale = long_side / max(width, height)
        rw = max(1, round(width * scale))
        rh = max(1, round(height * scale))
        iw = max(32, math.ceil(rw / 32) * 32)
        ih = max(32, math.ceil(rh / 32) * 32)
        return cls(rw / width, rh / height, rw, rh, iw, ih)

    def apply(self, frame_bgr: np.ndarray) -> np.ndarray:
        """RGB int32 NHWC input: frame resized into the top-left corner, zero padding elsewhere."""
        # Bilinear without anti-aliasing, as TF's resize_with_pad in MoveNet's reference usage; on a
        # 1080p frame it costs ~0.1 ms where INTER_AREA costs ~9 ms, for the same accuracy on the NTU check.
        resized = cv2.resize(frame_bgr, (self.resized_w, self.resized_h), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((1, self.input_h, self.input_w, 3), np.int32)
        canvas[0, : self.resized_h, : self.resized_w] = resized[:, :, ::-1]
        return canvas

    def to_frame(self, x_norm: np.ndarray, y_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Input-normalised coordinates -> original pixel coordinates (pixel centres at integers).

        The network's [0, 1] spans the input edge to edge; an edge-based position e maps to the
        pixel-index coordinate e - 0.5.
        """
        x = x_norm * self.input_w / self.scale_x - 0.5
        y = y_norm * self.input_h / self.scale_y - 0.5
        return x, y


def decode(raw: np.ndarray, box: Letterbox, min_score: float) -> tuple[np.ndarray, np.ndarray]:
    """``Identity:0`` (1, 6, 56) -> coords (P, 17, 2), scores (P, 17), most confident person first."""
    people = raw.reshape(MAX_PERSONS, 56)
    keep = np.flatnonzero(people[:, 55] >= min_score)
    if keep.size == 0:
        return empty_result(NUM_JOINTS)
    keep = keep[np.argsort(-people[keep, 55], kind="stable")]
    kps = people[keep, : NUM_JOINTS * 3].reshape(-1, NUM_JOINTS, 3)
    x, y = box.to_frame(kps[..., 1], kps[..., 0])
    coords = np.stack([x, y], axis=-1).astype(np.float32)
    return coords, np.ascontiguousarray(kps[..., 2], dtype=np.float32)


class MoveNetBackend(PoseBackend):
    """Up to 6 persons, COCO-17, letterboxed to ``--pose-input-size`` on the long side.

    Uses the common ``--pose-min-score`` (MoveNet's person score) and ``--pose-threads``
    (onnxruntime intra-op threads).
    """

    name = "movenet"
    skeleton = "coco17"

    def __init__(self, model_path: Path, input_size: int = 256, min_score: float = 0.2,
                 threads: int = 1, device: str = "cpu") -> None:
        self.model_path = Path(model_path)
        self.device = str(device)
        self.input_size = int(input_size)
        self.min_score = float(min_score)
        self.threads = int(threads)
        self._session = None
        self._box_cache: dict[tuple[int, int], Letterbox] = {}
        _validate(self.model_path, self.input_size, self.min_score, self.threads)

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        add_common_cli(parser)
        group = parser.add_argument_group("movenet pose backend")
        group.add_argument("--pose-model", default=None, metavar="PATH",
                           help=f"MoveNet MultiPose ONNX file (default: ${MODEL_ENV} or models/{MODEL_FILE})")
        group.add_argument("--pose-input-size", type=int, default=256, metavar="N",
                           help="network input long side in pixels, a multiple of 32 (default: 256)")
        group.add_argument("--pose-device", type=device_arg, default="cpu", metavar="DEVICE",
                           help="cpu, cuda or cuda:N (onnxruntime's CUDAExecutionProvider; auto: CUDA where "
                                "present), default: cpu")

    @classmethod
    def configure(cls, args: argparse.Namespace, source_name: str) -> "MoveNetBackend":
        model = getattr(args, "pose_model", None)
        backend = cls(
            Path(model) if model else default_model_path(),
            input_size=getattr(args, "pose_input_size", 256),
            min_score=getattr(args, "pose_min_score", 0.2),
            threads=getattr(args, "pose_threads", 1),
            device=getattr(args, "pose_device", None) or "cpu",
        )
        backend._open()  # fail now on a corrupt or wrong model, not inside a worker
        return backend

    def _open(self):
        if self._session is None:
            self._session = _open_session(self.model_path, self.threads, self.device)
        return self._session

    def letterbox(self, width: int, height: int) -> Letterbox:
        key = (width, height)
        box = self._box_cache.get(key)
        if box is None:
            box = self._box_cache[key] = Letterbox.for_frame(width, height, self.input_size)
        return box

    def __call__(self, frame_bgr: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        check_frame(frame_bgr)
        session = self._open()
        box = self.letterbox(frame_bgr.shape[1], frame_bgr.shape[0])
        raw = session.run([OUTPUT_NAME], {INPUT_NAME: box.apply(frame_bgr)})[0]
        return decode(raw, box, self.min_score)

    def close(self) -> None:
        self._session = None

    def __getstate__(self) -> dict:
        # ONNX sessions do not pickle; the worker re-opens the model on its first frame.
        state = self.__dict__.copy()
        state["_session"] = None
        return state


def _validate(model_path: Path, input_size: int, min_score: float, threads: int) -> None:
    if not model_path.is_file():
        raise PoseBackendError(
            f"pose model not found: {model_path} (pass --pose-model PATH or set {MODEL_ENV}; the repository "
            f"carries models/{MODEL_FILE}, see models/NOTICE.md)"
        )
    if input_size < 64 or input_size > 1024 or input_size % 32:
        raise PoseBackendError(f"--pose-input-size must be a multiple of 32 in [64, 1024], got {input_size}")
    if not 0.0 <= min_score <= 1.0:
        raise PoseBackendError(f"--pose-min-score must be in [0, 1], got {min_score}")
    if threads < 1:
        raise PoseBackendError(f"--pose-threads must be at least 1, got {threads}")


def _open_session(model_path: Path, threads: int, device: str = "cpu"):
    import onnxruntime as ort

    try:
        providers = onnxruntime_providers(device, "--pose-device")
    except DeviceError as exc:
        raise PoseBackendError(str(exc)) from None

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads must not spin: capture, pose and inference processes share few cores.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), opts, providers=providers)
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoseBackendError(f"cannot load pose model {model_path}: {first}") from None
    inputs = {i.name for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs or list(outputs[OUTPUT_NAME])[-1] != 56:
        raise PoseBackendError(
            f"{model_path} is not a MoveNet MultiPose model (expected input {INPUT_NAME} and output "
            f"{OUTPUT_NAME} [1, 6, 56])"
        )
    return session
