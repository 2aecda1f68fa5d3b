"""The one spatial pre-processing shared by live inference, training and evaluation.

Test time (the released code's test path): resize so the short side is 256 keeping the aspect ratio,
centre-crop 224x224, and express keypoints in the 56x56 pose-map grid of that crop
(``crop pixel / 4``). Training: the same resize, then a random box (scale + translation) resized to
224 and a random horizontal flip, applied through ONE affine matrix to both the pixels and the
keypoints so they cannot drift apart.

Coordinates follow the released code: a keypoint at original pixel x lands at ``x * scale_x`` in the
resized frame (no half-pixel correction), pixel (row i, col j) is the point (x=j, y=i).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.skeletons import Skeleton, get_skeleton

if TYPE_CHECKING:  # the live pipeline's pose and assembly processes never import torch
    import torch

__all__ = ["CropSpec", "CropTransform", "crop_transform", "apply_crop", "keypoints_to_map",
           "frames_to_array", "frames_to_tensor", "random_augment", "resized_shape"]


@dataclass(frozen=True)
class CropSpec:
    """Resize the short side to ``short_side``, centre-crop ``crop``; pose maps are ``map_size``."""

    short_side: int = 256
    crop: int = 224
    map_size: int = 56

    def __post_init__(self) -> None:
        if not (0 < self.crop <= self.short_side and self.map_size > 0):
            raise ValueError(f"bad CropSpec {self}: need 0 < crop <= short_side and map_size > 0")

    @property
    def stride(self) -> float:
        """Crop pixels per pose-map pixel (224 / 56 = 4)."""
        return self.crop / self.map_size


@dataclass(frozen=True)
class CropTransform:
    """Original frame -> resized (``resized_w`` x ``resized_h``) -> crop at (``x0``, ``y0``) of size
    ``out_size``; ``stride`` converts crop pixels to pose-map pixels."""

    scale_x: float
    scale_y: float
    x0: int
    y0: int
    resized_w: int
    resized_h: int
    out_size: int
    map_size: int

    @property
    def scale(self) -> tuple[float, float]:
        """(scale_x, scale_y); they differ only by the integer rounding of the resized size."""
        return (self.scale_x, self.scale_y)

    @property
    def stride(self) -> float:
        return self.out_size / self.map_size


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) after the released code's aspect-keeping resize (``int()`` truncation, as it does)."""
    if height <= 0 or width <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if width > height:
        return short_side, int(width / height * short_side)
    return int(height / width * short_side), short_side


def crop_transform(height: int, width: int, spec: CropSpec = CropSpec()) -> CropTransform:
    """Test-time transform for a ``width`` x ``height`` frame (centre crop as ``W//2 - crop//2``)."""
    rh, rw = resized_shape(height, width, spec.short_side)
    return CropTransform(scale_x=rw / width, scale_y=rh / height, x0=rw // 2 - spec.crop // 2,
                         y0=rh // 2 - spec.crop // 2, resized_w=rw, resized_h=rh, out_size=spec.crop,
                         map_size=spec.map_size)


def apply_crop(frame_bgr: np.ndarray, transform: CropTransform) -> np.ndarray:
    """BGR uint8 frame (as OpenCV decodes) -> RGB uint8 ``(crop, crop, 3)`` (resize + crop + BGR->RGB,
    the released test path; ~1 ms for a 1080p frame)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR frame, got shape {frame_bgr.shape}")
    h, w = frame_bgr.shape[:2]
    if abs(transform.resized_w / w - transform.scale_x) > 1e-9 or abs(transform.resized_h / h - transform.scale_y) > 1e-9:
        raise ValueError(f"frame is {w}x{h} but the transform was made for another size")
    resized = cv2.resize(frame_bgr, (transform.resized_w, transform.resized_h), interpolation=cv2.INTER_LINEAR)
    s, x0, y0 = transform.out_size, transform.x0, transform.y0
    return cv2.cvtColor(resized[y0:y0 + s, x0:x0 + s], cv2.COLOR_BGR2RGB)


def keypoints_to_map(coords: np.ndarray, transform: CropTransform) -> np.ndarray:
    """Original-frame pixel coordinates ``(..., 2)`` -> pose-map grid: ``(x*scale_x - x0) / stride``."""
    coords = np.asarray(coords, dtype=np.float32)
    if coords.shape[-1:] != (2,):
        raise ValueError(f"coords must end with an (x, y) axis of size 2, got shape {coords.shape}")
    out = np.empty_like(coords)
    stride = np.float32(transform.stride)
    out[..., 0] = (coords[..., 0] * np.float32(transform.scale_x) - np.float32(transform.x0)) / stride
    out[..., 1] = (coords[..., 1] * np.float32(transform.scale_y) - np.float32(transform.y0)) / stride
    return out


def frames_to_array(frames_rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(T, H, W, 3)`` RGB uint8 -> float32 ``(T, 3, H, W)`` in [0, 1] (no mean/std: the model owns
    normalisation, and the released presets use none). ``out`` (e.g. a shared-memory slot) is filled in
    place, so the live pipeline writes a window without an extra copy."""
    frames_rgb = np.asarray(frames_rgb)
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or frames_rgb.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames_rgb.dtype} {frames_rgb.shape}")
    return np.divide(frames_rgb.transpose(0, 3, 1, 2), np.float32(255.0), out=out, dtype=np.float32)


