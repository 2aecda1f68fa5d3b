"""From class probabilities to one decided label, or ``no_action`` ("none of these").

Why a rule on top of the classifier: a live camera mostly sees people doing none of the model's classes.
A softmax always names one of them, so the product must be able to abstain. Three things make it
abstain, in this order:

1. nobody was detected in the whole window (nothing to recognise);
2. the model's own ``no_action`` class (trained on idle, walking, gesturing, stretching...) is the most
   probable class;
3. the most probable action class is below ``threshold`` (an unfamiliar motion spreads its probability).

The threshold travels in the checkpoint (``extra["decision"]``, calibrated on held-out synthetic clips by
`train.experiment`); ``ia-live --threshold`` overrides it. ``action_score`` is the decided action's
probability, or for ``no_action`` the probability that it is none of the actions, ``1 - max_action_p``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

NO_ACTION = "no_action"

__all__ = ["NO_ACTION", "Decision", "DecisionRule", "calibrate_threshold", "calibrated_rule"]


@dataclass(frozen=True)
class Decision:
    action: str        # a class name, or NO_ACTION
    score: float       # see the module docstring
    reason: str        # "action" | "nobody" | "no_action_class" | "below_threshold"

    @property
    def abstained(self) -> bool:
        return self.action == NO_ACTION


@dataclass(frozen=True)
class DecisionRule:
    threshold: float = 0.0      # minimum probability of the top action class
    calibration: str = ""       # how the threshold was chosen (for the record)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    def decide(self, probs: Sequence[float] | np.ndarray, class_names: Sequence[str], persons: int = 1) -> Decision:
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        if p.shape[0] != len(class_names):
            raise ValueError(f"{p.shape[0]} probabilities for {len(class_names)} classes")
        actions = [i for i, name in enumerate(class_names) if name != NO_ACTION]
        if not actions:
            raise ValueError("the model has no action class")
        best = min(actions, key=lambda i: (-p[i], i))
        p_best = float(p[best])
        none_score = max(0.0, 1.0 - p_best)
        if persons <= 0:
            return Decision(NO_ACTION, none_score, "nobody")
        if NO_ACTION in class_names and p[list(class_names).index(NO_ACTION)] > p_best:
            return Decision(NO_ACTION, none_score, "no_action_class")
        if p_best < self.threshold:
            return Decision(NO_ACTION, none_score, "below_threshold")
        return Decision(str(class_names[best]), p_best, "action")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, extra: Mapping[str, Any] | None, threshold: float | None = None) -> "DecisionRule":
        """The rule stored in a checkpoint's ``extra["decision"]`` (none: threshold 0), with an override."""
        stored = dict((extra or {}).get("decision") or {})
        rule = cls(threshold=float(stored.get("threshold", 0.0)), calibration=str(stored.get("calibration", "")))
        if threshold is not None:
            rule = cls(threshold=float(threshold), calibration="--threshold")
        return rule


def calibrate_threshold(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                        keep: float = 0.95) -> float:
    """The threshold that keeps ``keep`` of the correctly recognised action windows.

    ``probs (N, K)`` are single-window probabilities of held-out clips (never the real evaluation clips),
    ``labels (N,)`` their classes. Among windows of action classes whose most probable class is the true one,
    the threshold is the ``1 - keep`` quantile of that probability: on data like the calibration set,
    abstention then costs 5 % of the correct answers, and anything the model is less sure of is dropped.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if p.ndim != 2 or p.shape[0] != y.shape[0] or p.shape[1] != len(class_names):
        raise ValueError(f"expected probs (N, {len(class_names)}) and labels (N,), got {p.shape} and {y.shape}")
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    action = np.array([class_names[i] != NO_ACTION for i in range(len(class_names))])
    ok = action[y] & (p.argmax(1) == y)
    if not ok.any():
        raise ValueError("no correctly recognised action window to calibrate on")
    return float(np.quantile(p[ok, y[ok]], 1.0 - keep))


def calibrated_rule(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], source: str,
                    keep: float = 0.95) -> dict[str, Any]:
    """`calibrate_threshold` as a checkpoint records it (``extra["decision"]``), with what it costs on the
    calibration windows themselves: the share of ``no_action`` windows and of action windows that abstain.
    ``source`` names the windows (e.g. "the synthetic val split"); `train.experiment` and `tools.calibrate`
    both write their record through this one function."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    threshold = round(calibrate_threshold(p, y, class_names, keep=keep), 4)
    rule = DecisionRule(threshold=threshold, calibration=(
        f"keeps {keep:.0%} of correctly recognised action windows of {source} ({len(y)} windows)"))
    abstained = np.array([rule.decide(pv, class_names).abstained for pv in p])
    result: dict[str, Any] = rule.to_dict()
    if NO_ACTION in class_names:
        none = list(class_names).index(NO_ACTION)
        result["val_no_action_abstained"] = round(float(abstained[y == none].mean()), 4) if (y == none).any() else None
        result["val_action_abstained"] = round(float(abstained[y != none].mean()), 4)
    else:
        result["val_action_abstained"] = round(float(abstained.mean()), 4)
    return result
