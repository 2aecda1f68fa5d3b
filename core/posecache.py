"""Per-video pose cache: one ``.npz`` per video, in original video pixels.

The same file is written by ``tools.extract_poses``, read by training (``train.data``), by the live
pipeline's ``file`` pose backend and by the synthetic benchmark, so the format lives here, in one place,
and every reader gets the same validation. Coordinates stay in *original video pixels* so a cache does not
depend on any crop or resolution chosen later (``core.preprocess.keypoints_to_map`` maps them).

``valid[f]`` says whether frame ``f`` was processed at all (e.g. extraction with ``--every N`` or an
interrupted run). An unprocessed frame is different from a processed frame in which nobody was found
(valid, all scores 0), and consumers may want to interpolate or hold the former but not the latter.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.errors import UserError

__all__ = [
    "PoseCache",
    "PoseCacheError",
    "SKELETON_JOINTS",
    "FORMAT_VERSION",
    "save_pose_cache",
    "load_pose_cache",
    "stack_persons",
    "nearest_valid_frames",
    "rescale_keypoints",
    "PoseTrack",
]

FORMAT_VERSION = 1

#: Joint count of each skeleton layout a cache may declare (names as in ``core.skeletons``).
SKELETON_JOINTS: dict[str, int] = {"coco17": 17, "openpose18": 18, "ntu25": 25}


class PoseCacheError(UserError, ValueError):
    """A pose cache file or object is malformed; the message is one line naming the problem."""


@dataclass
class PoseCache:
    """Poses of one video. ``coords (F,P,J,2)`` (x, y) original pixels, ``scores (F,P,J)``, ``valid (F,)``."""

    coords: np.ndarray
    scores: np.ndarray
    skeleton: str
    fps: float
    width: int
    height: int
    valid: np.ndarray
    source: str = ""
    estimator: str = ""
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def num_persons(self) -> int:
        return int(self.coords.shape[1])

    @property
    def num_joints(self) -> int:
        return int(self.coords.shape[2])

    def validate(self, where: str = "pose cache") -> "PoseCache":
        """Check shapes/dtypes/consistency; coerce to canonical dtypes. Raises ``PoseCacheError``."""
        c = np.asarray(self.coords)
        s = np.asarray(self.scores)
        v = np.asarray(self.valid)
        if c.ndim != 4 or c.shape[-1] != 2:
            raise PoseCacheError(f"{where}: coords must be (F,P,J,2), got shape {tuple(c.shape)}")
        if s.shape != c.shape[:3]:
            raise PoseCacheError(
                f"{where}: scores shape {tuple(s.shape)} does not match coords (F,P,J)={tuple(c.shape[:3])}")
        if v.shape != (c.shape[0],):
            raise PoseCacheError(f"{where}: valid must be ({c.shape[0]},), got shape {tuple(v.shape)}")
        for name, arr in (("coords", c), ("scores", s)):
            if not np.issubdtype(arr.dtype, np.floating):
                raise PoseCacheError(f"{where}: {name} must be floating point, got {arr.dtype}")
        if v.dtype != np.bool_:
            raise PoseCacheError(f"{where}: valid must be bool, got {v.dtype}")
        if self.skeleton not in SKELETON_JOINTS:
            raise PoseCacheError(
                f"{where}: unknown skeleton {self.skeleton!r} (expected one of {sorted(SKELETON_JOINTS)})")
        if c.shape[2] != SKELETON_JOINTS[self.skeleton]:
            raise PoseCacheError(
                f"{where}: skeleton {self.skeleton} has {SKELETON_JOINTS[self.skeleton]} joints, coords have {c.shape[2]}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise PoseCacheError(f"{where}: fps must be a positive number, got {self.fps}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise PoseCacheError(f"{where}: width/height must be positive, got {self.width}x{self.height}")
        if not np.isfinite(s).all():
            raise PoseCacheError(f"{where}: scores contain NaN/inf")
        self.coords = c.astype(np.float32, copy=False)
        self.scores = s.astype(np.float32, copy=False)
        self.valid = v
        self.fps = float(self.fps)
        self.width = int(self.width)
        self.height = int(self.height)
        return self

    @classmethod
    def empty(cls, num_frames: int, num_persons: int, skeleton: str, fps: float, width: int, height: int,
              source: str = "", estimator: str = "") -> "PoseCache":
        """An all-unprocessed cache to be filled frame by frame."""
        j = SKELETON_JOINTS[skeleton]
        return cls(coords=np.zeros((num_frames, num_persons, j, 2), np.float32),
                   scores=np.zeros((num_frames, num_persons, j), np.float32), skeleton=skeleton,
                   fps=float(fps), width=int(width), height=int(height),
                   valid=np.zeros(num_frames, bool), source=source, estimator=estimator)

    def frame(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(coords (P,J,2), scores (P,J))`` of one frame (scores 0 where unprocessed)."""
        return self.coords[index], self.scores[index]


