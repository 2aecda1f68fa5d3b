"""The paper variant's definitions (sections 3.1-3.4, Tables 4, 6, 13, 14) checked on the model itself."""
from __future__ import annotations

import pytest
import torch

from core.model import PRESETS, build_model, gate_loss, temporal_shift

torch.set_num_threads(2)


def _inputs(config, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, config.frames, 3, config.rgb_size, config.rgb_size, generator=g)
    pose = torch.rand(batch, config.pose_frames, config.num_pose_channels, config.map_size, config.map_size, generator=g)
    return rgb, pose


def _small(**overrides):
    """A narrow, low-resolution paper model: same code paths, a fraction of the cost."""
    base = dict(appearance_width=16, pose_width=16, feature_dim=64, rgb_size=64, map_size=16, num_classes=7,
                skeleton="coco17")
    base.update(overrides)
    return build_model("table14", **base).eval()


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_output_shapes_for_every_preset(preset):
    model = build_model(preset).eval()
    c = model.config
    rgb, pose = _inputs(c)
    with torch.no_grad():
        out = model(rgb, pose)
    k = c.num_classes
    assert out.probs.shape == (1, k) and out.logits.shape == (1, k)
    assert out.frame_logits.shape == (1, c.frames, k)
    assert out.gate.shape == (1, c.frames, c.feature_dim)
    assert out.appearance_features.shape == (1, c.frames, model.appearance.out_channels)
    assert out.pose_features.shape == (1, c.pose_frames, model.pose.out_channels)
    assert torch.allclose(out.probs.sum(1), torch.ones(1), atol=1e-5)
    assert torch.allclose(torch.softmax(out.logits, 1), out.probs, atol=1e-6)
    if preset == "table13":  # ResNet-50 appearance (2048-d) and a 4x denser ResNet-18 pose stream
        assert model.appearance.out_channels == 2048 and model.pose.out_channels == 512
        assert c.pose_frames == 4 * c.frames and c.pose_factor == 4


def test_gate_in_unit_interval_and_pose_driven_gate_ignores_rgb():
    model = _small()
    rgb, pose = _inputs(model.config, batch=2)
    with torch.no_grad():
        a = model(rgb, pose)
        b = model(torch.rand_like(rgb), pose)
        c = model(rgb, torch.rand_like(pose))
    assert a.gate.min() >= 0 and a.gate.max() <= 1
    assert torch.equal(a.gate, b.gate), "pose-driven G must not depend on the RGB input"
    assert not torch.allclose(a.gate, c.gate), "pose-driven G must depend on the pose input"
    assert not torch.allclose(a.probs, b.probs), "the prediction still uses appearance"


@pytest.mark.parametrize("driver,fixed,changed", [("appearance", "pose", "rgb"), ("both", None, None)])
def test_gate_drivers_table6(driver, fixed, changed):
    model = _small(gate_driver=driver)
    rgb, pose = _inputs(model.config, batch=2)
    with torch.no_grad():
        base = model(rgb, pose).gate
        new_rgb = model(torch.rand_like(rgb), pose).gate
        new_pose = model(rgb, torch.rand_like(pose)).gate
    if driver == "appearance":
        assert torch.equal(base, new_pose) and not torch.allclose(base, new_rgb)
    else:
        assert not torch.allclose(base, new_pose) and not torch.allclose(base, new_rgb)


def test_aggregation_is_equation_1():
    """F = G * F'_A + (1 - G) * F'_P, fed per frame to the classifier."""
    model = _small()
    rgb, pose = _inputs(model.config, batch=2)
    with torch.no_grad():
        out = model(rgb, pose)
        fa, fp = out.appearance_features.flatten(0, 1), out.pose_features.flatten(0, 1)
        g = model.fusion.gate(fp)
        fused = g * model.fusion.align_appearance(fa) + (1 - g) * model.fusion.align_pose(fp)
        frame_logits = model.head(fused).view_as(out.frame_logits)
    assert torch.allclose(g.view_as(out.gate), out.gate)
    assert torch.allclose(frame_logits, out.frame_logits, atol=1e-6)
    # paper 3.4: per-frame softmax, probabilities averaged over frames
    assert torch.allclose(torch.softmax(frame_logits, -1).mean(1), out.probs, atol=1e-6)


