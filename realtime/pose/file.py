"""Precomputed poses from the project's pose cache: replay exactly the keypoints training used.

Why: with the same cache that `tools.extract_poses` wrote for training, a live run over a video
isolates the recognizer from pose-estimator differences, and it needs no estimator at all.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core.errors import one_line
from realtime.pose.base import PoseBackend, PoseBackendError, check_frame


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
    """Cached keypoints of the requested frame, read with `core.posecache.PoseTrack`'s rules, the ones the
    training dataset uses: an unprocessed frame (or one past the cache's ends) holds the nearest processed
    frame, and keypoints are rescaled when the frames arrive at another size than the cached video's (e.g.
    a re-encoded copy), so they always land in the frame actually being processed.
    """

    name = "file"
    skeleton = "coco17"  # replaced per instance by the cache's own layout

    def __init__(self, cache_path: Path) -> None:
        self.cache_path = Path(cache_path)
        self._track = None
        cache = self.track.cache   # load (and validate) now: a bad cache fails before any worker starts
        self.skeleton = cache.skeleton
        self.width = cache.width
        self.height = cache.height
        self.fps = cache.fps

    @property
    def track(self):
        """The cache as a `core.posecache.PoseTrack`, loaded on first use."""
        if self._track is None:
            from core.posecache import PoseCacheError, PoseTrack

            try:
                self._track = PoseTrack.load(self.cache_path)
            except PoseCacheError as exc:
                raise PoseBackendError(one_line(exc)) from None
        return self._track

    def close(self) -> None:
        self._track = None

    def __getstate__(self) -> dict:
        # a worker reloads the file: the arrays would otherwise travel in every worker's start-up arguments
        state = self.__dict__.copy()
        state["_track"] = None
        return state

    @property
    def num_frames(self) -> int:
        return self.track.num_frames

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
        h, w = frame_bgr.shape[:2]
        return self.track.frame(int(frame_index), w, h)
