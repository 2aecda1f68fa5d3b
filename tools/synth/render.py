"""Render one clip: scene plate + context object + animated figure, with ground-truth keypoints.

Why the label image: drawing the same parts into an id buffer tells, per frame and joint, whether the joint
is visible, hidden behind another part / an occluder, or outside the frame, which drives the
estimator-like scores in `posenoise`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tools.synth.figure import (COCO17, JOINT_PARTS, PART_IDS, Camera, body_parts, draw_parts,
                                forward_kinematics, project_skeleton, random_body)
from tools.synth.motions import animate, random_timing
from tools.synth.scenes import OBJECTS, draw_object, make_scene

VISIBLE, OCCLUDED, OUTSIDE = 0, 1, 2
_JOINT_PIDS = [tuple(PART_IDS[p] for p in JOINT_PARTS[n]) for n in COCO17]
_FACE = [COCO17.index(n) for n in ("nose", "l_eye", "r_eye", "l_ear", "r_ear")]


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines a clip; `seed` drives all remaining randomness."""

    family: str
    scene: str
    obj: str
    seed: int
    width: int = 160
    height: int = 120
    frames: int = 72
    fps: float = 30.0
    pose_failure: str | None = None     # None | "out_of_frame" | "missing" | "jitter" | "occlusion"


@dataclass
class RenderedClip:
    frames: np.ndarray        # (F, H, W, 3) uint8 BGR
    coords: np.ndarray        # (F, 17, 2) float32 ground-truth keypoints, frame pixels
    state: np.ndarray         # (F, 17) int8 VISIBLE / OCCLUDED / OUTSIDE
    scale: np.ndarray         # (F,) pixels per body height (noise is relative to it)
    side: str                 # active hand/leg


def _smooth_drift(rng: np.random.Generator, n: int, amp: float) -> np.ndarray:
    """Slow random camera/body drift: a sum of two low-frequency sines with random phases."""
    t = np.linspace(0, 1, n)
    out = np.zeros(n)
    for k in (1, 2):
        out += rng.uniform(-1, 1) * amp / k * np.sin(2 * np.pi * (k * 0.5 * t + rng.uniform(0, 1)))
    return out