def stack_persons(frames_coords: Sequence[np.ndarray], frames_scores: Sequence[np.ndarray],
                  num_joints: int, min_persons: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Stack per-frame ``(P_f,J,2)``/``(P_f,J)`` arrays with varying ``P_f`` into ``(F,P,J,2)``/``(F,P,J)``.

    Missing persons are padded with coordinate 0 and score 0, which every consumer treats as "absent"
    (the pose maps threshold on score), so padding never invents a person.
    """
    if len(frames_coords) != len(frames_scores):
        raise PoseCacheError("stack_persons: coords and scores have different frame counts")
    p = max([min_persons] + [int(np.asarray(c).shape[0]) for c in frames_coords])
    f = len(frames_coords)
    coords = np.zeros((f, p, num_joints, 2), np.float32)
    scores = np.zeros((f, p, num_joints), np.float32)
    for i, (c, s) in enumerate(zip(frames_coords, frames_scores)):
        c = np.asarray(c, np.float32).reshape(-1, num_joints, 2)
        s = np.asarray(s, np.float32).reshape(-1, num_joints)
        coords[i, : c.shape[0]] = c
        scores[i, : s.shape[0]] = s
    return coords, scores


def save_pose_cache(path: str | os.PathLike, cache: PoseCache) -> Path:
    """Write ``cache`` to ``path`` atomically (temp file in the same folder, then rename).

    Atomic so that an interrupted extraction never leaves a truncated file that a resumed run or a
    reader would mistake for a finished one.
    """
    cache.validate(str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(
        coords=cache.coords, scores=cache.scores, valid=cache.valid,
        skeleton=np.array(cache.skeleton), fps=np.array(cache.fps, np.float64),
        width=np.array(cache.width, np.int64), height=np.array(cache.height, np.int64),
        source=np.array(cache.source), estimator=np.array(cache.estimator),
        version=np.array(FORMAT_VERSION, np.int64),
        meta_keys=np.array(list(cache.meta.keys()), dtype=str),
        meta_values=np.array([str(v) for v in cache.meta.values()], dtype=str),
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


_REQUIRED = ("coords", "scores", "valid", "skeleton", "fps", "width", "height")


def load_pose_cache(path: str | os.PathLike) -> PoseCache:
    """Read and validate a cache written by ``save_pose_cache`` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise PoseCacheError(f"{path}: pose cache not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in _REQUIRED if k not in z.files]
            if missing:
                raise PoseCacheError(f"{path}: not a pose cache (missing {', '.join(missing)})")
            data = {k: z[k] for k in z.files}
    except PoseCacheError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise PoseCacheError(f"{path}: unreadable pose cache ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    version = int(data["version"]) if "version" in data else 1
    if version > FORMAT_VERSION:
        raise PoseCacheError(f"{path}: pose cache format version {version} is newer than supported {FORMAT_VERSION}")

    def _scalar(key: str, kind: type):
        arr = data[key]
        if arr.ndim != 0:
            raise PoseCacheError(f"{path}: {key} must be a scalar, got shape {tuple(arr.shape)}")
        try:
            return kind(arr.item())
        except (TypeError, ValueError):
            raise PoseCacheError(f"{path}: {key} has a bad value {arr.item()!r}") from None

    meta: dict[str, str] = {}
    if "meta_keys" in data and "meta_values" in data:
        meta = {str(k): str(v) for k, v in zip(data["meta_keys"].tolist(), data["meta_values"].tolist())}
    cache = PoseCache(
        coords=data["coords"], scores=data["scores"], valid=data["valid"],
        skeleton=_scalar("skeleton", str), fps=_scalar("fps", float),
        width=_scalar("width", int), height=_scalar("height", int),
        source=_scalar("source", str) if "source" in data else "",
        estimator=_scalar("estimator", str) if "estimator" in data else "",
        meta=meta,
    )
    return cache.validate(str(path))


# -- reading a cache for a model: the one rule for unprocessed frames and other resolutions ----------------


def nearest_valid_frames(valid: np.ndarray) -> np.ndarray:
    """For each frame, the nearest processed frame (ties: the earlier one); -1 everywhere if none.

    Caches extracted with ``--every N`` have unprocessed frames in between; holding the nearest processed
    frame is what a live pose stream running at a lower rate would show.
    """
    valid = np.asarray(valid, bool)
    n = valid.size
    if n == 0 or not valid.any():
        return np.full(n, -1, np.int64)
    pos = np.flatnonzero(valid)
    frames = np.arange(n)
    right = np.searchsorted(pos, frames, side="left").clip(0, pos.size - 1)
    left = (right - 1).clip(0, pos.size - 1)
    use_left = np.abs(frames - pos[left]) <= np.abs(pos[right] - frames)
    return np.where(use_left, pos[left], pos[right])


def rescale_keypoints(coords: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """Keypoints of a ``src_size`` (w, h) frame in pixels of a ``dst_size`` frame (a resized copy of it).

    Pixel centres sit at integer coordinates, so the image edge is at -0.5: scaling is about that edge,
    ``x' = (x + 0.5) * w'/w - 0.5``, which maps pixel centres onto pixel centres."""
    coords = np.array(coords, np.float32, copy=True)
    (sw, sh), (dw, dh) = src_size, dst_size
    if (sw, sh) != (dw, dh):
        coords[..., 0] = (coords[..., 0] + np.float32(0.5)) * np.float32(dw / sw) - np.float32(0.5)
        coords[..., 1] = (coords[..., 1] + np.float32(0.5)) * np.float32(dh / sh) - np.float32(0.5)
    return coords


class PoseTrack:
    """A pose cache as a model reads it: the training dataset, the live ``file`` pose backend and any tool
    replaying a cache all go through `at`/`frame`, so a replayed cache gives the same model inputs live and
    in training.

    Rules: a frame the cache did not process holds the nearest processed frame (ties: the earlier), an index
    past either end holds the first/last frame (as `train.data.video.read_frames` repeats the last decodable
    frame), a cache without any processed frame gives nobody, and keypoints are rescaled
    (`rescale_keypoints`) when the frames come at another size than the cached video's.
    """

    def __init__(self, cache: PoseCache) -> None:
        self.cache = cache
        self.nearest = nearest_valid_frames(cache.valid)
        self._present = cache.scores.max(axis=2) > 0 if cache.num_frames else np.zeros((0, 0), bool)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "PoseTrack":
        return cls(load_pose_cache(path))

    @property
    def skeleton(self) -> str:
        return self.cache.skeleton

    @property
    def num_frames(self) -> int:
        return self.cache.num_frames

    def rows(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """The cache row each requested frame reads (-1: nothing to read)."""
        idx = np.asarray(indices, np.int64).reshape(-1)
        if not self.num_frames:
            return np.full(idx.shape, -1, np.int64)
        return self.nearest[np.clip(idx, 0, self.num_frames - 1)]

    def at(self, indices: np.ndarray | Sequence[int], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """``coords (T, P, J, 2)`` and ``scores (T, P, J)`` float32 of ``indices`` in pixels of a ``width`` x
        ``height`` frame, every cached person slot included (absent ones have score 0)."""
        rows = self.rows(indices)
        c = self.cache
        coords = c.coords[np.maximum(rows, 0)] if c.num_frames else np.zeros((len(rows), 0, c.num_joints, 2), np.float32)
        scores = c.scores[np.maximum(rows, 0)].copy() if c.num_frames else np.zeros((len(rows), 0, c.num_joints), np.float32)
        scores[rows < 0] = 0.0
        coords = rescale_keypoints(coords, (c.width, c.height), (int(width), int(height)))
        return coords, np.asarray(scores, np.float32)

    def frame(self, index: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """The persons present in frame ``index`` (same rules as `at`): ``(P_f, J, 2)``, ``(P_f, J)``, as a pose
        estimator would return them."""
        row = int(self.rows([index])[0])
        j = self.cache.num_joints
        if row < 0:
            return np.zeros((0, j, 2), np.float32), np.zeros((0, j), np.float32)
        keep = np.flatnonzero(self._present[row])
        coords = rescale_keypoints(self.cache.coords[row, keep], (self.cache.width, self.cache.height),
                                   (int(width), int(height)))
        return coords, self.cache.scores[row, keep].astype(np.float32, copy=True)
