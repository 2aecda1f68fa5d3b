"""NTU RGB+D raw ``.skeleton`` files (Kinect v2): 2D colour-frame joints -> ``PoseCache`` (``ntu25``).

File layout (text): the frame count; then per frame the body count; per body a header line
``bodyID clippedEdges handLeftConfidence handLeftState handRightConfidence handRightState isRestricted
leanX leanY trackingState``, the joint count (25) and one line per joint ``x y z depthX depthY colorX
colorY orientW orientX orientY orientZ trackingState``. ``colorX/colorY`` are pixels of the 1920x1080 RGB
video (30 fps), which is what the RGB stream sees, so those are the coordinates kept.

Scores: the released IntegralAction NTU loader gives every joint score 1 and NaN joints coordinate 0 and
score 0; ``score_for_state`` maps Kinect's ``trackingState`` (0 not tracked, 1 inferred, 2 tracked) to a
score and defaults to that released behaviour (1, 1, 1), so a model trained by the authors sees the same.
File names ``SsssCcccPpppRrrrAaaa`` give setup, camera, performer (subject), replication and action
(1-based; label = action - 1).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.clipindex import Clip, write_clip_index
from core.posecache import PoseCache

from . import DatasetFormatError

__all__ = ["NTU_WIDTH", "NTU_HEIGHT", "NTU_FPS", "XSUB_TRAIN_SUBJECTS", "XVIEW_TRAIN_CAMERAS", "NTUName",
           "NTUBody", "parse_ntu_name", "read_ntu_skeleton", "ntu_split", "ntu_clips", "build_ntu_index"]

NTU_WIDTH, NTU_HEIGHT, NTU_FPS = 1920, 1080, 30.0
_JOINTS = 25
#: Cross-subject protocol (Shahroudy et al. 2016): these performers train, the others test.
XSUB_TRAIN_SUBJECTS = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
#: Cross-view protocol: cameras 2 and 3 train, camera 1 tests.
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})
_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class NTUName:
    setup: int
    camera: int
    subject: int
    replication: int
    action: int

    @property
    def label(self) -> int:
        return self.action - 1


def parse_ntu_name(name: str | os.PathLike) -> NTUName:
    m = _NAME.search(Path(name).name)
    if not m:
        raise DatasetFormatError(f"{name}: not an NTU RGB+D name (expected SsssCcccPpppRrrrAaaa)")
    return NTUName(*(int(g) for g in m.groups()))


def ntu_split(name: NTUName, protocol: str = "xsub") -> str:
    """``"train"`` or ``"test"`` under the cross-subject (``xsub``) or cross-view (``xview``) protocol."""
    if protocol == "xsub":
        return "train" if name.subject in XSUB_TRAIN_SUBJECTS else "test"
    if protocol == "xview":
        return "train" if name.camera in XVIEW_TRAIN_CAMERAS else "test"
    raise ValueError(f"unknown NTU protocol {protocol!r} (expected xsub or xview)")


@dataclass
class NTUBody:
    """Raw per-frame body of the file: ``body_id``, ``color (25,2)``, ``tracking (25,)`` int."""

    body_id: str
    color: np.ndarray
    tracking: np.ndarray


def _parse_bodies(path: Path) -> list[list[NTUBody]]:
    try:
        tokens_lines = path.read_text(encoding="ascii", errors="strict").splitlines()
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: file not found") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DatasetFormatError(f"{path}: unreadable skeleton file ({type(exc).__name__})") from None
    lines = [ln.split() for ln in tokens_lines]
    pos = 0

    def take(what: str) -> list[str]:
        nonlocal pos
        while pos < len(lines) and not lines[pos]:
            pos += 1
        if pos >= len(lines):
            raise DatasetFormatError(f"{path}: truncated file (expected {what} at line {pos + 1})")
        pos += 1
        return lines[pos - 1]

    def count(what: str) -> int:
        row = take(what)
        try:
            return int(row[0])
        except ValueError:
            raise DatasetFormatError(f"{path}:{pos}: expected {what}, got {' '.join(row)[:40]!r}") from None

    frames: list[list[NTUBody]] = []
    for _ in range(count("frame count")):
        bodies: list[NTUBody] = []
        for _ in range(count("body count")):
            header = take("body header")
            njoints = count("joint count")
            if njoints != _JOINTS:
                raise DatasetFormatError(f"{path}:{pos}: expected {_JOINTS} joints, got {njoints}")
            color = np.zeros((_JOINTS, 2), np.float64)
            tracking = np.zeros(_JOINTS, np.int64)
            for j in range(_JOINTS):
                row = take("joint line")
                if len(row) < 12:
                    raise DatasetFormatError(f"{path}:{pos}: joint line has {len(row)} values, expected 12")
                try:
                    color[j] = float(row[5]), float(row[6])
                    tracking[j] = int(float(row[11]))
                except ValueError:
                    raise DatasetFormatError(f"{path}:{pos}: non-numeric joint line") from None
            bodies.append(NTUBody(body_id=header[0], color=color, tracking=tracking))
        frames.append(bodies)
    return frames


def read_ntu_skeleton(path: str | os.PathLike, score_for_state: tuple[float, float, float] = (1.0, 1.0, 1.0),
                      width: int = NTU_WIDTH, height: int = NTU_HEIGHT, fps: float = NTU_FPS) -> PoseCache:
    """Parse a ``.skeleton`` file into a ``PoseCache`` of colour-frame pixels.

    Bodies keep a stable person slot while their Kinect ``bodyID`` persists (a new body takes the first
    free slot), so P is the largest number of simultaneous bodies. NaN/inf joints get coordinate 0 and
    score 0. Every frame of the file is ``valid`` (Kinect ran on all of them); a frame with no body is a
    processed frame with no person.
    """
    path = Path(path)
    frames = _parse_bodies(path)
    states = np.asarray(score_for_state, np.float32)
    if states.shape != (3,):
        raise ValueError("score_for_state needs three scores (not tracked, inferred, tracked)")
    num_persons = max([1] + [len(b) for b in frames])
    cache = PoseCache.empty(len(frames), num_persons, "ntu25", fps, width, height, source=path.name,
                            estimator="kinect-v2 (NTU RGB+D)")
    cache.valid[:] = True
    slots: dict[str, int] = {}
    for f, bodies in enumerate(frames):
        present = {b.body_id for b in bodies}
        slots = {bid: s for bid, s in slots.items() if bid in present}
        for body in bodies:
            if body.body_id not in slots:
                used = set(slots.values())
                slots[body.body_id] = next(s for s in range(num_persons) if s not in used)
            s = slots[body.body_id]
            ok = np.isfinite(body.color).all(axis=1)
            score = states[np.clip(body.tracking, 0, 2)]
            cache.coords[f, s] = np.where(ok[:, None], body.color, 0.0).astype(np.float32)
            cache.scores[f, s] = np.where(ok, score, 0.0).astype(np.float32)
    return cache.validate(str(path))


def ntu_clips(skeleton_dir: str | os.PathLike, videos_dir: str | os.PathLike, poses_dir: str | os.PathLike,
              protocol: str = "xsub", num_classes: int = 60) -> list[Clip]:
    """Clips for every ``*.skeleton`` in ``skeleton_dir`` with action <= ``num_classes`` (60 or 120).
    Videos are NTU's ``<name>_rgb.avi``; poses ``<poses_dir>/<name>_rgb.npz`` (keyed by the video stem,
    as ``tools.extract_poses`` and the live ``file`` backend expect)."""
    skeleton_dir, videos_dir, poses_dir = Path(skeleton_dir), Path(videos_dir), Path(poses_dir)
    clips: list[Clip] = []
    for sk in sorted(skeleton_dir.glob("*.skeleton")):
        name = parse_ntu_name(sk.name)
        if name.action > num_classes:
            continue
        video = videos_dir / f"{sk.stem}_rgb.avi"
        clips.append(Clip(video=video.absolute(), label=name.label, poses=(poses_dir / f"{video.stem}.npz").absolute(),
                          split=ntu_split(name, protocol),
                          extra={"setup": name.setup, "camera": name.camera, "subject": name.subject,
                                 "replication": name.replication, "action": name.action}))
    if not clips:
        raise DatasetFormatError(f"{skeleton_dir}: no NTU .skeleton files")
    return clips


def build_ntu_index(skeleton_dir: str | os.PathLike, videos_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    classes: list[str], protocol: str = "xsub", progress: bool = True) -> list[Path]:
    """Convert skeletons to pose caches in ``<out_dir>/poses`` and write ``<out_dir>/{train,test}.jsonl``."""
    from core.posecache import save_pose_cache
    from rich.progress import Progress

    out_dir = Path(out_dir)
    clips = ntu_clips(skeleton_dir, videos_dir, out_dir / "poses", protocol, num_classes=len(classes))
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("NTU skeletons", total=len(clips))
        for clip in clips:
            name = Path(clip.video).name.replace("_rgb.avi", ".skeleton")
            save_pose_cache(clip.poses, read_ntu_skeleton(Path(skeleton_dir) / name))
            clip.label_name = classes[clip.label]
            bar.advance(task)
    return [write_clip_index(out_dir / f"{split}.jsonl", [c for c in clips if c.split == split], classes)
            for split in ("train", "test")]