def render_clip(spec: ClipSpec, draw_figure: bool = True) -> RenderedClip:
    """Render `spec` deterministically; `draw_figure=False` renders the same clip without the person."""
    rng = np.random.default_rng(spec.seed)
    n, w, h = spec.frames, spec.width, spec.height
    t = np.arange(n) / spec.fps
    body = random_body(rng)
    timing = random_timing(rng)
    side = "r" if rng.random() < 0.7 else "l"
    yaw0 = float(rng.uniform(-65, 65))
    yaw = yaw0 + _smooth_drift(rng, n, 6.0)
    pose = animate(spec.family, t, timing, side)
    sk = forward_kinematics(body, pose, yaw)

    # figure extent (body units over the whole clip) -> scale and placement that keep it in frame
    allpts = np.concatenate([sk.joints] + [v[:, None] for v in sk.extra.values()], 1)
    top = float(allpts[..., 1].max()) + 0.03
    xl, xr = float(allpts[..., 0].min()) - 0.06, float(allpts[..., 0].max()) + 0.06
    margin = int(round(0.1 * max(w, h)))
    plate = make_scene(spec.scene, w + 2 * margin, h + 2 * margin, rng)
    pan_x = _smooth_drift(rng, n, 0.35 * margin)
    pan_y = _smooth_drift(rng, n, 0.2 * margin)
    zoom = 1.0 + _smooth_drift(rng, n, 0.04)
    s_fit = min(h * 0.92 / top, w * 0.92 / (xr - xl))
    s = min(h * float(rng.uniform(0.55, 0.8)), s_fit)
    horizon = plate.horizon - margin
    lo_v = max(horizon + 0.12 * h, s * top + 0.03 * h)
    floor_v = float(rng.uniform(min(lo_v, h * 0.97), h * 0.97))
    cx = float(rng.uniform(-xl * s + 0.03 * w, w - xr * s - 0.03 * w)) if (xr - xl) * s < 0.94 * w else w / 2
    failure = spec.pose_failure
    if failure == "out_of_frame":
        mode = rng.choice(["bottom", "side", "top"])
        if mode == "bottom":
            s = h * float(rng.uniform(0.85, 1.15))
            floor_v = h + s * float(rng.uniform(0.2, 0.4))
            cx = w / 2 + float(rng.uniform(-0.15, 0.15)) * w
        elif mode == "side":                     # the body's midline near an image edge
            edge = float(rng.uniform(-0.02, 0.06)) * w
            cx = edge if rng.random() < 0.5 else w - edge
        else:                                    # zoomed in: head (and raised arms) above the frame
            s = h * float(rng.uniform(1.1, 1.35))
            floor_v = h * float(rng.uniform(0.95, 1.05))
            cx = w / 2 + float(rng.uniform(-0.15, 0.15)) * w
    scale = s * zoom
    cam = Camera(cx=cx - pan_x + _smooth_drift(rng, n, 0.03 * w),
                 floor_v=floor_v - pan_y + _smooth_drift(rng, n, 0.01 * h), scale=scale)

    style = OBJECTS[spec.obj]
    gap = (0.12 + 0.5 * style.size) * s
    left_room, right_room = cx + xl * s, w - (cx + xr * s)
    obj_side = -1.0 if left_room > right_room else 1.0
    obj_x = cx + (xl * s - gap if obj_side < 0 else xr * s + gap) + float(rng.uniform(-0.05, 0.05)) * s
    obj_x = float(np.clip(obj_x, 0.08 * w, 0.92 * w))
    hang_y = floor_v - s * float(rng.uniform(0.75, 1.0))
    occluder = None
    if failure == "occlusion":
        occ_top = floor_v - s * float(rng.uniform(0.28, 0.5))
        occ_col = tuple(int(c) for c in rng.integers(30, 200, 3))
        occluder = (occ_top, occ_col, float(rng.uniform(-0.5, 0.5)))

    frames = np.empty((n, h, w, 3), np.uint8)
    labels = np.zeros((h, w), np.uint8)
    proj = project_skeleton(sk, cam)
    coords = proj.joints.astype(np.float32)
    state = np.zeros((n, 17), np.int8)
    hand_j = COCO17.index(f"{side}_wrist")
    for f in range(n):
        ox, oy = margin + pan_x[f], margin + pan_y[f]
        m = np.float32([[1, 0, -ox], [0, 1, -oy]])
        img = cv2.warpAffine(plate.image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if style.placement == "ground":
            draw_object(img, spec.obj, (obj_x - pan_x[f], floor_v - pan_y[f] + 0.02 * s), s)
        elif style.placement == "hang":
            draw_object(img, spec.obj, (obj_x - pan_x[f], hang_y - pan_y[f]), s)
        labels[:] = 0
        if draw_figure:
            parts = body_parts(body, sk, proj, cam, f)
            draw_parts(img, labels, parts, body)
        if style.placement == "hand":
            hand = proj.extra[f"{side}_hand"][f]
            axis = hand - coords[f, hand_j]
            if spec.obj in ("racket", "bat"):
                axis = np.array([axis[1], -axis[0]]) * (1 if side == "r" else -1) + axis * 0.3
            draw_object(img, spec.obj, hand, s, axis)
            hand_mask = np.zeros_like(labels)
            draw_object(hand_mask, spec.obj, hand, s, axis)
            labels[hand_mask > 0] = 255
        if occluder is not None:
            occ_top, occ_col, skew = occluder
            y0 = int(occ_top - pan_y[f])
            pts = np.array([[0, h], [w, h], [w, y0 + int(skew * 10)], [0, y0 - int(skew * 10)]], np.int32)
            cv2.fillConvexPoly(img, pts, occ_col, cv2.LINE_AA)
            cv2.fillConvexPoly(img, pts + [0, 4], tuple(int(c * 0.7) for c in occ_col), cv2.LINE_AA)
            cv2.fillConvexPoly(labels, pts, 255)
        frames[f] = img
        xy = np.round(coords[f]).astype(int)
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
        for j in range(17):
            if not inside[j]:
                state[f, j] = OUTSIDE
            elif labels[xy[j, 1], xy[j, 0]] not in _JOINT_PIDS[j]:
                state[f, j] = OCCLUDED
        head_z = sk.extra["head"][f, 2]
        for j in _FACE:   # a face point on the far side of the head is hidden by the head itself
            if state[f, j] == VISIBLE and sk.joints[f, j, 2] < head_z - 0.02:
                state[f, j] = OCCLUDED
    return RenderedClip(frames=frames, coords=coords, state=state, scale=scale.astype(np.float32), side=side)
