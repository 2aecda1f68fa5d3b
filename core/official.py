"""Map the authors' released `state_dict` keys (mks0601/IntegralAction_RELEASE) onto this model.

Real checkpoints are saved as ``{'network': state_dict}`` from a DataParallel model (``module.`` prefix).
Two released tensors are never used by the released forward and are dropped on purpose:
``pose_backbone.conv1/bn1`` (the pose stream skips the stem) and ``aggregator.pose_temporal_conv``
(dead code with ``pose_frame_factor = 1``).
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

from core.errors import UserError
from core.model import ModelConfig

# (official regex, our replacement); first match wins.
_RENAMES: list[tuple[str, str]] = [
    (r"^img_backbone\.", "appearance.backbone."),
    (r"^pose_backbone\.(conv1|bn1)\.", ""),  # unused by the released forward
    (r"^pose_backbone\.", "pose.backbone."),
    (r"^pose2feat\.conv\.0\.", "pose.front.conv."),
    (r"^pose2feat\.conv\.1\.", "pose.front.bn."),
    (r"^aggregator\.pose_temporal_conv\.", ""),  # dead code in the released config
    (r"^aggregator\.pose_gate_fc\.0\.", "fusion.gate.fc."),
    (r"^aggregator\.img_conv\.0\.", "fusion.align_appearance.conv."),
    (r"^aggregator\.img_conv\.1\.", "fusion.align_appearance.bn."),
    (r"^aggregator\.img_norm\.", "fusion.align_appearance.norm."),
    (r"^aggregator\.pose_conv\.0\.", "fusion.align_pose.conv."),
    (r"^aggregator\.pose_conv\.1\.", "fusion.align_pose.bn."),
    (r"^aggregator\.pose_norm\.", "fusion.align_pose.norm."),
    (r"^classifier\.fc\.0\.", "head."),
]


class OfficialCheckpointError(UserError, ValueError):
    pass


def unwrap_official(obj: object) -> dict[str, torch.Tensor]:
    """Accept ``{'network': sd}``, a bare state_dict, with or without the DataParallel ``module.`` prefix."""
    if isinstance(obj, Mapping) and "network" in obj and isinstance(obj["network"], Mapping):
        obj = obj["network"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise OfficialCheckpointError("not an IntegralAction release checkpoint (expected {'network': state_dict})")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def official_config_overrides(state_dict: Mapping[str, torch.Tensor]) -> dict[str, int]:
    """Facts readable from the tensors themselves: classes, pose-map channels, stream depths."""
    out: dict[str, int] = {}
    if "classifier.fc.0.weight" in state_dict:
        out["num_classes"] = int(state_dict["classifier.fc.0.weight"].shape[0])
    if "pose2feat.conv.0.weight" in state_dict:
        out["pose_channels"] = int(state_dict["pose2feat.conv.0.weight"].shape[1])
    return out


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor], config: ModelConfig,
                                dtype: torch.dtype = torch.float32) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return (our state_dict for `config`'s variant, official keys deliberately dropped).

    Floating tensors are cast to `dtype` (the fixtures store float16 and ran the official forward in
    float32). Keys of modules the variant does not have (e.g. the pose stream of an appearance-only model)
    are dropped too, as the released code's ``strict=True`` load into every mode allows.
    """
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state_dict.items():
        for pattern, repl in _RENAMES:
            if re.match(pattern, key):
                new = re.sub(pattern, repl, key) if repl else ""
                break
        else:
            raise OfficialCheckpointError(f"unexpected key in the released checkpoint: {key}")
        if not new:
            dropped.append(key)
            continue
        if value.is_floating_point():
            value = value.to(dtype)
        if new.endswith("conv.weight") and new.startswith("fusion.") and value.dim() == 4:
            value = value.flatten(1)  # 1x1 Conv2d -> Linear
        if ".norm." in new and value.dim() == 3:
            value = value.flatten()  # LayerNorm([C, 1, 1]) -> LayerNorm(C)
        out[new] = value
    keep = []
    if not config.uses_pose:
        keep = ["pose.", "fusion."]
    elif not config.uses_appearance:
        keep = ["appearance.", "fusion."]
    if keep:
        for key in [k for k in out if any(k.startswith(p) for p in keep)]:
            dropped.append(key)
            del out[key]
    return out, dropped
