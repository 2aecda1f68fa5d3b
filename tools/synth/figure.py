"""A 2.5D articulated human: 3D forward kinematics, orthographic projection and filled, shaded drawing.

Why 3D: a figure that turns (yaw) and bends (bowing, squats) keeps plausible limb foreshortening and
self-occlusion, and the depth order gives us which COCO joints are hidden (low detector scores) for free.
Units are body heights (a standing figure is ~1.0 tall); x is the person's left, y up, z forward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

COCO17 = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
J = {name: i for i, name in enumerate(COCO17)}
SEGMENTS = ("l_upper", "l_fore", "r_upper", "r_fore", "l_thigh", "l_shin", "r_thigh", "r_shin")
SIDE = {"l": 1.0, "r": -1.0}


@dataclass
class Body:
    """Per-clip body build and clothing; everything in body-height units or BGR colours."""

    # COCO shoulder keypoints of real people are ~0.24 of the stature apart (biacromial breadth), hips ~0.17:
    # a wider figure made every synthetic pose map look unlike MoveNet's keypoints of real people
    shoulder_half: float = 0.12
    hip_half: float = 0.085
    torso_len: float = 0.30
    upper_arm: float = 0.17
    forearm: float = 0.15
    thigh: float = 0.245
    shin: float = 0.245
    ankle_h: float = 0.04
    head_r: float = 0.062
    girth: float = 1.0
    skin: tuple[int, int, int] = (140, 170, 210)
    shirt: tuple[int, int, int] = (60, 60, 200)
    pants: tuple[int, int, int] = (90, 60, 40)
    shoes: tuple[int, int, int] = (30, 30, 30)
    hair: tuple[int, int, int] = (30, 40, 60)
    long_sleeves: bool = False


SKINS = [(185, 205, 240), (140, 175, 225), (110, 145, 195), (75, 105, 150), (55, 75, 110)]
HAIRS = [(20, 25, 30), (30, 50, 90), (40, 90, 150), (140, 150, 160), (25, 35, 60)]


def random_body(rng: np.random.Generator) -> Body:
    """Sample a build and an outfit; proportions vary ~+-10 %% so that size is not a class cue."""
    def s(lo: float = 0.92, hi: float = 1.08) -> float:
        return float(rng.uniform(lo, hi))

    shirt = tuple(int(c) for c in rng.integers(20, 236, 3))
    pants = tuple(int(c) for c in rng.integers(15, 200, 3))
    return Body(
        shoulder_half=0.12 * s(), hip_half=0.085 * s(), torso_len=0.30 * s(0.95, 1.05),
        upper_arm=0.17 * s(0.95, 1.05), forearm=0.15 * s(0.95, 1.05), thigh=0.245 * s(0.95, 1.05),
        shin=0.245 * s(0.95, 1.05), head_r=0.062 * s(0.93, 1.07), girth=s(0.85, 1.25),
        skin=SKINS[int(rng.integers(len(SKINS)))], shirt=shirt, pants=pants,
        shoes=tuple(int(c) for c in rng.integers(10, 90, 3)), hair=HAIRS[int(rng.integers(len(HAIRS)))],
        long_sleeves=bool(rng.random() < 0.4),
    )


def direction(abd: np.ndarray, flex: np.ndarray, side: float) -> np.ndarray:
    """Limb direction from abduction (sideways raise) then flexion (forward raise), degrees; 0,0 = down."""
    a, f = np.radians(abd), np.radians(flex)
    return np.stack([side * np.sin(a), -np.cos(a) * np.cos(f), np.cos(a) * np.sin(f)], -1)


def rot_x(deg: np.ndarray) -> np.ndarray:
    """Rotation about x (positive pitches +y towards +z, i.e. bends forward), batched (F,3,3)."""
    r = np.radians(np.asarray(deg, np.float64))
    c, s = np.cos(r), np.sin(r)
    o, z = np.ones_like(r), np.zeros_like(r)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(deg: np.ndarray) -> np.ndarray:
    """Rotation about the vertical axis (positive turns the face towards the person's left / image right)."""
    r = np.radians(np.asarray(deg, np.float64))
    c, s = np.cos(r), np.sin(r)
    o, z = np.ones_like(r), np.zeros_like(r)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(deg: np.ndarray) -> np.ndarray:
    """Rotation in the frontal plane (positive leans the top towards the person's right)."""
    r = np.radians(np.asarray(deg, np.float64))
    c, s = np.cos(r), np.sin(r)
    o, z = np.ones_like(r), np.zeros_like(r)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _mv(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.einsum("fij,fj->fi", m, v)


def two_bone_ik(root: np.ndarray, target: np.ndarray, l1: float, l2: float, pole: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Elbow/knee and end positions reaching `target` from `root`, bending towards `pole` (all (F,3))."""
    d = target - root
    dist = np.linalg.norm(d, axis=-1, keepdims=True)
    reach = np.clip(dist, 1e-6, (l1 + l2) * 0.999)
    u = d / np.maximum(dist, 1e-9)
    end = root + u * reach
    a = (l1 ** 2 - l2 ** 2 + reach ** 2) / (2 * reach)
    h = np.sqrt(np.clip(l1 ** 2 - a ** 2, 0.0, None))
    p = pole - (pole * u).sum(-1, keepdims=True) * u
    p = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-9)
    return root + u * a + p * h, end


@dataclass
class Skeleton3D:
    """World-space (body units) points per frame: COCO-17 plus the extra points drawing needs."""

    joints: np.ndarray                  # (F, 17, 3)
    extra: dict[str, np.ndarray] = field(default_factory=dict)   # name -> (F, 3)


def forward_kinematics(body: Body, pose: dict[str, np.ndarray], yaw: np.ndarray) -> Skeleton3D:
    """Pose dict (from `motions`) -> 3D points; feet are planted so the lowest ankle touches the floor.

    Keys: segment directions in `SEGMENTS` (F,3), optional `l_target`/`r_target` wrist IK targets relative
    to the neck in the upper-body frame (with optional `l_pole`/`r_pole`: where the elbow points), `pitch`, `lean`, `twist` (degrees, F), `jump` (F, body units).
    """
    nf = len(yaw)
    zeros = np.zeros(nf)
    pitch, lean, twist = (pose.get(k, zeros) for k in ("pitch", "lean", "twist"))
    r_up = rot_y(twist) @ rot_x(pitch) @ rot_z(lean)           # upper body frame (root frame coords)
    r_pel = rot_y(np.asarray(twist) * 0.3)
    ex = np.tile([1.0, 0.0, 0.0], (nf, 1))
    ey = np.tile([0.0, 1.0, 0.0], (nf, 1))
    pelvis = np.zeros((nf, 3))
    hips = {s: pelvis + _mv(r_pel, ex) * SIDE[s] * body.hip_half for s in "lr"}
    knees, ankles, toes = {}, {}, {}
    for s in "lr":
        knees[s] = hips[s] + pose[f"{s}_thigh"] * body.thigh
        ankles[s] = knees[s] + pose[f"{s}_shin"] * body.shin
    low = np.minimum(ankles["l"][:, 1], ankles["r"][:, 1])
    lift = body.ankle_h - low + pose.get("jump", zeros)
    shift = np.stack([zeros, lift, -(ankles["l"][:, 2] + ankles["r"][:, 2]) / 2], -1)
    for d in (hips, knees, ankles):
        for s in "lr":
            d[s] = d[s] + shift
    pelvis = pelvis + shift
    for s in "lr":
        toes[s] = ankles[s] + _mv(r_pel, np.tile([0.0, -0.03, 0.11], (nf, 1)))
    neck = pelvis + _mv(r_up, ey) * body.torso_len
    shoulders = {s: neck + _mv(r_up, np.tile([SIDE[s] * body.shoulder_half, -0.02, 0.0], (nf, 1))) for s in "lr"}
    elbows, wrists, hands = {}, {}, {}
    for s in "lr":
        if f"{s}_target" in pose:
            target = neck + _mv(r_up, pose[f"{s}_target"])
            pole = _mv(r_up, pose.get(f"{s}_pole", np.tile([SIDE[s] * 0.7, -0.6, -0.4], (nf, 1))))
            elbows[s], wrists[s] = two_bone_ik(shoulders[s], target, body.upper_arm, body.forearm, pole)
        else:
            elbows[s] = shoulders[s] + pose[f"{s}_upper"] * body.upper_arm
            wrists[s] = elbows[s] + pose[f"{s}_fore"] * body.forearm
        fore = wrists[s] - elbows[s]
        hands[s] = wrists[s] + fore / np.maximum(np.linalg.norm(fore, axis=-1, keepdims=True), 1e-9) * 0.055
    head = neck + _mv(r_up, np.tile([0.0, 0.04 + body.head_r, 0.01], (nf, 1)))
    r_head = r_up @ rot_x(pose.get("nod", zeros))

    def face(x: float, y: float, z: float) -> np.ndarray:
        return head + _mv(r_head, np.tile([x, y, z], (nf, 1))) * (body.head_r / 0.062)

    pts = {
        "nose": face(0, -0.008, 0.064), "l_eye": face(0.024, 0.014, 0.054), "r_eye": face(-0.024, 0.014, 0.054),
        "l_ear": face(0.062, 0.002, -0.004), "r_ear": face(-0.062, 0.002, -0.004),
    }
    for s in "lr":
        pts.update({f"{s}_shoulder": shoulders[s], f"{s}_elbow": elbows[s], f"{s}_wrist": wrists[s],
                    f"{s}_hip": hips[s], f"{s}_knee": knees[s], f"{s}_ankle": ankles[s]})
    world = rot_y(yaw)
    joints = np.stack([pts[n] for n in COCO17], 1)
    joints = np.einsum("fij,fkj->fki", world, joints)
    extra = {"neck": neck, "head": head, "pelvis": pelvis, "mouth": face(0, -0.03, 0.06),
             "head_top": face(0, 0.05, -0.01), "head_back": face(0, 0.01, -0.05),
             "chest_front": neck + _mv(r_up, np.tile([0.0, -0.1, 0.07], (nf, 1)))}
    for s in "lr":
        extra[f"{s}_hand"] = hands[s]
        extra[f"{s}_toe"] = toes[s]
        extra[f"{s}_hip_back"] = hips[s] + _mv(r_pel, np.tile([0.0, 0.0, -0.05], (nf, 1)))
    f_up = _mv(r_up, np.tile([0.0, 0.0, 0.065 * body.girth], (nf, 1)))
    f_pel = _mv(r_pel, np.tile([0.0, 0.0, 0.06 * body.girth], (nf, 1)))
    for s in "lr":
        for k, sign in (("f", 1.0), ("b", -1.0)):
            extra[f"torso_{s}s{k}"] = shoulders[s] + sign * f_up
            extra[f"torso_{s}h{k}"] = hips[s] + sign * f_pel
    extra = {k: _mv(world, v) for k, v in extra.items()}
    return Skeleton3D(joints=joints, extra=extra)


@dataclass
class Camera:
    """Orthographic camera per frame: image (u, v) = (cx + s*x, floor_v - s*y)."""

    cx: np.ndarray       # (F,)
    floor_v: np.ndarray  # (F,)
    scale: np.ndarray    # (F,) pixels per body height

    def project(self, p: np.ndarray) -> np.ndarray:
        """(F, ..., 3) -> (F, ..., 2) pixels; extra axes broadcast."""
        shape = (-1,) + (1,) * (p.ndim - 2)
        return np.stack([self.cx.reshape(shape) + self.scale.reshape(shape) * p[..., 0],
                         self.floor_v.reshape(shape) - self.scale.reshape(shape) * p[..., 1]], -1)


def _shade(color: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(min(255, max(0, int(c * k))) for c in color)


SHIFT = 4          # cv2 sub-pixel bits: drawing at 1/16 px keeps slow motion smooth
ONE = 1 << SHIFT


def _capsule(img: np.ndarray, a, b, r: float, color, aa: bool = True) -> None:
    """A thick limb: a quad between two discs (cv2 fixed point for sub-pixel positions)."""
    lt = cv2.LINE_AA if aa else cv2.LINE_8
    ax, ay, bx, by = float(a[0]), float(a[1]), float(b[0]), float(b[1])
    dx, dy = bx - ax, by - ay
    k = r / max(math.hypot(dx, dy), 1e-6)
    nx, ny = -dy * k, dx * k
    quad = np.array([[ax + nx, ay + ny], [bx + nx, by + ny], [bx - nx, by - ny], [ax - nx, ay - ny]]) * ONE
    cv2.fillConvexPoly(img, quad.round().astype(np.int32), color, lt, SHIFT)
    rr = max(int(round(r * ONE)), 1)
    cv2.circle(img, (int(round(ax * ONE)), int(round(ay * ONE))), rr, color, -1, lt, SHIFT)
    cv2.circle(img, (int(round(bx * ONE)), int(round(by * ONE))), rr, color, -1, lt, SHIFT)


def _poly(img: np.ndarray, pts: np.ndarray, color, aa: bool = True) -> None:
    hull = cv2.convexHull(np.round(pts * ONE).astype(np.int32))
    cv2.fillConvexPoly(img, hull, color, cv2.LINE_AA if aa else cv2.LINE_8, SHIFT)


@dataclass
class Part:
    """One drawable body part: kind 'cap' (a, b, radius) or 'poly' (hull points) or 'disc'."""

    kind: str
    depth: float
    color: tuple[int, int, int]
    pts: np.ndarray
    r: float = 0.0
    pid: int = 0


# part ids in the label image; joints map to the parts that may legitimately cover them
PART_IDS = {name: i + 1 for i, name in enumerate(
    ["torso", "pelvis", "head", "neck"] + [f"{s}_{p}" for s in "lr" for p in
                                          ("upper", "fore", "hand", "thigh", "shin", "foot")])}
JOINT_PARTS = {
    "nose": ("head",), "l_eye": ("head",), "r_eye": ("head",), "l_ear": ("head",), "r_ear": ("head",),
    "l_shoulder": ("torso", "l_upper"), "r_shoulder": ("torso", "r_upper"),
    "l_elbow": ("l_upper", "l_fore"), "r_elbow": ("r_upper", "r_fore"),
    "l_wrist": ("l_fore", "l_hand"), "r_wrist": ("r_fore", "r_hand"),
    "l_hip": ("pelvis", "l_thigh", "torso"), "r_hip": ("pelvis", "r_thigh", "torso"),
    "l_knee": ("l_thigh", "l_shin"), "r_knee": ("r_thigh", "r_shin"),
    "l_ankle": ("l_shin", "l_foot"), "r_ankle": ("r_shin", "r_foot"),
}


@dataclass
class Projected:
    """A skeleton's image-plane points for all frames, projected once per clip (drawing is per frame)."""

    joints: np.ndarray                 # (F, 17, 2)
    extra: dict[str, np.ndarray]       # name -> (F, 2)


def project_skeleton(sk: Skeleton3D, cam: Camera) -> Projected:
    return Projected(cam.project(sk.joints), {k: cam.project(v) for k, v in sk.extra.items()})


def body_parts(body: Body, sk: Skeleton3D, proj: Projected, cam: Camera, f: int) -> list[Part]:
    """Drawable parts of frame f, sorted far to near (painter's algorithm on camera depth z)."""
    s = float(cam.scale[f])
    j3 = sk.joints[f]
    e3 = {k: v[f] for k, v in sk.extra.items()}
    p2 = proj.joints[f]
    e2 = {k: v[f] for k, v in proj.extra.items()}
    P = {n: p2[i] for i, n in enumerate(COCO17)}
    Z = {n: j3[i, 2] for i, n in enumerate(COCO17)}
    g = body.girth
    parts: list[Part] = []
    torso_z = (Z["l_shoulder"] + Z["r_shoulder"] + Z["l_hip"] + Z["r_hip"]) / 4
    # torso: hull of a box (shoulders and hips pushed to the chest's front and back), widened by the girth
    neck2 = e2["neck"]
    box = np.array([e2[k] for k in e2 if k.startswith("torso_")])
    w = 0.035 * s * g
    parts.append(Part("poly", torso_z, body.shirt, np.concatenate([box, box + [w, 0], box - [w, 0]]), pid=PART_IDS["torso"]))
    parts.append(Part("cap", torso_z + 0.001, body.pants, np.array([P["l_hip"], P["r_hip"]]), 0.06 * s * g,
                      PART_IDS["pelvis"]))
    parts.append(Part("cap", torso_z - 0.01, body.skin, np.array([neck2, e2["head"] * 0.6 + neck2 * 0.4]),
                      0.03 * s, PART_IDS["neck"]))
    parts.append(Part("head", float(e3["head"][2]) + 0.02, body.skin, np.array([e2["head"], e2["head_back"],
                      e2["head_top"], P["l_eye"], P["r_eye"], P["nose"]]), body.head_r * s, PART_IDS["head"]))
    for side in "lr":
        sleeve = body.shirt if body.long_sleeves else body.skin
        segs = [
            ("upper", f"{side}_shoulder", f"{side}_elbow", 0.034 * g, body.shirt),
            ("fore", f"{side}_elbow", f"{side}_wrist", 0.026 * g, sleeve),
            ("thigh", f"{side}_hip", f"{side}_knee", 0.05 * g, body.pants),
            ("shin", f"{side}_knee", f"{side}_ankle", 0.037 * g, body.pants),
        ]
        for name, a, b, r, col in segs:
            parts.append(Part("cap", (Z[a] + Z[b]) / 2, col, np.array([P[a], P[b]]), r * s, PART_IDS[f"{side}_{name}"]))
        parts.append(Part("cap", float(e3[f"{side}_hand"][2]), body.skin,
                          np.array([P[f"{side}_wrist"], e2[f"{side}_hand"]]), 0.026 * s, PART_IDS[f"{side}_hand"]))
        parts.append(Part("cap", float(e3[f"{side}_toe"][2]), body.shoes,
                          np.array([P[f"{side}_ankle"], e2[f"{side}_toe"]]), 0.03 * s, PART_IDS[f"{side}_foot"]))
    parts.sort(key=lambda p: p.depth)
    return parts


def draw_parts(img: np.ndarray, labels: np.ndarray | None, parts: list[Part], body: Body,
               light: np.ndarray = np.array([-0.35, -0.45])) -> None:
    """Draw parts with a darker rim and a light-side highlight; `labels` gets part ids (no antialiasing)."""
    for p in parts:
        if p.kind == "head":
            c, back, top, le, re, nose = p.pts
            r = p.r
            cv2.circle(img, tuple(np.round(c * ONE).astype(int)), int(r * 1.08 * ONE), _shade(p.color, 0.7), -1, cv2.LINE_AA, SHIFT)
            cv2.circle(img, tuple(np.round(c * ONE).astype(int)), int(r * ONE), p.color, -1, cv2.LINE_AA, SHIFT)
            hl = c + light * r * 0.35
            cv2.circle(img, tuple(np.round(hl * ONE).astype(int)), int(r * 0.5 * ONE), _shade(p.color, 1.15), -1, cv2.LINE_AA, SHIFT)
            # hair: a cap pushed towards the back/top of the head
            hc = c + (back - c) * 0.55 + (top - c) * 0.35
            cv2.circle(img, tuple(np.round(hc * ONE).astype(int)), int(r * 0.92 * ONE), body.hair, -1, cv2.LINE_AA, SHIFT)
            for eye in (le, re):
                if np.linalg.norm(eye - c) < r * 0.95:
                    cv2.circle(img, tuple(np.round(eye * ONE).astype(int)), max(int(r * 0.13 * ONE), 4), (25, 25, 25), -1, cv2.LINE_AA, SHIFT)
            if labels is not None:
                cv2.circle(labels, tuple(np.round(c).astype(int)), int(round(r * 1.05)), p.pid, -1)
            continue
        if p.kind == "poly":
            _poly(img, p.pts, _shade(p.color, 0.72))
            ctr = p.pts.mean(0)
            _poly(img, ctr + (p.pts - ctr) * 0.88, p.color)
            _poly(img, ctr + light * 3 + (p.pts - ctr) * 0.5, _shade(p.color, 1.18))
            if labels is not None:
                _poly(labels, p.pts, p.pid, aa=False)
            continue
        a, b = p.pts
        _capsule(img, a, b, p.r, _shade(p.color, 0.68))
        _capsule(img, a, b, p.r * 0.78, p.color)
        off = light * p.r * 0.3
        _capsule(img, a + off, b + off, p.r * 0.35, _shade(p.color, 1.2))
        if labels is not None:
            _capsule(labels, a, b, p.r, p.pid, aa=False)
