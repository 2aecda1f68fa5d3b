"""The contract every pose backend honours, so the live pipeline can swap estimators by name.

A backend is configured once from parsed command-line flags (in the parent process, so bad flags
fail before any worker starts) and then called frame by frame inside a pose worker process.
Backends therefore pickle without their heavy runtime state (ONNX sessions, networks) and
re-open it lazily on the first call in the worker.
"""
from __future__ import annotations

import abc
import argparse

import numpy as np

from core.errors import UserError


class PoseBackendError(UserError, RuntimeError):
    """A configuration or input problem, explained in one line for the user (no traceback)."""


class PoseBackend(abc.ABC):
    """Multi-person 2D keypoint estimator for one frame at a time.

    Returned keypoints are in ORIGINAL frame pixels, (x, y) with pixel (row i, col j) at the
    point (x=j, y=i), so the pipeline's single crop/map transform applies unchanged to every
    backend and to the training-time pose caches.
    """

    name: str = ""
    skeleton: str = "coco17"  # keypoint layout of the output, a `core.skeletons` name

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        """Add this backend's own flags (named ``--pose-*``) to ``parser``."""

    @classmethod
    @abc.abstractmethod
    def configure(cls, args: argparse.Namespace, source_name: str) -> "PoseBackend":
        """Validate flags and build the backend; raise `PoseBackendError` with a one-line message."""

    @abc.abstractmethod
    def __call__(self, frame_bgr: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints of one BGR uint8 frame: coords float32 (P, J, 2), scores float32 (P, J); P may be 0."""

    def close(self) -> None:
        """Release runtime resources; the backend may not be called afterwards."""

    def __enter__(self) -> "PoseBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_common_cli(parser: argparse.ArgumentParser) -> None:
    """Flags the estimators share. Idempotent: every estimator's ``cli`` calls it, so a tool that
    registers a single backend gets them too, and registering all backends never clashes."""
    if "--pose-threads" in parser._option_string_actions:  # argparse keeps no public lookup
        return
    group = parser.add_argument_group("pose estimators (common)")
    group.add_argument("--pose-min-score", type=float, default=0.2, metavar="S",
                       help="drop persons whose person score is below S (default: 0.2)")
    group.add_argument("--pose-threads", type=int, default=1, metavar="N",
                       help="CPU threads per pose worker (default: 1; run more workers with --pose-workers)")


def empty_result(num_joints: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero persons in the contract's shapes and dtypes."""
    return (np.zeros((0, num_joints, 2), np.float32), np.zeros((0, num_joints), np.float32))


def check_frame(frame_bgr: np.ndarray) -> None:
    """Reject frames that are not HxWx3 uint8 (a wiring bug upstream, not a user error)."""
    if not isinstance(frame_bgr, np.ndarray) or frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        shape = getattr(frame_bgr, "shape", type(frame_bgr).__name__)
        raise ValueError(f"pose backend expects an HxWx3 BGR frame, got {shape}")
    if frame_bgr.dtype != np.uint8:
        raise ValueError(f"pose backend expects a uint8 frame, got {frame_bgr.dtype}")
