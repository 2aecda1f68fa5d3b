"""One window's model inputs from frames and keypoints: the chain that live inference, training, evaluation
and int8 calibration share (crop -> RGB tensor; person selection -> skeleton conversion -> pose-map grid ->
pose maps).

Why one class: the live pose and assembly stages, the training `ClipDataset`, int8 calibration
(`realtime.engines.quantize`) and the benchmarks all turn "T sampled BGR frames + keypoints in source-frame
pixels" into the ``(T, 3, S, S)`` RGB and ``(T, J + 2B, M, M)`` pose stacks the network sees. If any of them
cropped, normalised, selected persons, converted skeletons or placed the map grid differently, the model
would run live on inputs it was never trained on. `ClipBuilder` is that chain, once: the live pipeline calls
its steps in separate processes (`crop_frame` and `keypoints` per frame in the pose stage, `rgb_input` and
`pose_input` per window in the assembly stage); the dataset and the tools call `window`, which is those same
steps in a row (`tests/test_clip_parity.py` runs a video + pose cache through both and compares).

Two map geometries (``ModelConfig.pose_crop``):

* ``frame``: the paper's. Maps are the RGB crop's grid at 1/4 (`core.preprocess.keypoints_to_map`), so
  pose maps and RGB crops are spatially aligned; a person far from the camera is a few map pixels tall.
* ``person``: a square box around every drawn person's keypoints over the *whole window*, grown by
  ``pose_margin`` (mmaction2 PoseC3D's ``PoseCompact``). One box per window keeps the motion inside the
  window (a jump, a squat) while a small or off-centre person still fills the map. Training jitters the
  box (scale, aspect, shift) and mirrors it; evaluation and live use the plain box.

Persons: the ``top_k_persons`` with the highest mean joint score are drawn, per frame, always sorted by
that score (ties in input order), so the live pose stage, which keeps only those persons, renders
bit-identical maps to training on the full pose cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.posemaps import render_pose_maps, select_top_k
from core.preprocess import CropSpec, apply_crop, crop_transform, frames_to_array, keypoints_to_map
from core.skeletons import convert_keypoints, get_skeleton

__all__ = ["InputSpec", "PersonJitter", "BoxTransform", "ClipBuilder", "person_box", "top_persons"]


@dataclass(frozen=True)
class InputSpec:
    """The pre-processing fields of a model config (`core.model.ModelConfig`): what a window must look like."""

    skeleton: str = "openpose18"
    rgb_size: int = 224
    map_size: int = 56
    short_side: int = 256
    top_k_persons: int = 5
    score_thr: float = 0.1
    threshold_mode: str = "released"
    pose_crop: str = "frame"
    pose_margin: float = 0.25

    @classmethod
    def from_config(cls, config: Any) -> "InputSpec":
        """From a ModelConfig, its dict, or any object with the same field names (missing = default)."""
        get = config.get if isinstance(config, dict) else (lambda k, d: getattr(config, k, d))
        return cls(**{f: get(f, getattr(cls, f)) for f in cls.__dataclass_fields__})

    @property
    def crop_spec(self) -> CropSpec:
        return CropSpec(short_side=self.short_side, crop=self.rgb_size, map_size=self.map_size)


@dataclass(frozen=True)
class PersonJitter:
    """Training-time randomisation of the person box (the person-mode counterpart of the random crop)."""

    scale: tuple[float, float] = (0.9, 1.2)     # box side x U(scale)
    aspect: tuple[float, float] = (0.9, 1.1)    # x-scale / y-scale of the box
    shift: float = 0.08                         # centre moves by up to this fraction of the side


@dataclass(frozen=True)
class BoxTransform:
    """Source pixels -> map grid: ``m = (p - origin) * scale - 0.5``, then optionally mirrored about the
    map centre (``x' = M - 1 - x``). The box's centre lands on the map's centre, ``(M - 1) / 2``."""

    x0: float
    y0: float
    scale_x: float
    scale_y: float
    map_size: int
    flip: bool = False

    def apply(self, coords: np.ndarray) -> np.ndarray:
        coords = np.asarray(coords, np.float32)
        out = np.empty_like(coords)
        out[..., 0] = (coords[..., 0] - np.float32(self.x0)) * np.float32(self.scale_x) - np.float32(0.5)
        out[..., 1] = (coords[..., 1] - np.float32(self.y0)) * np.float32(self.scale_y) - np.float32(0.5)
        if self.flip:
            out[..., 0] = np.float32(self.map_size - 1) - out[..., 0]
        return out


def top_persons(coords: np.ndarray, scores: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the ``top_k`` persons of each frame by mean joint score, sorted (ties in input order).

    ``coords (T, P, J, 2)``, ``scores (T, P, J)`` -> ``(T, min(P, top_k), J, 2)``, ``(T, min(P, top_k), J)``.
    """
    coords = np.asarray(coords, np.float32)
    scores = np.asarray(scores, np.float32)
    keep = select_top_k(scores, top_k)
    return (np.take_along_axis(coords, keep[:, :, None, None], axis=1),
            np.take_along_axis(scores, keep[:, :, None], axis=1))


def person_box(coords: np.ndarray, scores: np.ndarray, score_thr: float) -> tuple[float, float, float, float] | None:
    """``(x_min, y_min, x_max, y_max)`` of every keypoint scoring at least ``score_thr`` (finite only), over
    all frames and persons given, or None when there is none."""
    coords = np.asarray(coords, np.float32)
    ok = (np.asarray(scores, np.float32) >= np.float32(score_thr)) & np.isfinite(coords).all(-1)
    if not ok.any():
        return None
    pts = coords[ok]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


class ClipBuilder:
    """Pose maps of one window of a ``width`` x ``height`` source, for one model's `InputSpec`."""

    def __init__(self, spec: InputSpec, height: int, width: int, jitter: PersonJitter = PersonJitter()) -> None:
        if spec.pose_crop not in ("frame", "person"):
            raise ValueError(f"pose_crop must be 'frame' or 'person', got {spec.pose_crop!r}")
        self.spec = spec
        self.height, self.width = int(height), int(width)
        self.skeleton = get_skeleton(spec.skeleton)
        self.crop = crop_transform(self.height, self.width, spec.crop_spec)
        self.jitter = jitter
        # a box is never smaller than this (a lone keypoint would otherwise blow up to fill the map)
        self.min_side = 0.1 * min(self.height, self.width)

    # -- steps ------------------------------------------------------------------------------------
    def keypoints(self, coords: np.ndarray, scores: np.ndarray, skeleton: str) -> tuple[np.ndarray, np.ndarray]:
        """Source-skeleton keypoints ``(T, P, J, 2)`` -> the drawn persons in the model's skeleton."""
        coords, scores = convert_keypoints(np.asarray(coords, np.float32), np.asarray(scores, np.float32),
                                           skeleton, self.skeleton.name)
        return top_persons(coords, scores, self.spec.top_k_persons)

    def box(self, coords: np.ndarray, scores: np.ndarray, rng: np.random.Generator | None = None,
            flip: bool = False) -> BoxTransform:
        """The window's person box (``coords``/``scores`` already selected), jittered when ``rng`` is given."""
        m = self.spec.map_size
        found = person_box(coords, scores, self.spec.score_thr)
        if found is None:   # nobody: nothing is drawn, any box will do
            x0, y0, x1, y1 = 0.0, 0.0, float(self.width), float(self.height)
        else:
            x0, y0, x1, y1 = found
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        side = max(x1 - x0, y1 - y0) * (1.0 + self.spec.pose_margin)
        side = max(side, self.min_side)
        sx = sy = side
        if rng is not None:
            j = self.jitter
            side *= float(rng.uniform(*j.scale))
            aspect = float(rng.uniform(*j.aspect))
            sx, sy = side * np.sqrt(aspect), side / np.sqrt(aspect)
            cx += float(rng.uniform(-j.shift, j.shift)) * side
            cy += float(rng.uniform(-j.shift, j.shift)) * side
        return BoxTransform(x0=cx - sx / 2, y0=cy - sy / 2, scale_x=m / sx, scale_y=m / sy, map_size=m, flip=flip)

    def map_coords(self, coords: np.ndarray, scores: np.ndarray, rng: np.random.Generator | None = None,
                   flip: bool = False) -> np.ndarray:
        """Selected source-pixel keypoints -> the map grid of this model's geometry.

        Frame mode has no randomness here: its training augmentation is `core.preprocess.random_augment`,
        which moves pixels and keypoints through one affine matrix."""
        if self.spec.pose_crop == "frame":
            if rng is not None or flip:
                raise ValueError("frame-mode augmentation goes through core.preprocess.random_augment")
            return keypoints_to_map(coords, self.crop)
        return self.box(coords, scores, rng, flip).apply(coords)

    def render(self, map_coords: np.ndarray, scores: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        s = self.spec
        return render_pose_maps(np.asarray(map_coords, np.float32), np.asarray(scores, np.float32), self.skeleton,
                                size=s.map_size, top_k=s.top_k_persons, score_thr=s.score_thr,
                                threshold_mode=s.threshold_mode, out=out)

    # -- RGB ----------------------------------------------------------------------------------------
    def crop_frame(self, frame_bgr: np.ndarray) -> np.ndarray:
        """One BGR source frame -> its RGB uint8 test-time crop ``(S, S, 3)``."""
        return apply_crop(frame_bgr, self.crop)

    @staticmethod
    def rgb_input(crops_rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(T, S, S, 3)`` RGB uint8 crops -> the network's ``(T, 3, S, S)`` float32 in [0, 1]."""
        return frames_to_array(crops_rgb, out=out)

    # -- the chain --------------------------------------------------------------------------------
    def pose_input(self, coords: np.ndarray, scores: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Test-time pose maps of keypoints already selected by `keypoints` (the live assembly stage's step)."""
        return self.render(self.map_coords(coords, scores), scores, out=out)

    def window(self, frames_bgr: np.ndarray | None, coords: np.ndarray | None, scores: np.ndarray | None,
               skeleton: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Test-time inputs of one window: ``(rgb (T, 3, S, S), pose (T_pose, C, M, M))`` float32 from BGR
        frames and source-skeleton keypoints ``(T_pose, P, J, 2)``/``(T_pose, P, J)`` in source pixels. Either
        stream may be None (a single-stream model)."""
        rgb = None
        if frames_bgr is not None:
            rgb = self.rgb_input(np.stack([self.crop_frame(f) for f in frames_bgr]))
        pose = None
        if coords is not None:
            sel_c, sel_s = self.keypoints(coords, scores, skeleton)
            pose = self.pose_input(sel_c, sel_s)
        return rgb, pose

    def pose_maps(self, coords: np.ndarray, scores: np.ndarray, skeleton: str,
                  rng: np.random.Generator | None = None, flip: bool = False,
                  out: np.ndarray | None = None) -> np.ndarray:
        """``(T, P, J_src, 2)`` source-pixel keypoints + scores -> ``(T, J + 2B, M, M)`` float32 maps."""
        coords, scores = self.keypoints(coords, scores, skeleton)
        return self.render(self.map_coords(coords, scores, rng, flip), scores, out=out)
