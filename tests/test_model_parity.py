"""Parity of the released-code variant with tensors produced by the authors' own code.

The fixtures (`../shared/reference/*.pt`) hold seeded random weights, inputs and every intermediate of the
official test forward. Tolerances follow the fixtures' README: ~1e-4 absolute on features (relative ~1e-5 for
large maps), 1e-5 on probabilities and the gate.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.checkpoint import load_checkpoint
from core.model import build_model
from core.official import convert_official_state_dict, official_config_overrides
from tests.conftest import shared_path

torch.set_num_threads(2)

FEATURE_ATOL = 1e-4
PROB_ATOL = 1e-5


@functools.lru_cache(maxsize=None)
def _fixture(name: str) -> dict:
    return torch.load(shared_path("reference", name), weights_only=True)


def _fixture_state_dict(fixture: dict) -> dict[str, torch.Tensor]:
    return {k: (v.float() if v.is_floating_point() else v) for k, v in fixture["state_dict"].items()}


def _stored_pose_stack(outputs: dict) -> torch.Tensor:
    stack = torch.zeros(outputs["pose_input_shape"]).reshape(-1)
    stack[outputs["pose_input_nz_index"].long()] = outputs["pose_input_nz_value"]
    return stack.reshape(outputs["pose_input_shape"])


def _released_model(fixture: dict, preset: str, variant: str = "integral"):
    sd = _fixture_state_dict(fixture)
    model = build_model(preset, variant=variant, **official_config_overrides(sd)).eval()
    converted, dropped = convert_official_state_dict(sd, model.config)
    model.load_state_dict(converted, strict=True)
    assert all(k.startswith(("pose_backbone.conv1", "pose_backbone.bn1", "aggregator.pose_temporal_conv",
                             "pose.", "fusion.", "appearance.")) for k in dropped)
    return model


def _run_with_hooks(model, rgb, pose) -> tuple[object, dict[str, torch.Tensor]]:
    captured: dict[str, torch.Tensor] = {}

    def hook(name, pooled):
        def fn(_module, _inp, out):
            captured[name] = out.mean((2, 3)) if pooled else out
        return fn

    handles = []
    named = dict(model.named_modules())
    spec = {
        "img_backbone.stem_pooled": ("appearance.backbone.maxpool", True),
        "img_backbone_out": ("appearance.backbone", False),
        "pose2feat_out_pooled": ("pose.front", True),
        "pose_backbone_out": ("pose.backbone", False),
        "gate_prelogit": ("fusion.gate.fc", False),
        "agg_pose_norm": ("fusion.align_pose", False),
        "agg_img_norm": ("fusion.align_appearance", False),
        "agg_pose_conv": ("fusion.align_pose.bn", False),
        "agg_img_conv": ("fusion.align_appearance.bn", False),
    }
    for i in range(1, 5):
        spec[f"img_backbone.layer{i}_pooled"] = (f"appearance.backbone.layer{i}", True)
        spec[f"pose_backbone.layer{i}_pooled"] = (f"pose.backbone.layer{i}", True)
    for ref_name, (module_name, pooled) in spec.items():
        if module_name in named:
            handles.append(named[module_name].register_forward_hook(hook(ref_name, pooled)))
    with torch.no_grad():
        out = model(rgb, pose)
    for h in handles:
        h.remove()
    if "agg_pose_conv" in captured:  # the released Sequential ends with its ReLU
        captured["agg_pose_conv"] = F.relu(captured["agg_pose_conv"])
        captured["agg_img_conv"] = F.relu(captured["agg_img_conv"])
    return out, captured


def _assert_close(name: str, ours: torch.Tensor, ref: torch.Tensor, atol: float) -> None:
    ours = ours.reshape(ref.shape).float()
    diff = (ours - ref).abs().max().item()
    # large-magnitude maps get the README's relative allowance (~1e-5 of their max)
    allowed = max(atol, 1e-5 * ref.abs().max().item())
    assert diff <= allowed, f"{name}: max abs diff {diff:.3g} > {allowed:.3g}"


RGBPOSE = [("official_rgbpose_k50.pt", "released_kinetics50"), ("official_rgbpose_ntu.pt", "released_ntu")]


@pytest.mark.parametrize("fixture_name,preset", RGBPOSE)
def test_released_rgbpose_reproduces_official_forward(fixture_name, preset):
    fixture = _fixture(fixture_name)
    ref = fixture["outputs"]
    model = _released_model(fixture, preset)
    rgb = fixture["inputs"]["video"].float()
    pose = _stored_pose_stack(ref).view(rgb.shape[0], -1, *ref["pose_input_shape"][1:])
    out, captured = _run_with_hooks(model, rgb, pose)

    compared = 0
    for name, tensor in captured.items():
        if name in ref:
            _assert_close(name, tensor, ref[name], FEATURE_ATOL)
            compared += 1
    assert compared >= 12
    _assert_close("img_feat_pooled", out.appearance_features, ref["img_feat_pooled"], FEATURE_ATOL)
    _assert_close("pose_feat_pooled", out.pose_features, ref["pose_feat_pooled"], FEATURE_ATOL)
    _assert_close("frame_logits", out.frame_logits, ref["frame_logits"], FEATURE_ATOL)
    _assert_close("logits", out.logits, ref["logits"], FEATURE_ATOL)
    # the released gate g weights the pose stream: g = 1 - G
    _assert_close("pose_gate_full", 1 - out.gate, ref["pose_gate_full"], PROB_ATOL)
    _assert_close("pose_gate", (1 - out.gate).mean((1, 2)), ref["pose_gate"], PROB_ATOL)
    _assert_close("action_prob", out.probs, ref["action_prob"], PROB_ATOL)
    assert torch.equal(out.probs.argmax(1), ref["action_prob"].argmax(1))


@pytest.mark.parametrize("fixture_name,variant", [("official_rgb_only_k50.pt", "appearance"),
                                                  ("official_pose_only_k50.pt", "pose")])
def test_released_single_stream_modes(fixture_name, variant):
    main = _fixture("official_rgbpose_k50.pt")
    fixture = _fixture(fixture_name)
    assert fixture.get("state_dict_sha256") == main["state_dict_sha256"]
    ref = fixture["outputs"]
    model = _released_model(main, "released_kinetics50", variant=variant)
    rgb = main["inputs"]["video"].float() if variant == "appearance" else None
    pose = None
    if variant == "pose":
        pose = _stored_pose_stack(ref).view(2, -1, *ref["pose_input_shape"][1:])
    out, captured = _run_with_hooks(model, rgb, pose)
    for name, tensor in captured.items():
        if name in ref:
            _assert_close(name, tensor, ref[name], FEATURE_ATOL)
    feats = out.appearance_features if variant == "appearance" else out.pose_features
    _assert_close("features", feats, ref["img_feat_pooled" if variant == "appearance" else "pose_feat_pooled"], FEATURE_ATOL)
    _assert_close("frame_logits", out.frame_logits, ref["frame_logits"], FEATURE_ATOL)
    _assert_close("action_prob", out.probs, ref["action_prob"], PROB_ATOL)
    assert out.gate is None


def test_import_official_checkpoint_round_trip(tmp_path):
    """A release-format file ({'network': ...} with 'module.' keys) through tools.import_official."""
    from tools.import_official import main as import_main

    fixture = _fixture("official_rgbpose_k50.pt")
    ref = fixture["outputs"]
    release = {"epoch": 39, "network": {"module." + k: v for k, v in fixture["state_dict"].items()}}
    src, dst = tmp_path / "snapshot_39.pth.tar", tmp_path / "k50.pt"
    torch.save(release, src)
    assert import_main([str(src), str(dst), "--dataset", "kinetics50"]) == 0
    model = load_checkpoint(dst)
    assert model.config.convention == "released" and model.config.num_classes == 50
    assert len(model.class_names) == 50
    rgb = fixture["inputs"]["video"].float()
    pose = _stored_pose_stack(ref).view(2, 8, *ref["pose_input_shape"][1:])
    with torch.no_grad():
        out = model(rgb, pose)
    _assert_close("action_prob", out.probs, ref["action_prob"], PROB_ATOL)
    _assert_close("pose_gate", (1 - out.gate).mean((1, 2)), ref["pose_gate"], PROB_ATOL)


def test_import_official_rejects_wrong_dataset(tmp_path, capsys):
    from tools.import_official import main as import_main

    fixture = _fixture("official_rgbpose_k50.pt")
    src = tmp_path / "k50.pth"
    torch.save({"network": {"module." + k: v for k, v in fixture["state_dict"].items()}}, src)
    assert import_main([str(src), str(tmp_path / "x.pt"), "--dataset", "ntu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes" in err[0]


@pytest.mark.parametrize("fixture_name,preset", RGBPOSE)
def test_keypoints_to_prediction_end_to_end(fixture_name, preset):
    """Stored keypoints -> core.posemaps -> model reproduces the official action_prob (the full test path)."""
    from core.posemaps import render_pose_maps

    fixture = _fixture(fixture_name)
    ref, inputs = fixture["outputs"], fixture["inputs"]
    model = _released_model(fixture, preset)
    c = model.config
    coords, scores = inputs["pose_coords"].numpy(), inputs["pose_scores"].numpy()
    b, t = coords.shape[:2]
    stacks = [render_pose_maps(coords[i], scores[i], c.skeleton, size=c.map_size, top_k=c.top_k_persons,
                               score_thr=c.score_thr, threshold_mode=c.threshold_mode) for i in range(b)]
    pose = torch.from_numpy(np.stack(stacks))
    assert pose.shape == (b, t, *ref["pose_input_shape"][1:])
    with torch.no_grad():
        out = model(inputs["video"].float(), pose)
    _assert_close("action_prob", out.probs, ref["action_prob"], PROB_ATOL)
    _assert_close("pose_gate", (1 - out.gate).mean((1, 2)), ref["pose_gate"], PROB_ATOL)
