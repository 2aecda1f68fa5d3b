"""``ClipDataset``: clip index -> model inputs, through the SAME core code the live pipeline runs.

Temporal sampling (``core.sampling``), spatial pre-processing and augmentation (``core.preprocess``),
skeleton conversion (``core.skeletons``) and pose-map rendering (``core.posemaps``) are only *called* here,
never re-implemented, so what is trained and evaluated is what runs live.

Per item: ``{"rgb": (T,3,S,S) float32 [0,1], "pose": (T_pose,C,M,M) float32, "label": int, "index": int}``
in train mode (one random clip, augmented), and the same with a leading ``n_clips`` axis in test mode
(clips spread evenly over the video, centre crop). ``rgb``/``pose`` are left out when the config disables
that stream, so a pose-only model never decodes video.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core import preprocess, sampling
from core.clipindex import Clip, check_clip_files, read_clip_index
from core.posecache import PoseCacheError, PoseTrack, nearest_valid_frames
from core.clip import ClipBuilder, InputSpec
from core.skeletons import get_skeleton

from . import DatasetFormatError
from .video import FrameCache, VideoInfo, probe_video, read_frames

__all__ = ["ClipDatasetConfig", "ClipDataset", "nearest_valid_frames"]


@dataclass
class ClipDatasetConfig:
    """Sampling/pre-processing knobs; ``from_model(config)`` copies the model's so they cannot diverge."""

    mode: str = "train"  # "train" | "test"
    frames: int = 8
    tau: int = 8
    pose_frames: int = 8
    pose_tau: int = 8
    ref_fps: float = 30.0
    skeleton: str = "openpose18"  # the model's layout; caches are converted to it
    rgb_size: int = 224
    map_size: int = 56
    short_side: int = 256
    top_k_persons: int = 5
    score_thr: float = 0.1
    threshold_mode: str = "released"
    pose_crop: str = "frame"
    pose_margin: float = 0.25
    n_clips: int = 10  # test mode
    use_rgb: bool = True
    use_pose: bool = True
    augment: bool | None = None  # default: True in train mode
    missing_poses: str = "error"  # "error" | "empty" (clip without a cache = nobody detected)
    frame_cache_mb: int = 0  # >0: keep decoded frames in memory (small datasets)
    default_fps: float = 30.0  # frame folders carry no timing
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("train", "test"):
            raise ValueError(f"mode must be 'train' or 'test', got {self.mode!r}")
        if self.missing_poses not in ("error", "empty"):
            raise ValueError(f"missing_poses must be 'error' or 'empty', got {self.missing_poses!r}")
        if not (self.use_rgb or self.use_pose):
            raise ValueError("at least one of use_rgb/use_pose must be enabled")

    @classmethod
    def from_model(cls, model_config: Any, **overrides: Any) -> "ClipDatasetConfig":
        """Take every same-named field from a ``core.model.ModelConfig`` (variant decides the streams)."""
        names = {f.name for f in fields(cls)}
        values = {n: getattr(model_config, n) for n in names if hasattr(model_config, n)}
        variant = str(getattr(model_config, "variant", ""))
        if variant in ("rgb_only", "appearance_only", "rgb"):
            values["use_pose"] = False
        elif variant in ("pose_only", "pose"):
            values["use_rgb"] = False
        values.update(overrides)
        return cls(**values)

    @property
    def crop_spec(self) -> "preprocess.CropSpec":
        return preprocess.CropSpec(short_side=self.short_side, crop=self.rgb_size, map_size=self.map_size)