def frames_to_tensor(frames_rgb: np.ndarray) -> torch.Tensor:
    """`frames_to_array` as a torch tensor (the dataset's form of the same numbers)."""
    import torch

    return torch.from_numpy(frames_to_array(frames_rgb))


def random_augment(frames: np.ndarray, coords: np.ndarray, scores: np.ndarray, rng: np.random.Generator,
                   spec: CropSpec = CropSpec(), scale_range: tuple[float, float] = (0.66, 1.0),
                   max_translate: float = 1.0, flip_prob: float = 0.5,
                   skeleton: Skeleton | str = "openpose18", bgr: bool = True,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training augmentation, the same for every frame of the clip and for its keypoints.

    ``frames (T, H, W, 3)`` uint8 (BGR as decoded unless ``bgr=False``), ``coords (T, P, J, 2)``
    original-frame pixels, ``scores (T, P, J)``. After the test-time resize (short side
    ``spec.short_side``), a square box of side ``crop * f``, ``f ~ U(scale_range)`` (the released code
    draws box sides from {1, .875, .75, .66} x 224), is placed at the frame centre plus a uniform offset
    of up to ``max_translate`` times the free room on each axis (1 = anywhere inside the frame, as the
    released code; 0 = centred); it is resized to ``crop`` and mirrored with probability ``flip_prob``
    (left/right joints swapped via ``skeleton.flip_perm``). Returns RGB uint8 ``(T, crop, crop, 3)``,
    map-grid coords ``(T, P, J, 2)`` float32 and scores ``(T, P, J)`` float32.
    """
    sk = get_skeleton(skeleton)
    frames = np.asarray(frames)
    coords = np.asarray(coords, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    if coords.ndim != 4 or coords.shape[0] != frames.shape[0] or coords.shape[2:] != (sk.num_joints, 2):
        raise ValueError(f"coords must be (T={frames.shape[0]}, P, {sk.num_joints}, 2), got {coords.shape}")
    if scores.shape != coords.shape[:3]:
        raise ValueError(f"scores must have shape {coords.shape[:3]}, got {scores.shape}")
    lo_s, hi_s = scale_range
    if not (0 < lo_s <= hi_s):
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")

    h, w = frames.shape[1:3]
    rh, rw = resized_shape(h, w, spec.short_side)
    sx, sy = rw / w, rh / h
    side = spec.crop * float(rng.uniform(lo_s, hi_s))
    # free room on each axis; a box larger than the frame (scale > short_side/crop) is centred
    room_x, room_y = max(rw - side, 0.0), max(rh - side, 0.0)
    bx = (rw - side) / 2 + float(rng.uniform(-1.0, 1.0)) * max_translate * room_x / 2
    by = (rh - side) / 2 + float(rng.uniform(-1.0, 1.0)) * max_translate * room_y / 2
    flip = bool(rng.random() < flip_prob)

    # resized -> crop: c = (r - b) * k; with the flip, c' = (crop - 1) - c
    k = spec.crop / side
    m = np.array([[k, 0.0, -bx * k], [0.0, k, -by * k]], dtype=np.float64)
    if flip:
        m[0] = -m[0]
        m[0, 2] += spec.crop - 1
    out = np.empty((frames.shape[0], spec.crop, spec.crop, 3), dtype=np.uint8)
    code = cv2.COLOR_BGR2RGB if bgr else None
    for i, frame in enumerate(frames):
        resized = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
        warped = cv2.warpAffine(resized, m, (spec.crop, spec.crop), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        out[i] = cv2.cvtColor(warped, code) if code is not None else warped

    rx = coords[..., 0].astype(np.float64) * sx
    ry = coords[..., 1].astype(np.float64) * sy
    mapped = np.empty_like(coords)
    stride = spec.stride
    mapped[..., 0] = (m[0, 0] * rx + m[0, 2]) / stride
    mapped[..., 1] = (m[1, 1] * ry + m[1, 2]) / stride
    if flip:
        perm = np.asarray(sk.flip_perm)
        mapped = mapped[:, :, perm]
        scores = scores[:, :, perm]
    return out, mapped, scores.copy()
