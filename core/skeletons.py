"""Keypoint layouts (joint order, bones, left/right mirror) and conversions between them.

Every other module takes its joint order and bone list from here, so a pose map rendered live from
MoveNet (COCO-17) has exactly the channel layout the checkpoint was trained on (OpenPose-18 for the
released Kinetics models, Kinect-25 for NTU). The OpenPose-18 and NTU-25 layouts are copied from the
released IntegralAction code (joint names and bone lists as stored in the reference fixtures' config),
because the bone order *is* the PAF channel order of a trained network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "Skeleton", "get_skeleton", "SKELETON_NAMES", "COCO17", "OPENPOSE18", "NTU25",
    "coco17_to_openpose18", "ntu25_to_coco17", "ntu25_to_openpose18", "convert_keypoints",
    "flip_keypoints", "bone_flip_map",
]


@dataclass(frozen=True)
class Skeleton:
    """A keypoint layout. ``flip_perm[j]`` is the joint that ``j`` becomes under a horizontal mirror
    (left <-> right, centre joints map to themselves)."""

    name: str
    joint_names: tuple[str, ...]
    bones: tuple[tuple[int, int], ...]
    flip_perm: tuple[int, ...]

    def __post_init__(self) -> None:
        j = len(self.joint_names)
        if len(self.flip_perm) != j or sorted(self.flip_perm) != list(range(j)):
            raise ValueError(f"skeleton {self.name}: flip_perm is not a permutation of {j} joints")
        if any(self.flip_perm[self.flip_perm[i]] != i for i in range(j)):
            raise ValueError(f"skeleton {self.name}: flip_perm is not an involution")
        for a, b in self.bones:
            if not (0 <= a < j and 0 <= b < j) or a == b:
                raise ValueError(f"skeleton {self.name}: bad bone ({a}, {b})")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_bones(self) -> int:
        return len(self.bones)

    @property
    def num_channels(self) -> int:
        """Pose-map channels: one heatmap per joint plus an (x, y) PAF pair per bone."""
        return self.num_joints + 2 * self.num_bones

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"skeleton {self.name} has no joint {name!r}") from None


def _perm_from_names(names: tuple[str, ...], left: str, right: str) -> tuple[int, ...]:
    """Mirror permutation by swapping the ``left``/``right`` name prefixes."""
    index = {n: i for i, n in enumerate(names)}
    perm = []
    for n in names:
        if n.startswith(left):
            perm.append(index[right + n[len(left):]])
        elif n.startswith(right):
            perm.append(index[left + n[len(right):]])
        else:
            perm.append(index[n])
    return tuple(perm)


_COCO_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
# pycocotools / openpifpaf COCO_PERSON_SKELETON (1-based) converted to 0-based, same order.
_COCO_BONES = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
COCO17 = Skeleton("coco17", _COCO_NAMES, _COCO_BONES, _perm_from_names(_COCO_NAMES, "left_", "right_"))

# Released code, data/Kinetics/Kinetics.py (OpenPose-18 order, "Thorax" is OpenPose's neck).
_OP_NAMES = (
    "Nose", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip",
    "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
)
_OP_BONES = (
    (0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12),
    (12, 13), (0, 14), (0, 15), (14, 16), (15, 17),
)
OPENPOSE18 = Skeleton("openpose18", _OP_NAMES, _OP_BONES, _perm_from_names(_OP_NAMES, "L_", "R_"))

# Released code, data/NTU/NTU.py (Kinect v2, 25 joints).
_NTU_NAMES = (
    "Pelvis", "Chest", "Neck", "Head", "R_Shoulder", "R_Elbow", "R_Wrist", "R_Hand1", "L_Shoulder",
    "L_Elbow", "L_Wrist", "L_Hand1", "R_Hip", "R_Knee", "R_Ankle", "R_Foot", "L_Hip", "L_Knee",
    "L_Ankle", "L_Foot", "Thorax", "R_Hand2", "R_Hand3", "L_Hand2", "L_Hand3",
)
_NTU_BONES = (
    (0, 1), (1, 2), (2, 3), (4, 20), (4, 5), (5, 6), (6, 7), (7, 21), (21, 22), (8, 20), (8, 9),
    (9, 10), (10, 11), (11, 23), (23, 24), (0, 12), (12, 13), (13, 14), (14, 15), (0, 16), (16, 17),
    (17, 18), (18, 19), (1, 20),
)
NTU25 = Skeleton("ntu25", _NTU_NAMES, _NTU_BONES, _perm_from_names(_NTU_NAMES, "L_", "R_"))

_SKELETONS = {s.name: s for s in (COCO17, OPENPOSE18, NTU25)}
SKELETON_NAMES: tuple[str, ...] = tuple(_SKELETONS)


def get_skeleton(name: str | Skeleton) -> Skeleton:
    """Skeleton by name (a ``Skeleton`` passes through, so APIs can accept either)."""
    if isinstance(name, Skeleton):
        return name
    try:
        return _SKELETONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown skeleton {name!r}; valid names: {', '.join(SKELETON_NAMES)}") from None


def bone_flip_map(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Where each bone goes under a horizontal mirror: ``(perm, sign)`` such that bone ``l`` of the
    mirrored pose is bone ``perm[l]`` of the original, traversed in the same (+1) or opposite (-1)
    direction. Needed to mirror PAF channels; raises if the bone list is not mirror-closed."""
    index = {bone: i for i, bone in enumerate(skeleton.bones)}
    perm = np.empty(skeleton.num_bones, dtype=np.int64)
    sign = np.empty(skeleton.num_bones, dtype=np.float32)
    fp = skeleton.flip_perm
    for l, (a, b) in enumerate(skeleton.bones):
        fa, fb = fp[a], fp[b]
        if (fa, fb) in index:
            perm[l], sign[l] = index[(fa, fb)], 1.0
        elif (fb, fa) in index:
            perm[l], sign[l] = index[(fb, fa)], -1.0
        else:
            raise ValueError(f"skeleton {skeleton.name}: mirror of bone ({a}, {b}) is not a bone")
    return perm, sign


