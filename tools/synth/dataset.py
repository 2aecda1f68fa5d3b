"""Plan and write the benchmark: classes, in/out-of-context splits, videos, pose caches, clip indexes.

Why plan first: every clip's content (scene, object, failure, seed) is decided in one pass from the global
seed, so output is identical whatever the number of worker processes or the order they finish in.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from core.clipindex import Clip, write_clip_index
from core.posecache import PoseCache, save_pose_cache
from tools.synth.posenoise import FAILURES, observe
from tools.synth.render import FRAMINGS, ClipSpec, render_clip


@dataclass(frozen=True)
class ClassDef:
    """A class = a motion family + its usual venue (scene) and prop (object), like a Kinetics class."""

    name: str
    family: str
    scene: str
    obj: str


# Order matters: `--classes N` takes the first N. The same-motion pair (drinking / eating_ice_cream:
# family hand_to_mouth, told apart only by cup vs cone and cafe vs beach) comes early so that any N >= 6
# contains it; swing_tennis / swing_bat are a second pair (N = 12).
CATALOGUE: tuple[ClassDef, ...] = (
    ClassDef("waving", "wave", "harbor", "flag"),
    ClassDef("jumping_jacks", "jumping_jack", "gym", "mat"),
    ClassDef("squats", "squat", "weight_room", "barbell"),
    ClassDef("punching", "punch", "boxing_ring", "punching_bag"),
    ClassDef("drinking", "hand_to_mouth", "cafe", "cup"),
    ClassDef("eating_ice_cream", "hand_to_mouth", "beach", "ice_cream"),
    ClassDef("kicking", "kick", "soccer_field", "ball"),
    ClassDef("marching", "march", "street", "traffic_cone"),
    ClassDef("arm_circles", "arm_circles", "snow", "snowman"),
    ClassDef("bowing", "bow", "dojo", "lantern"),
    ClassDef("swing_tennis", "swing", "tennis_court", "racket"),
    ClassDef("swing_bat", "swing", "ballpark", "bat"),
)
# `val_out` is drawn like `test_out` (a Mimetics-like validation split, for choosing a model by its
# out-of-context accuracy without touching a test split); it comes last so that adding it left every other
# split's clips byte-identical (the plan draws splits in this order from one generator).
SPLITS = ("train", "val", "test_in", "test_out", "val_out")
OUT_OF_CONTEXT_SPLITS = ("test_out", "val_out")
# "None of these": idle, walking, gesturing, stretching... in any class's scene with any class's prop, so
# neither the motion nor the context of an action class says "no_action" (motions.NO_ACTION_KINDS).
NO_ACTION = ClassDef("no_action", "none", "", "")
# Framing (full / legs cut / upper body) by motion family: close-ups are common for arm actions and rare
# for leg actions (a kick filmed from the hips up is not a kick any more); as in the real clips.
_FRAMING_P = {"kick": (0.8, 0.15, 0.05), "march": (0.8, 0.15, 0.05), "squat": (0.8, 0.15, 0.05),
              "jumping_jack": (0.8, 0.15, 0.05), "bow": (0.75, 0.15, 0.1)}
_FRAMING_ARMS = (0.55, 0.2, 0.25)


@dataclass
class SynthConfig:
    """Benchmark size and generation knobs; the defaults are the `small` preset."""

    out: Path = Path("data/synth")
    seed: int = 0
    classes: int = 10
    train_per_class: int = 60
    val_per_class: int = 10
    test_per_class: int = 20
    test_out_per_class: int | None = None      # None: same as test_per_class
    val_out_per_class: int | None = None       # None: same as val_per_class
    width: int = 160
    height: int = 120
    frames: int = 72
    fps: float = 30.0
    context_prob: float = 0.9                  # P(own scene) and P(own object) in train/val/test_in
    failure_prob: float = 0.2                  # P(clip has a pose failure), every split
    bystander_prob: float = 0.2                # P(a second, idle person in the scene)
    no_action: bool = True                     # add the no_action class (last label)
    no_action_factor: float = 1.5              # no_action clips per split = factor x clips per class
    styles: str = "base"                       # motion style set (motions.STYLE_SETS; docs/synth.md)
    workers: int = 1

    def per_class(self, split: str) -> int:
        return {"train": self.train_per_class, "val": self.val_per_class, "test_in": self.test_per_class,
                "test_out": self.test_per_class if self.test_out_per_class is None else self.test_out_per_class,
                "val_out": self.val_per_class if self.val_out_per_class is None else self.val_out_per_class}[split]


@dataclass
class ClipPlan:
    """One planned clip: what to render and how it is indexed."""

    name: str
    split: str
    label: int
    label_name: str
    spec: ClipSpec
    in_context: bool
    context_class: str      # whose scene/object it shows (itself unless out of context)
    extra: dict = field(default_factory=dict)


def class_list(n: int, no_action: bool = False) -> list[ClassDef]:
    """The first n action classes of the catalogue, then `no_action` when asked for."""
    if not 2 <= n <= len(CATALOGUE):
        raise ValueError(f"--classes must be between 2 and {len(CATALOGUE)}, got {n}")
    return list(CATALOGUE[:n]) + ([NO_ACTION] if no_action else [])


def plan(cfg: SynthConfig) -> list[ClipPlan]:
    """All clips of all splits, decided from `cfg.seed` alone."""
    classes = class_list(cfg.classes, cfg.no_action)
    actions = [c for c in classes if c is not NO_ACTION]
    rng = np.random.default_rng(cfg.seed)
    plans: list[ClipPlan] = []
    for si, split in enumerate(SPLITS):
        for label, cd in enumerate(classes):
            others = [c for c in actions if c is not cd]
            count = cfg.per_class(split)
            if cd is NO_ACTION:
                count = int(round(cfg.no_action_factor * count))
            for i in range(count):
                if cd is NO_ACTION:     # any class's scene and prop, independently: context says nothing
                    scene = actions[int(rng.integers(len(actions)))].scene
                    ctx = actions[int(rng.integers(len(actions)))]
                    obj, in_ctx = ctx.obj, split not in OUT_OF_CONTEXT_SPLITS
                elif split in OUT_OF_CONTEXT_SPLITS:
                    ctx = others[int(rng.integers(len(others)))]
                    scene, obj, in_ctx = ctx.scene, ctx.obj, False
                else:
                    scene = cd.scene if rng.random() < cfg.context_prob else others[int(rng.integers(len(others)))].scene
                    obj = cd.obj if rng.random() < cfg.context_prob else others[int(rng.integers(len(others)))].obj
                    in_ctx = scene == cd.scene and obj == cd.obj
                    ctx = cd
                failure = FAILURES[int(rng.integers(len(FAILURES)))] if rng.random() < cfg.failure_prob else None
                framing = FRAMINGS[int(rng.choice(3, p=_FRAMING_P.get(cd.family, _FRAMING_ARMS)))]
                bystander = bool(rng.random() < cfg.bystander_prob)
                seed = int(np.random.SeedSequence([cfg.seed, si, label, i]).generate_state(1)[0])
                spec = ClipSpec(family=cd.family, scene=scene, obj=obj, seed=seed, width=cfg.width,
                                height=cfg.height, frames=cfg.frames, fps=cfg.fps, pose_failure=failure,
                                framing=framing, bystander=bystander, styles=cfg.styles)
                plans.append(ClipPlan(name=f"{split}_{cd.name}_{i:04d}", split=split, label=label,
                                      label_name=cd.name, spec=spec, in_context=in_ctx, context_class=ctx.name))
    return plans


def _normalise_zip(path: Path) -> None:
    """Rewrite an .npz with fixed entry timestamps, so the same content gives byte-identical files.

    `np.savez_compressed` stamps every entry with the current time; that alone would break the
    "same seed -> same bytes" guarantee.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            zi = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o600 << 16
            dst.writestr(zi, src.read(info.filename))
    tmp = path.with_name(f".{path.name}.norm{os.getpid()}")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    if w % 2 or h % 2:
        raise ValueError(f"{path}: mp4v needs an even frame size, got {w}x{h}")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise OSError(f"cannot open a mp4v video writer for {path}")
    try:
        for fr in frames:
            writer.write(fr)
    finally:
        writer.release()


