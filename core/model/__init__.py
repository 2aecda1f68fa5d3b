"""IntegralAction model: `build_model(preset_or_config)`; see `config.py` for presets and variants."""
from __future__ import annotations

from typing import Any

from core.model.config import PRESETS, ModelConfig, resolve_config
from core.model.fusion import gate_loss
from core.model.integral_action import IntegralAction, ModelOutput, StreamFeatures
from core.model.temporal_shift import TemporalShift, temporal_shift

__all__ = ["PRESETS", "IntegralAction", "ModelConfig", "ModelOutput", "StreamFeatures", "TemporalShift",
           "build_model", "gate_loss", "resolve_config", "temporal_shift"]


def build_model(preset_or_config: str | ModelConfig | dict = "table14", class_names: list[str] | None = None,
                **overrides: Any) -> IntegralAction:
    """Build a randomly initialised model from a preset name or config, with field overrides.

    ``class_names`` also sets ``num_classes`` when given.
    """
    if class_names is not None:
        overrides.setdefault("num_classes", len(class_names))
    model = IntegralAction(resolve_config(preset_or_config, **overrides))
    if class_names is not None:
        model.class_names = list(class_names)
    return model
