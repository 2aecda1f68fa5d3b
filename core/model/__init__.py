"""IntegralAction model: `build_model(preset_or_config)`; see `config.py` for presets and variants.

The network classes are imported on first use (PEP 562): a process that only needs a `ModelConfig` (every
live pipeline process unpickles one) does not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from core.model.config import PRESETS, ModelConfig, resolve_config

if TYPE_CHECKING:
    from core.model.fusion import gate_loss
    from core.model.integral_action import IntegralAction, ModelOutput, StreamFeatures
    from core.model.temporal_shift import TemporalShift, temporal_shift

__all__ = ["PRESETS", "IntegralAction", "ModelConfig", "ModelOutput", "StreamFeatures", "TemporalShift",
           "build_model", "gate_loss", "resolve_config", "temporal_shift"]

_LAZY = {"gate_loss": "core.model.fusion", "IntegralAction": "core.model.integral_action",
         "ModelOutput": "core.model.integral_action", "StreamFeatures": "core.model.integral_action",
         "TemporalShift": "core.model.temporal_shift", "temporal_shift": "core.model.temporal_shift"}


def _load() -> None:
    """Import the network modules and bind their names here. Importing a submodule sets the package
    attribute of the same name (``temporal_shift``, the module) over the function; binding afterwards
    restores the function, as the eager ``from ... import`` used to."""
    for name, module in _LAZY.items():
        globals()[name] = getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _load()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(preset_or_config: str | ModelConfig | dict = "table14", class_names: list[str] | None = None,
                **overrides: Any) -> IntegralAction:
    """Build a randomly initialised model from a preset name or config, with field overrides.

    ``class_names`` also sets ``num_classes`` when given.
    """
    _load()
    if class_names is not None:
        overrides.setdefault("num_classes", len(class_names))
    model = IntegralAction(resolve_config(preset_or_config, **overrides))
    if class_names is not None:
        model.class_names = list(class_names)
    return model
