"""Integration of per-frame appearance and pose features (pytorchvideo-style fusion modules).

All blocks act on per-frame features ``(N, C)`` where N = batch * frames; a kernel-1 temporal convolution is
a per-frame linear map, so it is an `nn.Linear` here (the released code's 1x1 `Conv2d` weights are
reshaped on import).

G is always the **appearance weight** (paper eq. 1): ``F = G * F'_A + (1 - G) * F'_P``. The released code's
gate g weights the pose stream; it equals ``1 - G`` and is converted at the gate's output, so the
aggregation formula and the gate loss are the same function in both conventions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AlignmentBlock(nn.Module):
    """TCB: semantic (channel-wise) alignment of one stream before the streams are added.

    paper: conv1 -> LayerNorm -> ReLU.  released: conv1 -> BN -> ReLU -> LayerNorm (LayerNorm only when the
    gate is used; the released no-gating model has none).
    """

    def __init__(self, in_dim: int, out_dim: int, convention: str, layer_norm: bool = True) -> None:
        super().__init__()
        self.convention = convention
        self.conv = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim) if convention == "released" else None
        self.norm = nn.LayerNorm(out_dim) if layer_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.convention == "released":
            x = F.relu(self.bn(x))
            return self.norm(x) if self.norm is not None else x
        x = self.norm(x) if self.norm is not None else x
        return F.relu(x)


class GatingBlock(nn.Module):
    """CGB: predicts the channel-wise gate G (appearance weight) from the driving feature.

    paper: conv1 [-> BN] -> sigmoid gives G.  released: Linear -> sigmoid gives g (pose weight), G = 1 - g.

    Why BN is optional (``norm="batchnorm"``, the paper's text) and off by default: in training mode BN
    re-centres each gate channel over the batch, so the batch mean of the pre-activation is BN's beta
    whatever the fc does. The fc can then only spread G around a mean it cannot move, and L_gate's gradient
    reaches beta alone (lambda * mean(G) / C per channel): measured, mean G stayed at 0.51 / 0.48 / 0.43 for
    lambda 0 / 1.5 / 5, against 0.50 / 0.26 / 0.14 without the norm (docs/model.md).
    """

    def __init__(self, in_dim: int, out_dim: int, convention: str, norm: str = "none") -> None:
        super().__init__()
        self.convention = convention
        self.fc = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim) if convention == "paper" and norm == "batchnorm" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.convention == "released":
            return 1.0 - torch.sigmoid(self.fc(x))
        x = self.fc(x)
        return torch.sigmoid(self.bn(x) if self.bn is not None else x)


class GatedFusion(nn.Module):
    """Pose-driven (or appearance-/both-driven, Table 6) feature integration, paper section 3.3."""

    def __init__(self, appearance_dim: int, pose_dim: int, dim: int, convention: str, driver: str = "pose",
                 gate_norm: str = "none") -> None:
        super().__init__()
        self.driver = driver
        self.align_appearance = AlignmentBlock(appearance_dim, dim, convention)
        self.align_pose = AlignmentBlock(pose_dim, dim, convention)
        driver_dim = {"pose": pose_dim, "appearance": appearance_dim, "both": appearance_dim + pose_dim}[driver]
        self.gate = GatingBlock(driver_dim, dim, convention, gate_norm)

    def parts(self, fa: torch.Tensor, fp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(G * A(f_a), (1 - G) * P(f_p), G)``: the two gated halves whose sum is the fused feature (kept
        apart so that `tools.gate_contribution` can measure how much each one steers the head)."""
        drive = {"pose": fp, "appearance": fa}.get(self.driver)
        if drive is None:
            drive = torch.cat((fa, fp), dim=-1)
        g = self.gate(drive)
        return g * self.align_appearance(fa), (1.0 - g) * self.align_pose(fp), g

    def forward(self, fa: torch.Tensor, fp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        appearance, pose, g = self.parts(fa, fp)
        return appearance + pose, g


class SumFusion(nn.Module):
    """'Ours without gating' (Table 4): aligned features simply added."""

    def __init__(self, appearance_dim: int, pose_dim: int, dim: int, convention: str) -> None:
        super().__init__()
        layer_norm = convention == "paper"
        self.align_appearance = AlignmentBlock(appearance_dim, dim, convention, layer_norm=layer_norm)
        self.align_pose = AlignmentBlock(pose_dim, dim, convention, layer_norm=layer_norm)

    def forward(self, fa: torch.Tensor, fp: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.align_appearance(fa) + self.align_pose(fp), None


class ConcatFusion(nn.Module):
    """'Feature fuse' (Table 4): F_A and F_P concatenated through an additional fully-connected layer."""

    def __init__(self, appearance_dim: int, pose_dim: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(appearance_dim + pose_dim, dim)

    def forward(self, fa: torch.Tensor, fp: torch.Tensor) -> tuple[torch.Tensor, None]:
        return F.relu(self.fc(torch.cat((fa, fp), dim=-1))), None


def gate_loss(gate: torch.Tensor) -> torch.Tensor:
    """L_gate = -log(1 - G) averaged over frames and channels (paper eq. 2).

    Identical to the released code's ``BCE(g, 1)`` with g = 1 - G, including its clamp of the log at -100,
    so both conventions train with the same regulariser. Computed in float32 (unsafe under autocast).
    """
    pose_weight = (1.0 - gate).float()
    return F.binary_cross_entropy(pose_weight, torch.ones_like(pose_weight))
