"""Render one clip: scene plate + context object + animated figure, with ground-truth keypoints.

Why the label image: drawing the same parts into an id buffer tells, per frame and joint, whether the joint
is visible, hidden behind another part / an occluder, or outside the frame, which drives the
estimator-like scores in `posenoise`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from tools.synth.figure import (COCO17, JOINT_PARTS, PART_IDS, Camera, body_parts, draw_parts,
                                forward_kinematics, project_skeleton, random_body)
from tools.synth.motions import FAMILIES, NO_ACTION_KINDS, animate, draw_style, random_timing
from tools.synth.scenes import OBJECTS, draw_object, make_scene

VISIBLE, OCCLUDED, OUTSIDE = 0, 1, 2
FRAMINGS = ("full", "legs_cut", "upper_body")
# what bystanders do: the calm kinds of the no_action family
_BYSTANDER_KINDS = tuple(NO_ACTION_KINDS.index(k) for k in ("idle", "walk", "talk", "phone", "look_around"))
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
    framing: str = "full"               # "full" | "legs_cut" (shins out of frame) | "upper_body" (hips up)
    bystander: bool = False             # a second, idle person in the scene
    styles: str = "base"                # motion style set (motions.STYLE_SETS)


@dataclass
class RenderedClip:
    frames: np.ndarray        # (F, H, W, 3) uint8 BGR
    coords: np.ndarray        # (F, 17, 2) float32 ground-truth keypoints, frame pixels
    state: np.ndarray         # (F, 17) int8 VISIBLE / OCCLUDED / OUTSIDE
    scale: np.ndarray         # (F,) pixels per body height (noise is relative to it)
    side: str                 # active hand/leg
    yaw: np.ndarray | None = None        # (F,) degrees, 0 = facing the camera, +-90 = profile
    bystanders: list["RenderedPerson"] = field(default_factory=list)


@dataclass
class RenderedPerson:
    """Another person in the clip (ground truth like the main one's)."""

    coords: np.ndarray        # (F, 17, 2)
    state: np.ndarray         # (F, 17)
    scale: np.ndarray         # (F,)
    yaw: np.ndarray           # (F,)


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
    motion_style = draw_style(spec.family, rng, spec.styles)
    yaw0 = float(rng.uniform(-90, 90))          # front view to profile, either way
    yaw = yaw0 + _smooth_drift(rng, n, 6.0)
    pose = animate(spec.family, t, timing, side, motion_style)
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
    s = min(h * float(rng.uniform(0.2, 0.9)), s_fit)   # the person is 20-90 % of the frame height
    horizon = plate.horizon - margin
    lo_v = max(horizon + 0.12 * h, s * top + 0.03 * h)
    floor_v = float(rng.uniform(min(lo_v, h * 0.97), h * 0.97))
    cx = float(rng.uniform(-xl * s + 0.03 * w, w - xr * s - 0.03 * w)) if (xr - xl) * s < 0.94 * w else w / 2
    failure = spec.pose_failure
    if spec.framing != "full" and failure != "out_of_frame":
        # the frame's bottom edge cuts the shins (legs_cut) or the hips (upper_body); what is left of the
        # person fills 75-95 % of the height, as in a close-up shot
        cut = float(rng.uniform(0.08, 0.3)) if spec.framing == "legs_cut" else float(rng.uniform(0.4, 0.56))
        s = h * float(rng.uniform(0.75, 0.95)) / max(top - cut, 0.2)
        floor_v = h + s * cut
        cx = w / 2 + float(rng.uniform(-0.2, 0.2)) * w
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

    by = _plan_bystander(rng, spec, n, t, w, h, s, cx, floor_v, xl, xr, pan_x, pan_y) if spec.bystander else None

    frames = np.empty((n, h, w, 3), np.uint8)
    labels = np.zeros((h, w), np.uint8)
    by_labels = np.zeros((h, w), np.uint8)
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
        if draw_figure and by is not None:   # behind the main person: drawn first
            by_labels[:] = 0
            draw_parts(img, by_labels, body_parts(by.body, by.sk, by.proj, by.cam, f), by.body)
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
        state[f] = _visibility(coords[f], labels, w, h)
        _face_state(state[f], sk, f)
        if by is not None:
            by.state[f] = _visibility(by.coords[f], by_labels, w, h, covered=labels)
            _face_state(by.state[f], by.sk, f)
    others = [] if by is None else [RenderedPerson(by.coords, by.state, by.cam.scale.astype(np.float32), by.yaw)]
    return RenderedClip(frames=frames, coords=coords, state=state, scale=scale.astype(np.float32), side=side,
                        yaw=yaw.astype(np.float32), bystanders=others)


def _face_state(state: np.ndarray, sk, f: int) -> None:
    """A face point on the far side of the head is hidden by the head itself."""
    head_z = sk.extra["head"][f, 2]
    for j in _FACE:
        if state[j] == VISIBLE and sk.joints[f, j, 2] < head_z - 0.02:
            state[j] = OCCLUDED


def _visibility(coords: np.ndarray, labels: np.ndarray, w: int, h: int, covered: np.ndarray | None = None
                ) -> np.ndarray:
    """Per joint VISIBLE / OCCLUDED / OUTSIDE from a part-label image (and what is drawn in front)."""
    out = np.zeros(17, np.int8)
    xy = np.round(coords).astype(int)
    for j in range(17):
        x, y = xy[j]
        if not (0 <= x < w and 0 <= y < h):
            out[j] = OUTSIDE
        elif labels[y, x] not in _JOINT_PIDS[j] or (covered is not None and covered[y, x]):
            out[j] = OCCLUDED
    return out


@dataclass
class _Bystander:
    body: object
    sk: object
    proj: object
    cam: Camera
    coords: np.ndarray
    state: np.ndarray
    yaw: np.ndarray


def _plan_bystander(rng: np.random.Generator, spec: ClipSpec, n: int, t: np.ndarray, w: int, h: int, s: float,
                    cx: float, floor_v: float, xl: float, xr: float, pan_x: np.ndarray, pan_y: np.ndarray
                    ) -> _Bystander:
    """A second person standing about beside the main one, nearer or farther (smaller, higher feet)."""
    body = random_body(rng)
    fam = FAMILIES["none"]
    style = fam.styles(rng)
    style["kind"] = float(_BYSTANDER_KINDS[int(rng.integers(len(_BYSTANDER_KINDS)))])
    yaw = float(rng.uniform(-90, 90)) + _smooth_drift(rng, n, 10.0)
    pose = animate("none", t, random_timing(rng), "r" if rng.random() < 0.5 else "l", style)
    sk = forward_kinematics(body, pose, yaw)
    sb = s * float(rng.uniform(0.45, 1.1))
    left_room, right_room = cx + xl * s, w - (cx + xr * s)
    if left_room > right_room:
        bx = float(rng.uniform(0.05, 0.9)) * max(left_room, 0.1 * w)
    else:
        bx = w - float(rng.uniform(0.05, 0.9)) * max(right_room, 0.1 * w)
    bfloor = min(floor_v - float(rng.uniform(0.0, 0.2)) * h * (1.0 - sb / max(s, 1e-6)), h * 0.99)
    cam = Camera(cx=bx - pan_x, floor_v=bfloor - pan_y, scale=np.full(n, sb))
    proj = project_skeleton(sk, cam)
    return _Bystander(body=body, sk=sk, proj=proj, cam=cam, coords=proj.joints.astype(np.float32),
                      state=np.zeros((n, 17), np.int8), yaw=yaw.astype(np.float32))
