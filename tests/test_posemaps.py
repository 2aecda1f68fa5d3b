"""Pose-map rendering: parity with the released renderer's fixture stacks, flips, thresholds, top-k."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from core.posemaps import render_pose_maps
from core.skeletons import NTU25, OPENPOSE18, bone_flip_map, flip_keypoints
from tests.conftest import shared_path
from tools.bench.posemaps import naive_render, synthetic_people

F01 = np.float32(0.1)


@functools.lru_cache(maxsize=None)
def _load(name: str) -> dict:
    return torch.load(shared_path("reference", name), weights_only=True)


def _fixture(name: str):
    data = _load(name)
    inputs = data["inputs"] if "inputs" in data else _load("official_rgbpose_k50.pt")["inputs"]
    out = data["outputs"]
    dense = torch.zeros(out["pose_input_shape"]).reshape(-1)
    dense[out["pose_input_nz_index"].long()] = out["pose_input_nz_value"]
    coords = inputs["pose_coords"].numpy()
    scores = inputs["pose_scores"].numpy()
    b, t = coords.shape[:2]
    return (coords.reshape(b * t, *coords.shape[2:]), scores.reshape(b * t, *scores.shape[2:]),
            dense.reshape(out["pose_input_shape"]).numpy(), data["config"])


@pytest.mark.parametrize("name", ["official_rgbpose_k50.pt", "official_pose_only_k50.pt", "official_rgbpose_ntu.pt"])
def test_fixture_parity(name):
    coords, scores, expected, cfg = _fixture(name)
    skeleton = "ntu25" if cfg["dataset"] == "NTU" else "openpose18"
    got = render_pose_maps(coords, scores, skeleton, size=cfg["input_hm_shape"][0], sigma=cfg["hm_sigma"],
                           paf_width=cfg["paf_sigma"], top_k=cfg["top_k_pose"], score_thr=cfg["pose_score_thr"])
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= 1e-6
    # the PAF support (membership decisions at the rectangle edges) must match exactly
    j = len(cfg["joint_names"])
    assert np.array_equal(got[:, j:] != 0, expected[:, j:] != 0)


def test_fixture_edge_cases_are_exercised():
    """The K50 fixture holds float32(0.1) scores: the paper's thresholds must NOT reproduce it, or
    the parity test above would not be checking the released threshold rule."""
    coords, scores, expected, _ = _fixture("official_rgbpose_k50.pt")
    assert np.any(scores == F01)
    paper = render_pose_maps(coords, scores, "openpose18", threshold_mode="paper")
    assert np.abs(paper - expected).max() > 0.5


def test_naive_baseline_agrees_with_fixture_and_fast_path():
    coords, scores, expected, _ = _fixture("official_rgbpose_ntu.pt")
    assert np.abs(naive_render(coords[:4], scores[:4], NTU25) - expected[:4]).max() <= 1e-6
    rng = np.random.default_rng(3)
    c, s = synthetic_people(rng, 3, 4, height=(10.0, 90.0))  # big people leave the grid
    c[0, 0] = rng.uniform(-20, 80, size=(18, 2))  # long random bones crossing the border
    c[1, 1, 3] = c[1, 1, 2]  # a zero-length bone
    c[2, 2, :, 0] = np.float32(17.0)  # vertical bones with integer x
    fast = render_pose_maps(c, s, OPENPOSE18)
    slow = naive_render(c, s, OPENPOSE18)
    assert np.abs(fast - slow).max() <= 1e-6
    assert np.array_equal(fast[:, 18:] != 0, slow[:, 18:] != 0)


def test_flip_gives_mirrored_stack():
    rng = np.random.default_rng(7)
    coords, scores = synthetic_people(rng, 4, 3)
    coords += rng.uniform(-0.3, 0.3, coords.shape).astype(np.float32)  # off-integer: no boundary ties
    size, j = 56, OPENPOSE18.num_joints
    maps = render_pose_maps(coords, scores, OPENPOSE18, size)
    fc, fs = flip_keypoints(coords, scores, OPENPOSE18, size)
    flipped = render_pose_maps(fc, fs, OPENPOSE18, size)
    mirror = maps[..., ::-1]
    perm = np.asarray(OPENPOSE18.flip_perm)
    # heatmaps: mirrored joint perm[k] comes from joint k
    np.testing.assert_allclose(flipped[:, perm], mirror[:, :j], atol=1e-5)  # 55 - x rounds in float32
    bperm, sign = bone_flip_map(OPENPOSE18)
    for l in range(OPENPOSE18.num_bones):
        src = j + 2 * bperm[l]
        np.testing.assert_allclose(flipped[:, j + 2 * l], -sign[l] * mirror[:, src], atol=1e-5)
        np.testing.assert_allclose(flipped[:, j + 2 * l + 1], sign[l] * mirror[:, src + 1], atol=1e-5)
    assert np.abs(maps[:, j:]).sum() > 100  # the PAFs are not trivially empty


def _one_bone_person(score_a: np.float32, score_b: np.float32):
    coords = np.full((1, 1, 18, 2), -50, np.float32)
    scores = np.zeros((1, 1, 18), np.float32)
    coords[0, 0, 0] = (20.3, 20.2)  # Nose
    coords[0, 0, 1] = (20.1, 30.4)  # Thorax; bone 0 = (0, 1)
    scores[0, 0, 0], scores[0, 0, 1] = score_a, score_b
    return coords, scores


def test_threshold_edges_released_and_paper():
    coords, scores = _one_bone_person(F01, np.float32(0.9))
    rel = render_pose_maps(coords, scores, OPENPOSE18)
    assert rel[0, 0].max() == 0  # heatmap: score > thr fails at exactly float32(0.1)
    assert rel[0, 1].max() > 0.5
    assert np.abs(rel[0, 18:20]).max() > 0.9  # PAF: score >= thr passes
    pap = render_pose_maps(coords, scores, OPENPOSE18, threshold_mode="paper")
    assert pap[0, 0].max() > 0.5
    below = np.nextafter(F01, np.float32(0))
    coords, scores = _one_bone_person(below, np.float32(0.9))
    for mode in ("released", "paper"):
        m = render_pose_maps(coords, scores, OPENPOSE18, threshold_mode=mode)
        assert m[0, 0].max() == 0 and np.abs(m[0, 18:]).max() == 0
    with pytest.raises(ValueError, match="threshold_mode"):
        render_pose_maps(coords, scores, OPENPOSE18, threshold_mode="strict")


def test_heatmap_sum_clamps_and_paf_averages():
    coords, scores = _one_bone_person(np.float32(0.9), np.float32(0.9))
    two = np.concatenate([coords, coords + np.float32(0.25)], axis=1)
    two_s = np.concatenate([scores, scores], axis=1)
    m = render_pose_maps(two, two_s, OPENPOSE18)
    assert m[0, :18].max() == 1.0
    norm = np.hypot(m[0, 18], m[0, 19])
    assert np.allclose(norm[norm > 0], 1.0, atol=1e-6)  # mean of two (nearly) equal unit vectors


def test_top_k_by_mean_score():
    rng = np.random.default_rng(11)
    coords, scores = synthetic_people(rng, 1, 7)
    means = np.array([0.9, 0.2, 0.5, 0.7, 0.5, 0.95, 0.3], np.float32)
    scores = np.broadcast_to(means[None, :, None], scores.shape).copy()
    keep = [5, 0, 3, 2, 4]  # descending, the 0.5 tie in input order
    got = render_pose_maps(coords, scores, OPENPOSE18, top_k=5)
    want = render_pose_maps(coords[:, keep], scores[:, keep], OPENPOSE18, top_k=5)
    np.testing.assert_array_equal(got, want)
    tie = render_pose_maps(coords[:, [2, 4]], scores[:, [2, 4]], OPENPOSE18, top_k=1)
    np.testing.assert_array_equal(tie, render_pose_maps(coords[:, [2]], scores[:, [2]], OPENPOSE18))
    assert not np.array_equal(tie, render_pose_maps(coords[:, [4]], scores[:, [4]], OPENPOSE18))


def test_empty_and_out_and_bad_input():
    empty = render_pose_maps(np.zeros((3, 0, 25, 2)), np.zeros((3, 0, 25)), "ntu25")
    assert empty.shape == (3, 73, 56, 56) and empty.dtype == np.float32 and not empty.any()
    assert render_pose_maps(np.zeros((0, 5, 18, 2)), np.zeros((0, 5, 18)), "openpose18").shape == (0, 52, 56, 56)
    rng = np.random.default_rng(5)
    c, s = synthetic_people(rng, 2, 5)
    buf = np.full((2, 52, 56, 56), 7.0, np.float32)
    assert render_pose_maps(c, s, "openpose18", out=buf) is buf
    np.testing.assert_array_equal(buf, render_pose_maps(c, s, "openpose18"))
    c[0, 0, 4] = np.nan  # a lost joint is not drawn and does not poison the maps
    assert np.isfinite(render_pose_maps(c, s, "openpose18")).all()
    with pytest.raises(ValueError, match="coords must have shape"):
        render_pose_maps(c[..., :17, :], s[..., :17], "openpose18")
    with pytest.raises(ValueError, match="out must be"):
        render_pose_maps(c, s, "openpose18", out=np.zeros((2, 52, 56, 55), np.float32))
