"""Spatial pre-processing: crop geometry, keypoint mapping, tensors, and aligned augmentation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from core.preprocess import (CropSpec, apply_crop, crop_transform, frames_to_tensor, keypoints_to_map,
                             random_augment)
from core.skeletons import OPENPOSE18
from tests.conftest import shared_path


def _dot_frame(h: int, w: int, x: int, y: int, radius: int = 6) -> np.ndarray:
    frame = np.zeros((h, w, 3), np.uint8)
    cv2.circle(frame, (x, y), radius, (0, 0, 255), -1)  # red in BGR
    return frame


def _centroid(rgb: np.ndarray, channel: int = 0) -> tuple[float, float]:
    mass = rgb[..., channel].astype(np.float64)
    mass[mass < 64] = 0
    assert mass.sum() > 0, "dot left the crop"
    ys, xs = np.mgrid[:rgb.shape[0], :rgb.shape[1]]
    return float((xs * mass).sum() / mass.sum()), float((ys * mass).sum() / mass.sum())


def test_crop_transform_released_geometry():
    t = crop_transform(256, 340)  # Kinetics 340x256: no resize, offset (58, 16)
    assert (t.resized_w, t.resized_h, t.x0, t.y0, t.stride) == (340, 256, 58, 16, 4.0)
    # the README's padding coordinate 1 px lands at ((1 - 58) / 4, (1 - 16) / 4) = (-14.25, -3.75)
    np.testing.assert_allclose(keypoints_to_map(np.array([1.0, 1.0]), t), [-14.25, -3.75])
    t = crop_transform(1080, 1920)
    assert (t.resized_w, t.resized_h) == (455, 256) and t.x0 == 455 // 2 - 112
    t = crop_transform(640, 480)  # portrait
    assert (t.resized_w, t.resized_h, t.x0, t.y0) == (256, 341, 16, 58)
    assert crop_transform(100, 100, CropSpec(128, 112, 28)).stride == 4.0
    with pytest.raises(ValueError):
        CropSpec(short_side=200, crop=224)


@pytest.mark.parametrize("h,w,x,y", [(256, 340, 170, 100), (1080, 1920, 1100, 700), (480, 640, 250, 300),
                                     (640, 360, 200, 400)])
def test_dot_lands_at_four_times_map_coordinate(h, w, x, y):
    t = crop_transform(h, w)
    rgb = apply_crop(_dot_frame(h, w, x, y, radius=max(3, round(6 / t.scale_x))), t)
    assert rgb.shape == (224, 224, 3) and rgb.dtype == np.uint8
    assert rgb[..., 0].max() > 200 and rgb[..., 2].max() < 50  # BGR red became RGB channel 0
    mx, my = keypoints_to_map(np.array([x, y], np.float32), t)
    cx, cy = _centroid(rgb)
    assert abs(cx - 4 * mx) < 1.0 and abs(cy - 4 * my) < 1.0


def test_apply_crop_real_frame_and_errors():
    cap = cv2.VideoCapture(str(shared_path("data", "videos", "stgcn_tai_chi.mp4")))
    ok, frame = cap.read()
    cap.release()
    assert ok
    t = crop_transform(*frame.shape[:2])
    rgb = apply_crop(frame, t)
    resized = cv2.resize(frame, (t.resized_w, t.resized_h), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(rgb, resized[t.y0:t.y0 + 224, t.x0:t.x0 + 224, ::-1])
    with pytest.raises(ValueError, match="transform was made for another size"):
        apply_crop(frame[:, :300], t)


def test_frames_to_tensor():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (2, 3, 5, 7) and x.dtype == torch.float32
    assert abs(float(x[1, 2, 3, 4]) - frames[1, 3, 4, 2] / 255.0) < 1e-7
    with pytest.raises(ValueError):
        frames_to_tensor(frames.astype(np.float32))


def _augment_case(seed: int, flip_prob: float):
    h, w = 270, 480
    r_wrist, l_wrist = OPENPOSE18.joint_index("R_Wrist"), OPENPOSE18.joint_index("L_Wrist")
    frames = np.zeros((2, h, w, 3), np.uint8)
    coords = np.zeros((2, 1, 18, 2), np.float32)
    scores = np.zeros((2, 1, 18), np.float32)
    # R_Wrist is a red dot, L_Wrist a green one
    for f, (rx, ry, lx, ly) in enumerate([(200, 120, 300, 150), (210, 130, 280, 140)]):
        cv2.circle(frames[f], (rx, ry), 5, (0, 0, 255), -1)
        cv2.circle(frames[f], (lx, ly), 5, (0, 255, 0), -1)
        coords[f, 0, r_wrist], coords[f, 0, l_wrist] = (rx, ry), (lx, ly)
        scores[f, 0, r_wrist], scores[f, 0, l_wrist] = 0.9, 0.6
    rng = np.random.default_rng(seed)
    out = random_augment(frames, coords, scores, rng, CropSpec(), scale_range=(0.8, 1.0),
                         max_translate=0.5, flip_prob=flip_prob, skeleton=OPENPOSE18)
    return out, (r_wrist, l_wrist)


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_augment_keeps_dots_and_keypoints_aligned(flip_prob):
    for seed in range(3):
        (rgb, mc, ms), (r_wrist, l_wrist) = _augment_case(seed, flip_prob)
        assert rgb.shape == (2, 224, 224, 3) and mc.shape == (2, 1, 18, 2)
        for f in range(2):
            # the red dot is wherever the keypoint now labelled R_Wrist is unless flipped (then L_Wrist)
            red_joint, green_joint = (l_wrist, r_wrist) if flip_prob else (r_wrist, l_wrist)
            for channel, joint in ((0, red_joint), (1, green_joint)):
                cx, cy = _centroid(rgb[f], channel)
                assert abs(cx - 4 * mc[f, 0, joint, 0]) < 1.0 and abs(cy - 4 * mc[f, 0, joint, 1]) < 1.0
        if flip_prob:  # left/right swapped: scores moved with the joints
            assert ms[0, 0, l_wrist] == np.float32(0.9) and ms[0, 0, r_wrist] == np.float32(0.6)
            # the red dot (old R_Wrist, image-left) is mirrored to the right of the green one
            assert mc[0, 0, l_wrist, 0] > mc[0, 0, r_wrist, 0] + 10
        else:
            assert ms[0, 0, r_wrist] == np.float32(0.9)


def test_augment_is_deterministic_given_rng():
    (a, ca, _), _ = _augment_case(5, 0.5)
    (b, cb, _), _ = _augment_case(5, 0.5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ca, cb)
    (c, cc, _), _ = _augment_case(6, 0.5)
    assert not np.array_equal(cc, ca)