class ClipDataset(Dataset):
    """A ``torch`` Dataset over a clip index (path or list of ``Clip``)."""

    def __init__(self, index: str | os.PathLike | Sequence[Clip], config: ClipDatasetConfig,
                 split: str | None = None) -> None:
        self.config = config
        if isinstance(index, (str, os.PathLike)):
            self.clips = read_clip_index(index, split=split)
        else:
            self.clips = [c for c in index if split is None or c.split == split]
        if not self.clips:
            raise DatasetFormatError(f"{index if isinstance(index, (str, os.PathLike)) else 'clip list'}: no clips"
                                     + (f" in split {split!r}" if split else ""))
        self.skeleton = get_skeleton(config.skeleton)
        self.input_spec = InputSpec.from_config(config)
        self._builders: dict[tuple[int, int], ClipBuilder] = {}
        self.augment = config.mode == "train" if config.augment is None else bool(config.augment)
        # pose frames are the RGB frames exactly when both streams sample alike
        self._same_frames = (config.frames, float(config.tau)) == (config.pose_frames, float(config.pose_tau))
        self.epoch = 0
        self.frame_cache = FrameCache(config.frame_cache_mb << 20) if config.frame_cache_mb > 0 else None
        self._info: dict[str, VideoInfo] = {}
        self._poses: OrderedDict[str, PoseTrack] = OrderedDict()
        if config.use_pose and config.missing_poses == "error":
            for clip in self.clips:
                if clip.poses is None:
                    raise DatasetFormatError(f"{clip.where}: clip has no pose cache (extract poses first, "
                                             "or set missing_poses='empty')")
        # every file, before any DataLoader worker starts (a worker's error would lose the path). Pose-only
        # data reads timing from the cache, so its videos may be absent; a clip without a cache needs its video.
        check_clip_files(self.clips, videos=config.use_rgb, poses=config.use_pose and config.missing_poses == "error")
        if not config.use_rgb:
            check_clip_files([c for c in self.clips if c.poses is None or not c.poses.exists()], videos=True,
                             poses=False)

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Random starts and augmentation depend on (seed, epoch, index): reproducible with any workers."""
        self.epoch = int(epoch)

    @property
    def labels(self) -> list[int]:
        return [c.label for c in self.clips]

    # ------------------------------------------------------------------ sources
    def _pose_cache(self, clip: Clip) -> PoseTrack | None:
        if clip.poses is None:
            return None
        key = str(clip.poses)
        hit = self._poses.get(key)
        if hit is None:
            try:
                hit = PoseTrack.load(clip.poses)
            except PoseCacheError:
                if self.config.missing_poses == "empty" and not Path(clip.poses).exists():
                    return None
                raise
            self._poses[key] = hit
            while len(self._poses) > 512:
                self._poses.popitem(last=False)
        else:
            self._poses.move_to_end(key)
        return hit

    def _video_info(self, clip: Clip, pose: PoseTrack | None) -> VideoInfo:
        """Timing/size of the clip. Pose-only clips take it from the cache and never open the video."""
        if not self.config.use_rgb and pose is not None:
            c = pose.cache
            return VideoInfo(c.num_frames, c.fps, c.width, c.height)
        key = str(clip.video)
        info = self._info.get(key)
        if info is None:
            fps = float(clip.extra.get("fps", self.config.default_fps))
            info = probe_video(clip.video, default_fps=fps)
            self._info[key] = info
        return info

    def _poses_at(self, pose: PoseTrack | None, indices: np.ndarray, width: int,
                  height: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Keypoints of ``indices`` in pixels of a ``width`` x ``height`` frame, in the cache's skeleton
        (`core.posecache.PoseTrack`: the live ``file`` backend reads a cache the same way)."""
        sk = self.skeleton
        if pose is None:
            return (np.zeros((len(indices), 0, sk.num_joints, 2), np.float32),
                    np.zeros((len(indices), 0, sk.num_joints), np.float32), sk.name)
        coords, scores = pose.at(indices, width, height)
        return coords, scores, pose.skeleton

    # ------------------------------------------------------------------ items
    def _builder(self, height: int, width: int) -> ClipBuilder:
        key = (height, width)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = ClipBuilder(self.input_spec, height, width)
        return builder

    def _clip_arrays(self, clip: Clip, info: VideoInfo, pose, start: int,
                     rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        c = self.config
        rgb_idx = sampling.clip_indices(info.num_frames, info.fps, c.frames, c.tau, start, ref_fps=c.ref_fps)
        pose_idx = sampling.clip_indices(info.num_frames, info.fps, c.pose_frames, c.pose_tau, start,
                                         ref_fps=c.ref_fps)
        frames = None
        height, width = info.height, info.width
        if c.use_rgb:
            frames = read_frames(clip.video, rgb_idx, cache=self.frame_cache)
            height, width = frames.shape[1:3]
        builder = self._builder(height, width)
        coords, scores, skeleton = self._poses_at(pose, np.asarray(pose_idx), width, height)
        out: dict[str, torch.Tensor] = {}
        if rng is None:  # test time: exactly the live pipeline's chain (core.clip.ClipBuilder.window)
            rgb, maps = builder.window(frames, coords if c.use_pose else None, scores, skeleton)
            if c.use_rgb:
                out["rgb"] = torch.from_numpy(rgb)
            if c.use_pose:
                out["pose"] = torch.from_numpy(maps)
            return out
        coords, scores = builder.keypoints(coords, scores, skeleton)
        crops, coords_map, scores = self._augment(builder, frames, coords, scores, width, height, rng)
        if c.use_rgb:
            out["rgb"] = preprocess.frames_to_tensor(crops)
        if c.use_pose:
            out["pose"] = torch.from_numpy(builder.render(coords_map, scores))
        return out

    def _augment(self, builder: ClipBuilder, frames, coords, scores, width: int, height: int,
                 rng: np.random.Generator):
        """One random scale/translate/flip for the whole clip, applied to RGB and keypoints alike.

        Person-centric maps (``pose_crop="person"``): the RGB frames get the random crop, the pose maps a
        jittered person box (`core.clip.ClipBuilder.box`), and both the same flip.

        Frame-aligned maps: ``core.preprocess.random_augment`` wants keypoints frame-aligned with the frames.
        When the pose frames are the RGB frames (the usual T_pose = T) it is called once. Otherwise (pose-only
        model, or a denser pose stream) it is called twice from identical generator states - its draws depend
        only on the generator and the frame size, so both calls pick the same box and flip: once on the RGB
        frames with no persons, once on one blank frame of the same size carrying every pose frame's persons
        (frames folded into the person axis), which costs one resize instead of T_pose.
        """
        spec = self.config.crop_spec
        sk = self.skeleton
        if self.input_spec.pose_crop == "person":
            flip = bool(rng.random() < 0.5)
            crops = None
            if frames is not None:
                empty_c = np.zeros((frames.shape[0], 0, sk.num_joints, 2), np.float32)
                empty_s = np.zeros((frames.shape[0], 0, sk.num_joints), np.float32)
                crops, _, _ = preprocess.random_augment(frames, empty_c, empty_s, rng, spec, skeleton=sk,
                                                        flip_prob=1.0 if flip else 0.0)
            if flip:
                perm = np.asarray(sk.flip_perm)
                coords, scores = coords[:, :, perm], scores[:, :, perm]
            return crops, builder.map_coords(coords, scores, rng, flip), scores
        if frames is not None and frames.shape[0] == coords.shape[0] and self._same_frames:
            return preprocess.random_augment(frames, coords, scores, rng, spec, skeleton=sk)
        crops = None
        state = rng.bit_generator.state
        if frames is not None:
            empty_c = np.zeros((frames.shape[0], 0, sk.num_joints, 2), np.float32)
            empty_s = np.zeros((frames.shape[0], 0, sk.num_joints), np.float32)
            crops, _, _ = preprocess.random_augment(frames, empty_c, empty_s, rng, spec, skeleton=sk)
            rng.bit_generator.state = state
        t, p = coords.shape[:2]
        blank = np.zeros((1, height, width, 3), np.uint8)
        _, mapped, sc = preprocess.random_augment(blank, coords.reshape(1, t * p, sk.num_joints, 2),
                                                  scores.reshape(1, t * p, sk.num_joints), rng, spec, skeleton=sk)
        return crops, mapped.reshape(t, p, sk.num_joints, 2), sc.reshape(t, p, sk.num_joints)

    def clip_at(self, index: int, start: float) -> dict[str, torch.Tensor]:
        """Test-time inputs (no augmentation) of the clip of video ``index`` that starts at source frame
        ``start`` (fractional starts are the live stream's: `core.sampling.clip_indices`)."""
        clip = self.clips[index]
        pose = self._pose_cache(clip) if self.config.use_pose else None
        return self._clip_arrays(clip, self._video_info(clip, pose), pose, start, None)

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index]
        c = self.config
        pose = self._pose_cache(clip) if c.use_pose else None
        info = self._video_info(clip, pose)
        if c.mode == "train":
            rng = np.random.default_rng([c.seed, self.epoch, index])
            start = int(sampling.train_clip_start(info.num_frames, info.fps, c.frames, c.tau, rng,
                                                  ref_fps=c.ref_fps))
            item = self._clip_arrays(clip, info, pose, start, rng if self.augment else None)
        else:
            starts = sampling.test_clip_starts(info.num_frames, info.fps, c.frames, c.tau, n_clips=c.n_clips,
                                               ref_fps=c.ref_fps)
            parts = [self.clip_at(index, int(s)) for s in starts]
            item = {k: torch.stack([p[k] for p in parts]) for k in parts[0]}
        item["label"] = int(clip.label)
        item["index"] = int(index)
        return item
