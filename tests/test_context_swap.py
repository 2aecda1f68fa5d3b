"""Context swap (train.context_swap): stage-2 clips that carry another class's appearance input.

These pin what a swap may change: only the appearance input, only towards a differently labelled clip, in
the asked share, reproducibly. What it does to the trained model is measured by the experiment
(docs/results.md, the context-swap rows), where the synthetic context is as predictive as in real data.
"""
from __future__ import annotations

import torch

from train.context_swap import swap_appearance, swapped_copy


def _batch(key: str = "fa") -> dict:
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    shape = (8, 2, 5) if key == "fa" else (8, 3, 2, 4, 4)
    x = torch.arange(8, dtype=torch.float32).view(8, *([1] * (len(shape) - 1))).expand(shape).clone()
    return {key: x, "fp": torch.randn(8, 2, 5), "label": labels}


def test_swap_takes_appearance_from_a_clip_of_another_label_and_nothing_else():
    for key in ("fa", "rgb"):
        batch = _batch(key)
        out = swap_appearance(batch, 1.0, torch.Generator().manual_seed(0))
        assert torch.equal(out["fp"], batch["fp"]) and torch.equal(out["label"], batch["label"])
        source = out[key].reshape(8, -1)[:, 0].long()      # which clip each appearance input came from
        assert out["context_swapped"].all()
        assert (batch["label"][source] != batch["label"]).all(), source
        assert torch.equal(batch[key], _batch(key)[key])     # the input batch is not modified


def test_swap_share_and_reproducibility():
    batch = {"fa": torch.arange(4000.0).view(4000, 1), "label": torch.arange(4000) % 10}
    a = swap_appearance(batch, 0.3, torch.Generator().manual_seed(5))
    b = swap_appearance(batch, 0.3, torch.Generator().manual_seed(5))
    assert torch.equal(a["fa"], b["fa"])
    assert 0.26 < a["context_swapped"].float().mean() < 0.34
    assert swap_appearance(batch, 0.0, torch.Generator()) is batch


def test_swapped_copy_moves_every_item_to_another_label():
    labels = torch.arange(30) % 6
    x = torch.arange(30.0).view(30, 1, 1).expand(30, 2, 3)
    out = swapped_copy(x, labels, seed=3)
    source = out[:, 0, 0].long()
    assert (labels[source] != labels).all()
    assert torch.equal(out, swapped_copy(x, labels, seed=3))
