"""Evaluation metrics on plain probability arrays (numpy), so they are testable without a model.

Accuracies are percentages. Probabilities are video-level (already averaged over a video's test clips by
`average_clips`), as the paper averages 10 clips per video following TSM.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

__all__ = ["average_clips", "topk_correct", "topk_accuracy", "per_class_accuracy", "oracle_accuracy",
           "score_sweep", "confusion_matrix", "gate_histogram", "per_class_mean"]


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.ndim != 1 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"expected probs (N, K) and labels (N,), got {probs.shape} and {labels.shape}")
    return probs, labels


def average_clips(clip_probs: np.ndarray) -> np.ndarray:
    """(N, n_clips, K) -> (N, K): the mean of the clips' probabilities (not of their logits)."""
    clip_probs = np.asarray(clip_probs, dtype=np.float64)
    if clip_probs.ndim != 3:
        raise ValueError(f"expected (N, n_clips, K), got {clip_probs.shape}")
    return clip_probs.mean(axis=1)


def topk_correct(probs: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,): the label is among the k highest scores. Ties are broken towards the lower class index
    (a stable sort), so a constant prediction is not counted correct for every class at once."""
    probs, labels = _check(probs, labels)
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (order == labels[:, None]).any(axis=1)


def topk_accuracy(probs: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    correct = topk_correct(probs, labels, k)
    return float(100.0 * correct.mean()) if correct.size else float("nan")


def per_class_accuracy(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Top-1 accuracy (%) of each class's videos; NaN for classes without test videos."""
    probs, labels = _check(probs, labels)
    num_classes = num_classes or probs.shape[1]
    correct = topk_correct(probs, labels, 1)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            out[c] = 100.0 * correct[mask].mean()
    return out


def oracle_accuracy(probs_a: np.ndarray, probs_b: np.ndarray, labels: np.ndarray,
                    num_classes: int | None = None) -> tuple[float, np.ndarray]:
    """Oracle selection (Tables 10-12): a video counts as correct if either model's top-1 is correct.

    Returns the overall top-1 (%) and the per-class top-1 (%)."""
    correct = topk_correct(probs_a, labels, 1) | topk_correct(probs_b, labels, 1)
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = num_classes or np.asarray(probs_a).shape[1]
    per_class = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            per_class[c] = 100.0 * correct[mask].mean()
    return float(100.0 * correct.mean()) if correct.size else float("nan"), per_class


def score_sweep(probs_a: np.ndarray, probs_p: np.ndarray, labels: np.ndarray,
                weights: Iterable[float] = tuple(np.round(np.linspace(0, 1, 11), 2))) -> list[dict[str, float]]:
    """Figure 5: top-1/top-5 of ``w * P_appearance + (1 - w) * P_pose`` for each appearance weight w."""
    probs_a, labels = _check(probs_a, labels)
    probs_p, _ = _check(probs_p, labels)
    rows = []
    for w in weights:
        mixed = float(w) * probs_a + (1.0 - float(w)) * probs_p
        rows.append({"appearance_weight": float(w), "top1": topk_accuracy(mixed, labels, 1),
                     "top5": topk_accuracy(mixed, labels, 5)})
    return rows


def confusion_matrix(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Counts (K, K): row = true class, column = predicted class (top-1)."""
    probs, labels = _check(probs, labels)
    num_classes = num_classes or probs.shape[1]
    pred = np.argmax(probs, axis=1)
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, pred), 1)
    return matrix


def gate_histogram(values: np.ndarray, bins: int = 20) -> dict[str, list[float]]:
    """Figure 4: distribution of a per-clip mean gate (G averaged over channels and frames), in [0, 1]."""
    values = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    return {"counts": counts.astype(int).tolist(), "edges": edges.tolist(),
            "mean": float(values.mean()) if values.size else float("nan"),
            "std": float(values.std()) if values.size else float("nan")}


def per_class_mean(values: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Table 5: the mean of a per-video value (the gate) over each class's videos; NaN where absent."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            out[c] = float(values[mask].mean())
    return out


def summarize(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """The top-1/top-5 and per-class block that every evaluated model gets."""
    per_class = per_class_accuracy(probs, labels, len(class_names))
    return {"top1": topk_accuracy(probs, labels, 1), "top5": topk_accuracy(probs, labels, 5),
            "num_videos": int(len(labels)),
            "per_class_top1": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, per_class)}}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % by default), as fractions.

    Why: the real-clip figures are a handful of clips (12 of 20 is "60 %" but anything from ~39 % to ~78 % is
    consistent with it); the Wilson interval stays inside [0, 1] and is sane at 0 or n successes."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (items only model A / only model B gets
    right): is a paired accuracy difference more than chance?"""
    n = only_a + only_b
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n)