def make_clip(p: ClipPlan, root: Path) -> Clip:
    """Render, write video + pose cache, and return the index record of one planned clip."""
    spec = p.spec
    clip = render_clip(spec)
    video = root / "videos" / p.split / f"{p.name}.mp4"
    poses = root / "poses" / p.split / f"{p.name}.npz"
    write_video(video, clip.frames, spec.fps)
    noise_rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 1]))
    coords, scores = observe(clip, noise_rng, spec.pose_failure, spec.width, spec.height)
    cache = PoseCache(coords=coords, scores=scores, skeleton="coco17", fps=spec.fps, width=spec.width,
                      height=spec.height, valid=np.ones(spec.frames, bool), source=f"videos/{p.split}/{p.name}.mp4",
                      estimator="synthetic-gt+noise", meta={"family": spec.family, "seed": str(spec.seed)})
    save_pose_cache(poses, cache)
    _normalise_zip(poses)
    extra = {"scene": spec.scene, "object": spec.obj, "in_context": p.in_context, "context_class": p.context_class,
             "pose_failure": spec.pose_failure, "family": spec.family, "frames": spec.frames, "fps": spec.fps,
             "active_side": clip.side, "seed": spec.seed, "framing": spec.framing, "bystander": spec.bystander}
    return Clip(video=video, label=p.label, label_name=p.label_name, poses=poses, split=p.split, extra=extra)


def _work(args: tuple[ClipPlan, Path]) -> Clip:
    return make_clip(*args)


def generate(cfg: SynthConfig, on_clip: Callable[[Clip], None] | None = None) -> dict[str, Path]:
    """Write the whole benchmark under cfg.out; returns the index path of each split."""
    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    plans = plan(cfg)
    classes = [c.name for c in class_list(cfg.classes, cfg.no_action)]
    jobs = [(p, root.resolve()) for p in plans]
    results: Iterator[Clip]
    if cfg.workers > 1:
        import multiprocessing as mp
        pool = mp.get_context("spawn").Pool(cfg.workers)
        results = pool.imap(_work, jobs, chunksize=2)
    else:
        pool = None
        results = map(_work, jobs)
    by_split: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    try:
        for clip in results:
            by_split[clip.split].append(clip)
            if on_clip:
                on_clip(clip)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    out = {}
    for split, clips in by_split.items():
        out[split] = write_clip_index(root / f"{split}.jsonl", clips, classes)
    cfg_dict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items() if k not in ("out", "workers")}
    (root / "synth_config.json").write_text(json.dumps({"config": cfg_dict, "classes": [asdict(c) for c in class_list(cfg.classes, cfg.no_action)]},
                                                       indent=1) + "\n")
    return out
