"""Precomputed poses from the project's pose cache: replay exactly the keypoints training used.

Why: with the same cache that `tools.extract_poses` wrote for training, a live run over a video
isolates the recognizer from pose-estimator differences, and it needs no estimator at all.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from realtime.pose.base import PoseBackend, PoseBackendError, check_frame, empty_result


def resolve_cache_path(cache: Path, source_name: str) -> Path:
    """A .npz file as given, or ``<dir>/<video stem>.npz`` for a directory of caches."""
    if cache.is_dir():
        stem = Path(source_name).stem if source_name else ""
        live = source_name.isdigit() or source_name.startswith("camera:") or "://" in source_name
        if not stem or live:  # realtime.sources names cameras "camera:N"; streams are URLs
            raise PoseBackendError(
                f"--pose-cache {cache} is a directory, which needs a video file source to pick "
                f"<video stem>.npz (source: {source_name or 'none'})"
            )
        path = cache / f"{stem}.npz"
        if not path.is_file():
            raise PoseBackendError(f"no pose cache for {source_name} in {cache} (expected {path.name})")
        return path
    if not cache.is_file():
        raise PoseBackendError(f"pose cache not found: {cache}")
    return cache


class FileBackend(PoseBackend):
    """Cached keypoints of the requested frame; frames outside the cache or unprocessed -> 0 persons.

    Coordinates are rescaled when the frames arrive at a different size than the cached video's
    (e.g. a re-encoded copy), so they always land in the frame actually being processed.
    """

    name = "file"
    skeleton = "coco17"  # replaced per instance by the cache's own layout

    def __init__(self, cache_path: Path) -> None:
        from core.posecache import PoseCacheError, load_pose_cache

        self.cache_path = Path(cache_path)
        try:
            cache = load_pose_cache(self.cache_path)
        except PoseCacheError as exc:
            raise PoseBackendError(" ".join(str(exc).split())) from None
        self.skeleton = cache.skeleton
        self.width = cache.width
        self.height = cache.height
        self.fps = cache.fps
        present = cache.scores > 0  # (F, P, J); zero-score padding is "no person"
        self._valid = np.asarray(cache.valid, bool)
        self._coords = cache.coords
        self._scores = cache.scores
        self._persons = [np.flatnonzero(present[f].any(axis=1)) for f in range(cache.num_frames)]

    @property
    def num_frames(self) -> int:
        return int(self._valid.shape[0])

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("file pose backend")
        group.add_argument("--pose-cache", default=None, metavar="PATH",
                           help="pose cache .npz (from tools.extract_poses), or a directory holding "
                                "<video stem>.npz")

    @classmethod
    def configure(cls, args: argparse.Namespace, source_name: str) -> "FileBackend":
        cache = getattr(args, "pose_cache", None)
        if not cache:
            raise PoseBackendError("the file pose backend needs --pose-cache PATH (.npz or a directory)")
        return cls(resolve_cache_path(Path(cache), source_name))

    def __call__(self, frame_bgr: np.ndarray, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        check_frame(frame_bgr)
        joints = self._coords.shape[2]
        f = int(frame_index)
        if f < 0 or f >= self.num_frames or not self._valid[f]:
            return empty_result(joints)
        keep = self._persons[f]
        coords = self._coords[f, keep].astype(np.float32, copy=True)
        scores = self._scores[f, keep].astype(np.float32, copy=True)
        h, w = frame_bgr.shape[:2]
        if (w, h) != (self.width, self.height):
            # Pixel centres sit at integers: scale about the -0.5 edge, not about 0.
            coords[..., 0] = (coords[..., 0] + 0.5) * (w / self.width) - 0.5
            coords[..., 1] = (coords[..., 1] + 0.5) * (h / self.height) - 0.5
        return coords, scores
