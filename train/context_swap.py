"""Context swap: stage-2 clips whose appearance input comes from a clip of another class.

Why: measured on the synthetic benchmark (docs/results.md, "Reading"), the paper's stage 2 on in-context
data alone lets the head after the gate re-amplify the gated appearance features, so out of context (and on
real scenes, which no rendered scene resembles) the integrated model falls below its own pose stream. A
fraction of training clips whose scene and object say another class gives the integration the one thing
in-context data never shows it: that appearance can be wrong while the pose is right. The label stays the
clip's own (its pose is untouched), so the streams, the gate's driver and the loss are the paper's; only
what stage 2 sees changes. Works on raw batches (``rgb``) and on pre-computed features (``fa``) alike.
"""
from __future__ import annotations

from typing import Any

import torch


def swap_appearance(batch: dict[str, Any], p: float, generator: torch.Generator) -> dict[str, Any]:
    """A copy of `batch` where each clip, with probability `p`, takes the appearance input of another
    clip of the batch with a different label (clips with no such partner keep their own)."""
    key = "fa" if batch.get("fa") is not None else "rgb"
    x = batch.get(key)
    if p <= 0 or x is None:
        return batch
    labels = batch["label"]
    b = labels.shape[0]
    partner = torch.randperm(b, generator=generator)
    # a partner of the same class would leave the context right: look for a differently labelled one
    for _ in range(3):
        same = labels[partner] == labels
        if not same.any():
            break
        partner = torch.where(same, torch.randperm(b, generator=generator), partner)
    chosen = (torch.rand(b, generator=generator) < p) & (labels[partner] != labels)
    mask = chosen.view(b, *([1] * (x.dim() - 1)))
    return {**batch, key: torch.where(mask, x[partner], x), "context_swapped": chosen}


def swapped_copy(x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Every item's appearance features replaced by another item's of a different label (a fixed,
    seeded derangement): a validation proxy for out-of-context clips that uses no test data."""
    gen = torch.Generator().manual_seed(seed)
    batch = swap_appearance({"fa": x, "label": labels}, 1.0, gen)
    return batch["fa"]
