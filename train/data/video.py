"""Decode only the frames a clip needs, from a video file or a folder of frames, with OpenCV.

Strategy (measured, see ``docs/data.md``): one sequential pass from the first needed frame,
``grab()`` on frames that are not needed (demux + decode, no colour conversion/copy) and ``retrieve()``
on the needed ones. Seeking (``CAP_PROP_POS_FRAMES``) makes FFmpeg jump to the previous key frame and
decode forward anyway, so for short clips with a clip spread over a few seconds it costs as much as or
more than reading on, and with some codecs/containers it lands on the wrong frame. We seek only once, to
the first needed frame, when it is far from the start (``seek_threshold``) - that saves the decode of the
skipped prefix for long videos - and verify the position afterwards, falling back to reading from 0.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core.video import capture_facts, frame_files, resolve_fps

from . import DatasetFormatError

__all__ = ["VideoInfo", "probe_video", "read_frames", "FrameCache"]


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int


def probe_video(path: str | os.PathLike, default_fps: float = 30.0) -> VideoInfo:
    """Frame count, fps and size (`core.video`'s fps rule). Frame folders use ``default_fps`` (they carry no
    timing)."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise DatasetFormatError(f"{path}: frame folder has no images")
        first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
        if first is None:
            raise DatasetFormatError(f"{files[0]}: unreadable image")
        return VideoInfo(len(files), resolve_fps(default_fps)[0], first.shape[1], first.shape[0])
    if not path.is_file():
        raise DatasetFormatError(f"{path}: video not found")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DatasetFormatError(f"{path}: OpenCV cannot open this video")
        facts = capture_facts(cap, default_fps)
    finally:
        cap.release()
    if not facts.frame_count or facts.width <= 0 or facts.height <= 0:
        raise DatasetFormatError(f"{path}: video reports no frames or no size")
    return VideoInfo(facts.frame_count, facts.fps, facts.width, facts.height)


class FrameCache:
    """In-memory LRU of decoded BGR frames keyed by ``(video, index)``, bounded in bytes.

    For small datasets (the synthetic benchmark) that are read every epoch: after the first epoch,
    training is no longer decode-bound. Each DataLoader worker process holds its own copy, so budget
    ``max_bytes`` per worker (or use ``num_workers=0``).
    """

    def __init__(self, max_bytes: int = 2 << 30) -> None:
        self.max_bytes = int(max_bytes)
        self._data: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, int]) -> np.ndarray | None:
        with self._lock:
            frame = self._data.get(key)
            if frame is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return frame

    def put(self, key: tuple[str, int], frame: np.ndarray) -> None:
        if frame.nbytes > self.max_bytes:
            return
        with self._lock:
            if key in self._data:
                return
            self._data[key] = frame
            self._bytes += frame.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._data.popitem(last=False)
                self._bytes -= old.nbytes

    def __len__(self) -> int:
        return len(self._data)

    @property
    def nbytes(self) -> int:
        return self._bytes


def read_frames(path: str | os.PathLike, indices: Sequence[int], cache: FrameCache | None = None,
                seek_threshold: int = 150) -> np.ndarray:
    """BGR uint8 ``(len(indices), H, W, 3)`` in the order of ``indices`` (repeats allowed).

    Indices past the real end of the video (container frame counts can be off by a few) repeat the last
    decodable frame, consistent with ``core.sampling``'s clamping.
    """
    path = Path(path)
    idx = [int(i) for i in indices]
    if not idx:
        raise ValueError("read_frames: no indices")
    if min(idx) < 0:
        raise ValueError(f"read_frames: negative frame index {min(idx)}")
    key = str(path)
    got: dict[int, np.ndarray] = {}
    if cache is not None:
        for i in set(idx):
            frame = cache.get((key, i))
            if frame is not None:
                got[i] = frame
    wanted = sorted(set(idx) - set(got))
    if wanted:
        decoded = _read_folder(path, wanted) if path.is_dir() else _read_video(path, wanted, seek_threshold)
        for i, frame in decoded.items():
            got[i] = frame
            if cache is not None:
                cache.put((key, i), frame)
    return np.stack([got[i] for i in idx])


def _read_folder(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    files = frame_files(path)
    if not files:
        raise DatasetFormatError(f"{path}: frame folder has no images")
    out: dict[int, np.ndarray] = {}
    for i in wanted:
        f = files[min(i, len(files) - 1)]
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is None:
            raise DatasetFormatError(f"{f}: unreadable image")
        out[i] = img
    return out


def _read_video(path: Path, wanted: list[int], seek_threshold: int) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DatasetFormatError(f"{path}: OpenCV cannot open this video")
    try:
        pos = 0
        first = wanted[0]
        if first >= seek_threshold:
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == first:
                pos = first
            else:  # inexact seek: start over from the beginning
                cap.release()
                cap = cv2.VideoCapture(str(path))
        out: dict[int, np.ndarray] = {}
        last: np.ndarray | None = None
        remaining = set(wanted)
        end = wanted[-1]
        while pos <= end:
            if not cap.grab():
                break
            if pos in remaining:
                ok, frame = cap.retrieve()
                if not ok or frame is None:
                    break
                out[pos] = last = frame
            pos += 1
        missing = [i for i in wanted if i not in out]
        if missing:
            if last is None:
                last = _last_frame(cap, path) if not out else out[max(out)]
            for i in missing:
                out[i] = last
        return out
    finally:
        cap.release()


def _last_frame(cap: cv2.VideoCapture, path: Path) -> np.ndarray:
    """Last decodable frame when every wanted index lay past the real end."""
    cap.release()
    cap = cv2.VideoCapture(str(path))
    last = None
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            last = frame
    finally:
        cap.release()
    if last is None:
        raise DatasetFormatError(f"{path}: no decodable frames")
    return last