def _check(coords: np.ndarray, scores: np.ndarray, skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    coords = np.asarray(coords)
    scores = np.asarray(scores)
    j = skeleton.num_joints
    if coords.ndim < 2 or coords.shape[-2:] != (j, 2):
        raise ValueError(f"coords must have shape (..., {j}, 2) for {skeleton.name}, got {coords.shape}")
    if scores.shape != coords.shape[:-1]:
        raise ValueError(f"scores must have shape {coords.shape[:-1]}, got {scores.shape}")
    return coords, scores


def _gather(coords: np.ndarray, scores: np.ndarray, src: Skeleton, dst: Skeleton,
            mapping: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    """Copy dst joints from their named src joints; unmapped dst joints are left for the caller."""
    out_c = np.zeros(coords.shape[:-2] + (dst.num_joints, 2), dtype=coords.dtype)
    out_s = np.zeros(scores.shape[:-1] + (dst.num_joints,), dtype=scores.dtype)
    for dname, sname in mapping.items():
        d, s = dst.joint_index(dname), src.joint_index(sname)
        out_c[..., d, :] = coords[..., s, :]
        out_s[..., d] = scores[..., s]
    return out_c, out_s


_COCO_TO_OP = {
    "Nose": "nose", "R_Shoulder": "right_shoulder", "R_Elbow": "right_elbow", "R_Wrist": "right_wrist",
    "L_Shoulder": "left_shoulder", "L_Elbow": "left_elbow", "L_Wrist": "left_wrist", "R_Hip": "right_hip",
    "R_Knee": "right_knee", "R_Ankle": "right_ankle", "L_Hip": "left_hip", "L_Knee": "left_knee",
    "L_Ankle": "left_ankle", "R_Eye": "right_eye", "L_Eye": "left_eye", "R_Ear": "right_ear",
    "L_Ear": "left_ear",
}


def coco17_to_openpose18(coords: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 -> OpenPose-18. OpenPose's neck ("Thorax") does not exist in COCO: it is the midpoint
    of the shoulders, with the smaller shoulder score (the neck is only as reliable as its worse
    shoulder, so a missing shoulder also drops the neck and its five bones)."""
    coords, scores = _check(coords, scores, COCO17)
    out_c, out_s = _gather(coords, scores, COCO17, OPENPOSE18, _COCO_TO_OP)
    ls, rs = COCO17.joint_index("left_shoulder"), COCO17.joint_index("right_shoulder")
    neck = OPENPOSE18.joint_index("Thorax")
    out_c[..., neck, :] = (coords[..., ls, :] + coords[..., rs, :]) / 2
    out_s[..., neck] = np.minimum(scores[..., ls], scores[..., rs])
    return out_c, out_s


_NTU_TO_COCO = {
    "nose": "Head", "left_shoulder": "L_Shoulder", "right_shoulder": "R_Shoulder",
    "left_elbow": "L_Elbow", "right_elbow": "R_Elbow", "left_wrist": "L_Wrist", "right_wrist": "R_Wrist",
    "left_hip": "L_Hip", "right_hip": "R_Hip", "left_knee": "L_Knee", "right_knee": "R_Knee",
    "left_ankle": "L_Ankle", "right_ankle": "R_Ankle",
}


def ntu25_to_coco17(coords: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NTU/Kinect-25 -> COCO-17. Kinect has no face keypoints: the nose takes the Kinect "Head" joint
    (centre of the head, the closest match, keeping its score); eyes and ears get the head's coordinate
    with score 0, so they are placed sensibly but never rendered (heatmap and PAF score tests fail)."""
    coords, scores = _check(coords, scores, NTU25)
    out_c, out_s = _gather(coords, scores, NTU25, COCO17, _NTU_TO_COCO)
    head = NTU25.joint_index("Head")
    for name in ("left_eye", "right_eye", "left_ear", "right_ear"):
        j = COCO17.joint_index(name)
        out_c[..., j, :] = coords[..., head, :]
        out_s[..., j] = 0
    return out_c, out_s


def openpose18_to_coco17(coords: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 -> COCO-17: the same joints by name; the neck ("Thorax") has no COCO counterpart and
    is dropped. Only for reporting (`ia-live` messages carry COCO-17 keypoints whatever the backend), not
    registered for model inputs, which keep refusing openpose18 -> coco17 (`convert_keypoints`)."""
    coords, scores = _check(coords, scores, OPENPOSE18)
    return _gather(coords, scores, OPENPOSE18, COCO17, {c: o for o, c in _COCO_TO_OP.items()})


def ntu25_to_openpose18(coords: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NTU-25 -> COCO-17 -> OpenPose-18 (the neck is then the shoulder midpoint, as for detectors)."""
    return coco17_to_openpose18(*ntu25_to_coco17(coords, scores))


_CONVERTERS: dict[tuple[str, str], Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    ("coco17", "openpose18"): coco17_to_openpose18,
    ("ntu25", "coco17"): ntu25_to_coco17,
    ("ntu25", "openpose18"): ntu25_to_openpose18,
}


def convert_keypoints(coords: np.ndarray, scores: np.ndarray, src: str | Skeleton,
                      dst: str | Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Convert ``coords (..., J, 2)`` / ``scores (..., J)`` between layouts (identity when equal)."""
    s, d = get_skeleton(src), get_skeleton(dst)
    if s.name == d.name:
        return _check(coords, scores, s)
    try:
        fn = _CONVERTERS[(s.name, d.name)]
    except KeyError:
        pairs = ", ".join(f"{a}->{b}" for a, b in _CONVERTERS)
        raise ValueError(f"no keypoint conversion {s.name}->{d.name}; supported: {pairs}") from None
    return fn(coords, scores)


def flip_keypoints(coords: np.ndarray, scores: np.ndarray, skeleton: str | Skeleton,
                   width: float) -> tuple[np.ndarray, np.ndarray]:
    """Mirror horizontally: ``x' = width - 1 - x`` (integer pixel centres, as the released code's
    flip) and swap left/right joints so a mirrored left arm is still labelled left. Returns new
    arrays; ``coords (..., J, 2)``, ``scores (..., J)``."""
    sk = get_skeleton(skeleton)
    coords, scores = _check(coords, scores, sk)
    perm = np.asarray(sk.flip_perm)
    out_c = coords[..., perm, :].copy()
    out_c[..., 0] = (width - 1) - out_c[..., 0]
    return out_c, scores[..., perm].copy()
