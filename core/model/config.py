"""Model configuration and named presets.

A `ModelConfig` travels inside every checkpoint (timm style), so a checkpoint alone says how to rebuild
its network *and* how its inputs were sampled and pre-processed. Two conventions are supported as named
variants of one model, because the authors' released code differs from the paper
(`../shared/reference/README.md`, "Paper vs. released code"):

* ``paper``: TSM shift 1/8 + 1/8; TCB = conv1 + LayerNorm + ReLU; CGB = conv1 (+ BN, ``gate_norm``) + sigmoid, G weights
  appearance; per-frame softmax, probabilities averaged over frames.
* ``released``: TSM shift 1/4 + 1/4; TCB = conv1 + BN + ReLU then LayerNorm; gate = Linear + sigmoid with
  g weighting pose (we expose G = 1 - g); frame logits averaged, then softmax.

Variants (Table 4 of the paper) are the model's ``variant`` field; the gate driver (Table 6) is
``gate_driver``. Lambda is a training hyper-parameter but is carried for the record.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any

VARIANTS = ("integral", "appearance", "pose", "feature_fuse", "score_average", "no_gating")
CONVENTIONS = ("paper", "released")
GATE_DRIVERS = ("pose", "appearance", "both")
GATE_NORMS = ("none", "batchnorm")
POSE_CROPS = ("frame", "person")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "custom"
    variant: str = "integral"
    convention: str = "paper"
    num_classes: int = 50
    # streams
    appearance_depth: int = 18
    pose_depth: int = 18
    appearance_width: int = 64
    pose_width: int = 64
    shift_div: int = 8  # each direction shifts channels // shift_div (paper 8 -> 1/8 + 1/8; released 4)
    # temporal sampling (frames at `tau` source frames of a `ref_fps` video)
    frames: int = 8
    tau: int = 8
    pose_frames: int = 8
    pose_tau: int = 8
    ref_fps: float = 30.0
    # integration
    feature_dim: int = 512
    gate_driver: str = "pose"
    # CGB normalisation. "none" (conv1/Linear + sigmoid, as the released code) is the default: the paper
    # text's BatchNorm re-centres every gate channel over the batch in training mode, so the fc cannot move
    # the batch-mean G and L_gate only reaches BN's beta (docs/model.md, "The gate"). "batchnorm" keeps the
    # paper text as a named option. Configs saved before this field existed used "batchnorm" (from_dict).
    gate_norm: str = "none"
    score_weight: float = 0.5  # appearance weight of the score-average variant
    gate_lambda: float = 1.5
    # inputs and spatial pre-processing
    skeleton: str = "openpose18"
    pose_channels: int | None = None  # default: J + 2 * bones of `skeleton`
    rgb_size: int = 224
    map_size: int = 56
    short_side: int = 256
    rgb_mean: tuple[float, float, float] | None = IMAGENET_MEAN
    rgb_std: tuple[float, float, float] | None = IMAGENET_STD
    # pose maps
    top_k_persons: int = 5
    score_thr: float = 0.1
    threshold_mode: str = "released"  # the released code's float32 `>` (heatmaps) vs `>=` (PAFs)
    # Where pose maps are drawn: "frame" = the RGB crop's grid (the paper; maps align with the RGB input,
    # so map_size = rgb_size / 4), "person" = a square box around every drawn person's keypoints over the
    # whole window, grown by pose_margin (mmaction2 PoseC3D's PoseCompact): a small person far from the
    # camera fills the map just like a close one.
    pose_crop: str = "frame"
    pose_margin: float = 0.25

    def __post_init__(self) -> None:
        problems = []
        if self.variant not in VARIANTS:
            problems.append(f"variant {self.variant!r} not in {VARIANTS}")
        if self.convention not in CONVENTIONS:
            problems.append(f"convention {self.convention!r} not in {CONVENTIONS}")
        if self.gate_driver not in GATE_DRIVERS:
            problems.append(f"gate_driver {self.gate_driver!r} not in {GATE_DRIVERS}")
        if self.gate_norm not in GATE_NORMS:
            problems.append(f"gate_norm {self.gate_norm!r} not in {GATE_NORMS}")
        if self.pose_crop not in POSE_CROPS:
            problems.append(f"pose_crop {self.pose_crop!r} not in {POSE_CROPS}")
        if not 0.0 <= self.pose_margin <= 2.0:
            problems.append(f"pose_margin must be in [0, 2], got {self.pose_margin}")
        for depth in (self.appearance_depth, self.pose_depth):
            if depth not in (18, 34, 50):
                problems.append(f"ResNet depth {depth} not in (18, 34, 50)")
        if self.uses_appearance and self.uses_pose:
            if self.pose_frames % self.frames:
                problems.append(f"pose_frames ({self.pose_frames}) must be a multiple of frames ({self.frames})")
            elif self.pose_tau * self.pose_frames != self.tau * self.frames:
                problems.append("the pose and appearance clips must span the same time "
                                f"(pose_frames*pose_tau={self.pose_frames * self.pose_tau} vs frames*tau={self.frames * self.tau})")
        if self.pose_crop == "frame" and self.rgb_size != 4 * self.map_size:
            problems.append(f"map_size ({self.map_size}) must be rgb_size/4 ({self.rgb_size}/4): the pose stream skips "
                            "the stride-4 stem, so frame-aligned maps are the RGB grid at 1/4 (pose_crop 'person' "
                            "has no such tie)")
        if self.map_size < 8:
            problems.append(f"map_size must be >= 8, got {self.map_size}")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def uses_appearance(self) -> bool:
        return self.variant != "pose"

    @property
    def uses_pose(self) -> bool:
        return self.variant != "appearance"

    @property
    def pose_factor(self) -> int:
        """k: the pose stream sees k times as many frames (Table 13: 32 vs 8)."""
        return self.pose_frames // self.frames if self.uses_appearance and self.uses_pose else 1

    @property
    def num_pose_channels(self) -> int:
        if self.pose_channels is not None:
            return self.pose_channels
        from core.skeletons import get_skeleton

        return get_skeleton(self.skeleton).num_channels

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so that it round-trips through `torch.load(weights_only=True)`."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        if "gate_norm" not in kwargs and kwargs.get("convention", "paper") == "paper":
            kwargs["gate_norm"] = "batchnorm"  # saved before gate_norm existed: the paper-text gate it was built with
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)


_RELEASED = dict(convention="released", shift_div=4, rgb_mean=None, rgb_std=None,
                 frames=8, tau=8, pose_frames=8, pose_tau=8)

PRESETS: dict[str, ModelConfig] = {
    # Section 4.2 / Table 13: ResNet-50 appearance (T=8, tau=8), ResNet-18 pose (T=32, tau=2), Kinetics-400.
    "table13": ModelConfig(name="table13", appearance_depth=50, pose_depth=18, frames=8, tau=8,
                           pose_frames=32, pose_tau=2, num_classes=400),
    # Sections 4.3-4.4 / Table 14: ResNet-18 both streams, T = tau = 8, Kinetics50.
    "table14": ModelConfig(name="table14", num_classes=50),
    # The authors' released code and its published Kinetics50 checkpoint (OpenPose-18 poses).
    "released_kinetics50": ModelConfig(name="released_kinetics50", num_classes=50, skeleton="openpose18", **_RELEASED),
    # The released code's NTU RGB+D 60 configuration (Kinect-25 joints).
    "released_ntu": ModelConfig(name="released_ntu", num_classes=60, skeleton="ntu25", **_RELEASED),
    # A CPU real-time preset (half-width ResNet-18s at 112x112 RGB / 28x28 pose maps, COCO-17 poses):
    # the architecture of the paper at a quarter of the pixels and a quarter of the channels.
    "fast": ModelConfig(name="fast", appearance_width=32, pose_width=32, feature_dim=256, rgb_size=112,
                        map_size=28, short_side=128, skeleton="coco17", num_classes=10),
}


def resolve_config(preset_or_config: str | ModelConfig | dict, **overrides: Any) -> ModelConfig:
    """A preset name, a config, or a config dict, with field overrides applied."""
    if isinstance(preset_or_config, ModelConfig):
        config = preset_or_config
    elif isinstance(preset_or_config, dict):
        config = ModelConfig.from_dict(preset_or_config)
    elif isinstance(preset_or_config, str):
        if preset_or_config not in PRESETS:
            raise ValueError(f"unknown preset {preset_or_config!r}; choose one of {', '.join(PRESETS)}")
        config = PRESETS[preset_or_config]
    else:
        raise TypeError(f"expected a preset name, ModelConfig or dict, got {type(preset_or_config).__name__}")
    return dataclasses.replace(config, **overrides) if overrides else config
