"""tools.gate_contribution splits the integrated logits exactly (its numbers in docs/results.md rely on it)."""
from __future__ import annotations

import pytest
import torch

from core.model import build_model
from tools.gate_contribution import split_logits

DIMS = dict(appearance_width=8, pose_width=8, feature_dim=32, frames=2, tau=8, rgb_size=32, map_size=8,
            short_side=36)


@pytest.mark.parametrize("driver,pose_frames", [("pose", 2), ("pose", 4), ("both", 2), ("appearance", 2)])
def test_halves_plus_bias_are_the_models_frame_logits(driver, pose_frames):
    torch.manual_seed(0)
    model = build_model("fast", class_names=["a", "b", "c"], variant="integral", gate_driver=driver,
                        pose_frames=pose_frames, pose_tau=16 // pose_frames, **DIMS).eval()
    for p in model.fusion.parameters():          # a gate far from 0.5 and features of both signs
        torch.nn.init.normal_(p, std=0.5)
    rgb = torch.rand(2, 2, 3, 32, 32)
    pose = torch.rand(2, pose_frames, model.config.num_pose_channels, 8, 8)
    with torch.no_grad():
        out = model(rgb, pose)
        la, lp = split_logits(model, rgb, pose)
    expected = out.frame_logits.mean(1)
    torch.testing.assert_close(la + lp + model.head.bias, expected, rtol=1e-5, atol=1e-5)
    assert la.abs().sum() > 0 and lp.abs().sum() > 0


def test_real_clip_index_takes_labels_from_names_and_needs_every_pose_cache(tmp_path):
    """`--real DIR --pose-cache CACHE`: the index holds each `<label>__*.mp4` clip with its cache, skips
    unlabelled files, and names the first missing cache or unknown label instead of failing later."""
    import json

    from core.errors import UserError
    from tools.gate_contribution import real_index

    clips, cache = tmp_path / "clips", tmp_path / "cache"
    clips.mkdir()
    cache.mkdir()
    for name in ("waving__a.mp4", "squats__b.avi", "unlabelled.mp4"):
        (clips / name).write_bytes(b"x")
    (cache / "waving__a.npz").write_bytes(b"x")
    names = ["waving", "squats", "no_action"]
    with pytest.raises(UserError, match=r"squats__b\.npz"):
        real_index(clips, cache, names, tmp_path / "out")
    (cache / "squats__b.npz").write_bytes(b"x")
    index = real_index(clips, cache, names, tmp_path / "out")
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    assert [(r["label_name"], r["label"]) for r in rows] == [("squats", 1), ("waving", 0)]
    assert (index.parent / "classes.txt").read_text().split() == names
    (clips / "bowing__c.mp4").write_bytes(b"x")
    with pytest.raises(UserError, match="'bowing' is not one of"):
        real_index(clips, cache, names, tmp_path / "out2")
