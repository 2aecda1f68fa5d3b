"""Skeleton layouts, converters and flips (the released layouts are checked against the fixtures)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.skeletons import (COCO17, NTU25, OPENPOSE18, bone_flip_map, convert_keypoints, flip_keypoints,
                            get_skeleton)
from tests.conftest import shared_path


def test_counts_and_names():
    assert (COCO17.num_joints, COCO17.num_bones, COCO17.num_channels) == (17, 19, 55)
    assert (OPENPOSE18.num_joints, OPENPOSE18.num_bones, OPENPOSE18.num_channels) == (18, 17, 52)
    assert (NTU25.num_joints, NTU25.num_bones, NTU25.num_channels) == (25, 24, 73)
    assert get_skeleton("coco17") is COCO17
    assert get_skeleton(NTU25) is NTU25
    with pytest.raises(ValueError, match="coco17, openpose18, ntu25"):
        get_skeleton("body25")


def test_coco_bones_are_pycocotools_skeleton():
    one_based = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    assert COCO17.bones == tuple((a - 1, b - 1) for a, b in one_based)


@pytest.mark.parametrize("fixture,skeleton", [("official_pose_only_k50.pt", OPENPOSE18),
                                              ("official_rgbpose_ntu.pt", NTU25)])
def test_released_layouts_match_fixture_config(fixture, skeleton):
    cfg = torch.load(shared_path("reference", fixture), weights_only=True)["config"]
    assert list(skeleton.joint_names) == cfg["joint_names"]
    assert [list(b) for b in skeleton.bones] == cfg["skeleton"]
    assert skeleton.num_channels == cfg["pose_input_channels"]


@pytest.mark.parametrize("sk", [COCO17, OPENPOSE18, NTU25])
def test_flip_perm_swaps_left_right(sk):
    for i, name in enumerate(sk.joint_names):
        mirrored = sk.joint_names[sk.flip_perm[i]]
        low = name.lower()
        if low.startswith(("l_", "left_")) or low.startswith(("r_", "right_")):
            assert mirrored != name and mirrored.split("_", 1)[1] == name.split("_", 1)[1]
        else:
            assert mirrored == name
    perm, sign = bone_flip_map(sk)
    assert sorted(perm.tolist()) == list(range(sk.num_bones))
    for l, (a, b) in enumerate(sk.bones):
        fa, fb = sk.flip_perm[a], sk.flip_perm[b]
        assert sk.bones[perm[l]] == ((fa, fb) if sign[l] > 0 else (fb, fa))


def test_flip_keypoints_mirrors_and_swaps():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 55, (3, 2, 18, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, (3, 2, 18)).astype(np.float32)
    fc, fs = flip_keypoints(coords, scores, "openpose18", 56)
    r_wrist, l_wrist = OPENPOSE18.joint_index("R_Wrist"), OPENPOSE18.joint_index("L_Wrist")
    np.testing.assert_allclose(fc[..., l_wrist, 0], 55 - coords[..., r_wrist, 0], atol=1e-5)
    np.testing.assert_array_equal(fc[..., l_wrist, 1], coords[..., r_wrist, 1])
    np.testing.assert_array_equal(fs[..., l_wrist], scores[..., r_wrist])
    back_c, back_s = flip_keypoints(fc, fs, OPENPOSE18, 56)
    np.testing.assert_allclose(back_c, coords, atol=1e-5)
    np.testing.assert_array_equal(back_s, scores)


def test_coco_to_openpose_neck_and_mapping():
    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 100, (4, 3, 17, 2)).astype(np.float32)
    scores = rng.uniform(0, 1, (4, 3, 17)).astype(np.float32)
    oc, os_ = convert_keypoints(coords, scores, "coco17", "openpose18")
    assert oc.shape == (4, 3, 18, 2) and os_.shape == (4, 3, 18)
    neck = OPENPOSE18.joint_index("Thorax")
    ls, rs = COCO17.joint_index("left_shoulder"), COCO17.joint_index("right_shoulder")
    np.testing.assert_allclose(oc[..., neck, :], (coords[..., ls, :] + coords[..., rs, :]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(os_[..., neck], np.minimum(scores[..., ls], scores[..., rs]))
    for op_name, coco_name in [("R_Wrist", "right_wrist"), ("L_Ankle", "left_ankle"), ("R_Ear", "right_ear"),
                               ("L_Eye", "left_eye"), ("Nose", "nose")]:
        np.testing.assert_array_equal(oc[..., OPENPOSE18.joint_index(op_name), :],
                                      coords[..., COCO17.joint_index(coco_name), :])


def test_ntu_to_coco_and_dispatch():
    rng = np.random.default_rng(2)
    coords = rng.uniform(0, 100, (2, 25, 2)).astype(np.float32)
    scores = np.ones((2, 25), np.float32)
    cc, cs = convert_keypoints(coords, scores, "ntu25", "coco17")
    head = NTU25.joint_index("Head")
    for name in ("left_eye", "right_ear"):
        j = COCO17.joint_index(name)
        assert np.all(cs[..., j] == 0)
        np.testing.assert_array_equal(cc[..., j, :], coords[..., head, :])
    np.testing.assert_array_equal(cc[..., COCO17.joint_index("left_knee"), :],
                                  coords[..., NTU25.joint_index("L_Knee"), :])
    oc, _ = convert_keypoints(coords, scores, "ntu25", "openpose18")
    assert oc.shape == (2, 18, 2)
    same_c, same_s = convert_keypoints(coords, scores, "ntu25", NTU25)
    np.testing.assert_array_equal(same_c, coords)
    with pytest.raises(ValueError, match="no keypoint conversion openpose18->coco17"):
        convert_keypoints(oc, np.ones((2, 18)), "openpose18", "coco17")
    with pytest.raises(ValueError, match="shape"):
        convert_keypoints(coords[:, :20], scores[:, :20], "ntu25", "coco17")