def test_gate_loss_finite_and_reaches_the_gate():
    model = _small().train()
    rgb, pose = _inputs(model.config, batch=2)
    out = model(rgb, pose)
    loss = gate_loss(out.gate)
    assert torch.isfinite(loss)
    expected = -torch.log(1 - out.gate).mean()
    assert torch.allclose(loss, expected, atol=1e-5)
    loss.backward()
    grad = model.fusion.gate.fc.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    assert model.head.weight.grad is None  # L_gate does not reach the classifier
    saturated = gate_loss(torch.ones(3, 4))
    assert torch.isfinite(saturated) and saturated.item() == pytest.approx(100.0)  # BCE's log clamp


@pytest.mark.parametrize("shift_div,past_first", [(8, False), (4, True)])
def test_temporal_shift_moves_exactly_the_configured_channels(shift_div, past_first):
    b, t, c, h, w = 2, 5, 16, 3, 3
    x = torch.randn(b * t, c, h, w)
    y = temporal_shift(x, t, shift_div, past_first).view(b, t, c, h, w)
    xv = x.view(b, t, c, h, w)
    fold = c // shift_div
    first, second = (slice(0, fold), slice(fold, 2 * fold))
    past, future = (first, second) if past_first else (second, first)
    assert torch.equal(y[:, 1:, past], xv[:, :-1, past]) and torch.equal(y[:, 0, past], torch.zeros_like(y[:, 0, past]))
    assert torch.equal(y[:, :-1, future], xv[:, 1:, future]) and torch.equal(y[:, -1, future], torch.zeros_like(y[:, -1, future]))
    assert torch.equal(y[:, :, 2 * fold:], xv[:, :, 2 * fold:])


def test_backbone_shift_fraction_follows_convention():
    paper, released = build_model("table14"), build_model("released_kinetics50")
    assert paper.appearance.backbone.layer1[0].shift_div == 8  # 1/8 + 1/8
    assert released.appearance.backbone.layer1[0].shift_div == 4  # 1/4 + 1/4
    assert paper.pose.backbone.with_stem is False and not hasattr(paper.pose.backbone, "conv1")


def test_pose_temporal_pooling_table13():
    """With T_pose = 4 T, the pose features are average-pooled 4x1x1 before integration."""
    model = _small(frames=2, tau=8, pose_frames=8, pose_tau=2)
    rgb, pose = _inputs(model.config)
    with torch.no_grad():
        out = model(rgb, pose)
        pooled = out.pose_features.view(1, 2, 4, -1).mean(2).flatten(0, 1)
        g = model.fusion.gate(pooled)
    assert out.pose_features.shape[1] == 8 and out.gate.shape[1] == 2
    assert torch.allclose(g.view_as(out.gate), out.gate, atol=1e-6)


def test_table4_variants():
    shared = _small(variant="score_average", score_weight=0.3)
    rgb, pose = _inputs(shared.config, batch=2)
    app = _small(variant="appearance")
    pos = _small(variant="pose")
    app.appearance.load_state_dict(shared.appearance.state_dict())
    app.head.load_state_dict(shared.head_appearance.state_dict())
    pos.pose.load_state_dict(shared.pose.state_dict())
    pos.head.load_state_dict(shared.head_pose.state_dict())
    with torch.no_grad():
        avg = shared(rgb, pose)
        pa, pp = app(rgb, None).probs, pos(None, pose).probs
    assert torch.allclose(avg.probs, 0.3 * pa + 0.7 * pp, atol=1e-6)
    assert avg.gate is None
    for variant in ("feature_fuse", "no_gating"):
        model = _small(variant=variant)
        with torch.no_grad():
            out = model(rgb, pose)
        assert out.gate is None and out.probs.shape == (2, 7)
    assert app.pose is None and pos.appearance is None


def test_config_rejects_inconsistent_clips():
    with pytest.raises(ValueError, match="span the same time"):
        build_model("table14", pose_frames=16, pose_tau=8)
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("table99")
