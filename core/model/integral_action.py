"""IntegralAction: an appearance stream, a pose stream and a fusion module, then a per-frame classifier.

Shaped like pytorchvideo's multi-pathway nets: each stream is a self-contained block and the variant of
Table 4 only changes which streams exist and which fusion joins them. `forward_features` runs the streams,
`forward_head` integrates and classifies (timm's split), so evaluation tools can reuse stream features.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from core.model.config import ModelConfig
from core.model.fusion import ConcatFusion, GatedFusion, SumFusion
from core.model.resnet import TSMResNet


class ModelOutput(NamedTuple):
    """Video-level outputs. ``gate`` is G, the appearance weight per frame and channel (0 = pose only)."""

    probs: torch.Tensor  # (B, K)
    logits: torch.Tensor  # (B, K), softmax(logits) == probs
    frame_logits: torch.Tensor  # (B, T, K)
    gate: torch.Tensor | None  # (B, T, C)
    appearance_features: torch.Tensor | None  # (B, T, C_A)
    pose_features: torch.Tensor | None  # (B, T_pose, C_P)


class StreamFeatures(NamedTuple):
    appearance: torch.Tensor | None  # (B, T, C_A) globally pooled
    pose: torch.Tensor | None  # (B, T_pose, C_P) globally pooled


class AppearanceStream(nn.Module):
    """RGB frames in [0, 1] -> per-frame appearance features F_A (section 3.1)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.frames = config.frames
        self.backbone = TSMResNet(config.appearance_depth, config.frames, config.shift_div,
                                  past_first=config.convention == "released", width=config.appearance_width)
        self.out_channels = self.backbone.out_channels
        if config.rgb_mean is not None:
            self.register_buffer("mean", torch.tensor(config.rgb_mean).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(config.rgb_std).view(1, 3, 1, 1), persistent=False)
        else:
            self.mean = self.std = None

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        b, t = rgb.shape[:2]
        x = rgb.reshape(b * t, *rgb.shape[2:])
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return self.backbone(x).mean((2, 3)).view(b, t, -1)


class PoseFrontEnd(nn.Module):
    """3x3 conv + BN + ReLU adapting the J + 2B pose-map channels to the trunk's width (section 3.2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=True)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class PoseStream(nn.Module):
    """Heatmaps + PAFs at 1/4 resolution -> per-frame pose features F_P (stem skipped)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.front = PoseFrontEnd(config.num_pose_channels, config.pose_width)
        self.backbone = TSMResNet(config.pose_depth, config.pose_frames, config.shift_div,
                                  past_first=config.convention == "released", width=config.pose_width,
                                  with_stem=False)
        self.out_channels = self.backbone.out_channels

    def forward(self, pose: torch.Tensor) -> torch.Tensor:
        b, t = pose.shape[:2]
        x = self.front(pose.reshape(b * t, *pose.shape[2:]))
        return self.backbone(x).mean((2, 3)).view(b, t, -1)


class IntegralAction(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.class_names: list[str] = [str(i) for i in range(config.num_classes)]
        self.appearance = AppearanceStream(config) if config.uses_appearance else None
        self.pose = PoseStream(config) if config.uses_pose else None
        ca = self.appearance.out_channels if self.appearance is not None else 0
        cp = self.pose.out_channels if self.pose is not None else 0
        variant, dim = config.variant, config.feature_dim
        self.fusion: nn.Module | None = None
        if variant == "integral":
            self.fusion = GatedFusion(ca, cp, dim, config.convention, config.gate_driver, config.gate_norm)
        elif variant == "no_gating":
            self.fusion = SumFusion(ca, cp, dim, config.convention)
        elif variant == "feature_fuse":
            self.fusion = ConcatFusion(ca, cp, dim)
        if variant == "score_average":
            self.head = None
            self.head_appearance = nn.Linear(ca, config.num_classes)
            self.head_pose = nn.Linear(cp, config.num_classes)
        else:
            head_in = {"appearance": ca, "pose": cp}.get(variant, dim)
            self.head = nn.Linear(head_in, config.num_classes)
        self._init_integration()

    def _init_integration(self) -> None:
        """Integration and classification start from N(0, 0.001) weights, zero biases (section 3.5)."""
        for module in [self.fusion, self.head, getattr(self, "head_appearance", None), getattr(self, "head_pose", None)]:
            if module is None:
                continue
            for m in module.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=0.001)
                    nn.init.zeros_(m.bias)

    # -- streams ---------------------------------------------------------------------------------
    def forward_features(self, rgb: torch.Tensor | None, pose: torch.Tensor | None) -> StreamFeatures:
        fa = self.appearance(rgb) if self.appearance is not None else None
        fp = self.pose(pose) if self.pose is not None else None
        return StreamFeatures(fa, fp)

    # -- integration and classification ----------------------------------------------------------
    def _video_level(self, frame_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, K) frame logits -> (probs, logits) with the convention's frame averaging."""
        if self.config.convention == "released":
            logits = frame_logits.mean(1)
            return torch.softmax(logits, dim=-1), logits
        probs = torch.softmax(frame_logits, dim=-1).mean(1)
        return probs, torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))

    def pose_per_rgb_frame(self, fp: torch.Tensor) -> torch.Tensor:
        """(B, T_pose, C) pose features -> (B, T, C): Table 13 average-pools the T_pose = k*T frames down to T."""
        k = self.config.pose_factor
        if k > 1:
            return fp.reshape(fp.shape[0], fp.shape[1] // k, k, fp.shape[2]).mean(2)
        return fp

    def forward_head(self, features: StreamFeatures) -> ModelOutput:
        fa, fp = features
        variant = self.config.variant
        gate = None
        if variant == "appearance":
            frame_logits = self.head(fa)
        elif variant == "pose":
            frame_logits = self.head(fp)
        else:
            fp_aligned = self.pose_per_rgb_frame(fp)
            if variant == "score_average":
                pa, _ = self._video_level(self.head_appearance(fa))
                pp, _ = self._video_level(self.head_pose(fp_aligned))
                w = self.config.score_weight
                probs = w * pa + (1.0 - w) * pp
                frame_logits = torch.stack((self.head_appearance(fa), self.head_pose(fp_aligned)), dim=1).mean(1)
                logits = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
                return ModelOutput(probs, logits, frame_logits, None, fa, fp)
            b, t = fa.shape[:2]
            fused, gate = self.fusion(fa.reshape(b * t, -1), fp_aligned.reshape(b * t, -1))
            frame_logits = self.head(fused).view(b, t, -1)
            gate = gate.view(b, t, -1) if gate is not None else None
        probs, logits = self._video_level(frame_logits)
        return ModelOutput(probs, logits, frame_logits, gate, fa, fp)

    def forward(self, rgb: torch.Tensor | None, pose: torch.Tensor | None = None) -> ModelOutput:
        """rgb (B, T, 3, S, S) in [0, 1]; pose (B, T_pose, J + 2B, S/4, S/4)."""
        return self.forward_head(self.forward_features(rgb, pose))

    # -- staged training helpers ----------------------------------------------------------------
    def stream_modules(self) -> list[nn.Module]:
        return [m for m in (self.appearance, self.pose) if m is not None]

    def integration_modules(self) -> list[nn.Module]:
        return [m for m in (self.fusion, self.head, getattr(self, "head_appearance", None),
                            getattr(self, "head_pose", None)) if m is not None]
