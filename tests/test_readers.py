"""Dataset readers: Kinetics-skeleton JSON (hand-written fixture in the published format), Mimetics CSV,
NTU .skeleton (the real sample), class-folder datasets."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.clipindex import read_classes, read_clip_index
from core.posecache import load_pose_cache
from tests.conftest import shared_path
from train.data import DatasetFormatError
from train.data.folder import build_folder_index
from train.data.kinetics_skeleton import (build_kinetics_skeleton_index, read_kinetics_skeleton_json,
                                          read_kinetics_skeleton_labels)
from train.data.mimetics import build_mimetics_index, clip_stem, read_kinetics50_classes, read_mimetics_csv
from train.data.ntu import (XSUB_TRAIN_SUBJECTS, ntu_clips, ntu_split, parse_ntu_name, read_ntu_skeleton)

NTU_NAME = "S001C001P001R001A001"


# ------------------------------------------------------------------------------ Kinetics-skeleton
def _person(x0: float, y0: float, missing: tuple[int, ...] = ()) -> dict:
    """One OpenPose-18 person as the release stores it: normalised, 3 decimals, missing joints 0/0/0."""
    pose, score = [], []
    for j in range(18):
        if j in missing:
            pose += [0.0, 0.0]
            score.append(0.0)
        else:
            pose += [round(x0 + 0.01 * j, 3), round(y0 + 0.02 * j, 3)]
            score.append(round(0.5 + 0.02 * j, 3))
    return {"pose": pose, "score": score}


# frame_index starts at 1 in the release; frame 2 has nobody; frame 3 has two people
FIXTURE = {
    "data": [
        {"frame_index": 1, "skeleton": [_person(0.5, 0.2, missing=(15, 17))]},
        {"frame_index": 2, "skeleton": []},
        {"frame_index": 3, "skeleton": [_person(0.25, 0.1), _person(0.7, 0.3, missing=(0,))]},
        {"frame_index": 5, "skeleton": [_person(0.4, 0.4)]},
    ],
    "label": "tai chi",
    "label_index": 346,
}
LABELS = {
    "abcdefghijk": {"has_skeleton": True, "label": "tai chi", "label_index": 346},
    "bbbbbbbbbbb": {"has_skeleton": False, "label": "tai chi", "label_index": 346},
    "ccccccccccc": {"has_skeleton": True, "label": "clean and jerk", "label_index": 59},
}


def test_kinetics_skeleton_json_to_pixels(tmp_path: Path) -> None:
    path = tmp_path / "abcdefghijk.json"
    path.write_text(json.dumps(FIXTURE))
    video = read_kinetics_skeleton_json(path, width=340, height=256)
    c = video.cache
    assert (video.label, video.label_index, video.video_id) == ("tai chi", 346, "abcdefghijk")
    assert c.skeleton == "openpose18" and (c.width, c.height, c.fps) == (340, 256, 30.0)
    assert c.coords.shape == (5, 2, 18, 2)
    assert c.valid.tolist() == [True, True, True, False, True]  # frame 4 not in the file
    # frame_index 1 -> row 0; x * width, y * height
    np.testing.assert_allclose(c.coords[0, 0, 1], [(0.5 + 0.01) * 340, (0.2 + 0.02) * 256], rtol=1e-6)
    np.testing.assert_allclose(c.scores[0, 0, 1], 0.52, rtol=1e-6)
    # missing joints stay absent (score 0), and the padded second person of frame 1 too
    assert c.scores[0, 0, 15] == 0 and c.scores[0, 0, 17] == 0 and (c.coords[0, 0, 15] == 0).all()
    assert (c.scores[0, 1] == 0).all() and (c.scores[1] == 0).all()
    np.testing.assert_allclose(c.coords[2, 1, 1], [(0.7 + 0.01) * 340, (0.3 + 0.02) * 256], rtol=1e-6)
    assert c.scores[2, 1, 0] == 0
    # another video size scales the same normalised coordinates
    big = read_kinetics_skeleton_json(path, width=1280, height=720).cache
    np.testing.assert_allclose(big.coords[2, 0, 3], [(0.25 + 0.03) * 1280, (0.1 + 0.06) * 720], rtol=1e-6)


def test_kinetics_skeleton_bad_files(tmp_path: Path) -> None:
    bad = dict(FIXTURE, data=[{"frame_index": 1, "skeleton": [{"pose": [0.1] * 30, "score": [0.5] * 18}]}])
    (tmp_path / "a.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetFormatError, match="expected 36 pose and 18 score values"):
        read_kinetics_skeleton_json(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{oops")
    with pytest.raises(DatasetFormatError, match="invalid JSON"):
        read_kinetics_skeleton_json(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"data": [{"frame_index": 0, "skeleton": []}]}))
    with pytest.raises(DatasetFormatError, match="starts at 1"):
        read_kinetics_skeleton_json(tmp_path / "c.json")
    (tmp_path / "l.json").write_text(json.dumps({"x": {"label": "a"}}))
    with pytest.raises(DatasetFormatError, match="lacks has_skeleton"):
        read_kinetics_skeleton_labels(tmp_path / "l.json")


def test_kinetics_skeleton_index_with_class_subset(tmp_path: Path) -> None:
    rel = tmp_path / "kinetics-skeleton"
    (rel / "kinetics_val").mkdir(parents=True)
    (rel / "kinetics_val_label.json").write_text(json.dumps(LABELS))
    (rel / "kinetics_val" / "abcdefghijk.json").write_text(json.dumps(FIXTURE))
    other = dict(FIXTURE, label="clean and jerk", label_index=59)
    (rel / "kinetics_val" / "ccccccccccc.json").write_text(json.dumps(other))
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "abcdefghijk_000010_000020.mp4").write_bytes(b"")
    index = build_kinetics_skeleton_index(rel, "val", tmp_path / "out", videos_dir=videos,
                                          classes=["clean and jerk", "tai chi"], progress=False)
    clips = read_clip_index(index)
    assert read_classes(tmp_path / "out" / "classes.txt") == ["clean and jerk", "tai chi"]
    # the video without skeleton is skipped, labels follow the subset's order
    assert [(c.extra["video_id"], c.label, c.label_name) for c in clips] == [
        ("abcdefghijk", 1, "tai chi"), ("ccccccccccc", 0, "clean and jerk")]
    assert clips[0].video.name == "abcdefghijk_000010_000020.mp4"
    assert load_pose_cache(clips[0].poses).num_frames == 5


# ------------------------------------------------------------------------------ Mimetics
def test_mimetics_csv_and_classes(tmp_path: Path) -> None:
    csv_path = shared_path("data", "labels", "mimetics_v1.0.csv")
    cls_path = shared_path("data", "labels", "kinetics50_mimetics50_classes.txt")
    rows = read_mimetics_csv(csv_path)
    names, k400 = read_kinetics50_classes(cls_path)
    assert len(rows) == 713 and len(names) == 50 and len(set(names)) == 50
    k400_names = shared_path("data", "labels", "label_map_k400.txt").read_text().splitlines()
    assert all(k400_names[i] == n for n, i in zip(names, k400))  # Kinetics50 = named K400 classes
    # put one real video where the official download script would, the rest are absent
    row = rows[0]
    stem = clip_stem(row.youtube_id, row.time_start, row.time_end)
    assert stem == f"{row.youtube_id}_{row.time_start:06d}_{row.time_end:06d}"
    (tmp_path / "videos" / row.label).mkdir(parents=True)
    (tmp_path / "videos" / row.label / f"{stem}.mp4").symlink_to(
        shared_path("data", "videos", "stgcn_tai_chi.mp4"))
    index, n = build_mimetics_index(csv_path, cls_path, tmp_path / "videos", tmp_path / "mimetics.jsonl",
                                    poses_dir=tmp_path / "poses")
    clips = read_clip_index(index)
    assert n == len(clips) == 713
    assert len({c.poses for c in clips}) == 713  # one cache per clip, no collisions
    assert all(c.label_name == names[c.label] and c.split == "test" for c in clips)
    assert clips[0].video.exists() and clips[0].poses.name == f"{stem}.npz"
    assert clips[0].extra["kinetics400_index"] == k400[clips[0].label]
    _, n_existing = build_mimetics_index(csv_path, cls_path, tmp_path / "videos", tmp_path / "m2.jsonl",
                                         poses_dir=tmp_path / "poses", only_existing=True)
    assert n_existing == 1


def test_mimetics_bad_csv(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("label,youtube_id,time_start\narchery,x,1\n")
    with pytest.raises(DatasetFormatError, match="missing column"):
        read_mimetics_csv(tmp_path / "m.csv")


# ------------------------------------------------------------------------------ NTU RGB+D
def test_ntu_real_sample_is_in_frame_and_upright() -> None:
    path = shared_path("data", "skeleton", f"{NTU_NAME}.skeleton")
    cache = read_ntu_skeleton(path)
    assert cache.coords.shape == (103, 1, 25, 2) and cache.skeleton == "ntu25"
    assert (cache.width, cache.height, cache.fps) == (1920, 1080, 30.0) and cache.valid.all()
    x, y = cache.coords[..., 0], cache.coords[..., 1]
    assert (x > 0).all() and (x < 1920).all() and (y > 0).all() and (y < 1080).all()
    head, left_foot, right_foot, spine_base = 3, 15, 19, 0
    assert (y[:, 0, head] < y[:, 0, spine_base]).all()
    assert (y[:, 0, head] + 200 < np.minimum(y[:, 0, left_foot], y[:, 0, right_foot])).all()
    assert (cache.scores == 1.0).all()  # released behaviour: tracked and inferred joints score 1
    # the RGB video is frame-aligned: same count, and the 2D joints are in its pixel grid
    cap = cv2.VideoCapture(str(shared_path("data", "videos", f"{NTU_NAME}_rgb.avi")))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 103
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (1920, 1080)
    cap.release()


def test_ntu_sample_renders_as_pose_maps() -> None:
    from core.posemaps import render_pose_maps
    from core.preprocess import CropSpec, crop_transform, keypoints_to_map
    from core.skeletons import get_skeleton

    cache = read_ntu_skeleton(shared_path("data", "skeleton", f"{NTU_NAME}.skeleton"))
    tf = crop_transform(cache.height, cache.width, CropSpec())
    coords = keypoints_to_map(cache.coords[:8], tf)
    maps = render_pose_maps(coords, cache.scores[:8], "ntu25", size=56)
    sk = get_skeleton("ntu25")
    assert maps.shape == (8, sk.num_channels, 56, 56)
    head = maps[0, 3]
    row, col = np.unravel_index(np.argmax(head), head.shape)
    assert head.max() > 0.5
    assert abs(col - coords[0, 0, 3, 0]) <= 1 and abs(row - coords[0, 0, 3, 1]) <= 1
    assert np.abs(maps[:, sk.num_joints:]).max() > 0.5  # limbs (PAFs) are drawn too


def _ntu_text(frames: list[list[tuple[str, list[tuple[float, float, int]]]]]) -> str:
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for body_id, joints in bodies:
            out.append(f"{body_id} 0 1 1 1 1 0 0.0 0.0 2")
            out.append("25")
            for cx, cy, state in joints:
                out.append(f"0.1 0.2 3.0 200 150 {cx} {cy} 0 0 0 0 {state}")
    return "\n".join(out) + "\n"


def test_ntu_nan_states_and_multiple_bodies(tmp_path: Path) -> None:
    a = [(100.0 + j, 200.0 + j, 2) for j in range(25)]
    b = [(900.0 + j, 300.0 + j, 1) for j in range(25)]
    b_nan = list(b)
    b_nan[4] = (float("nan"), float("nan"), 0)
    frames = [[("A", a)], [("A", a), ("B", b_nan)], [("B", b)], []]
    path = tmp_path / "S002C003P004R001A050.skeleton"
    path.write_text(_ntu_text(frames))
    cache = read_ntu_skeleton(path)
    assert cache.coords.shape == (4, 2, 25, 2) and cache.valid.all()
    # body A keeps slot 0, body B slot 1 while both exist; B alone still in slot 1 (its slot)
    assert cache.coords[1, 0, 0, 0] == 100 and cache.coords[1, 1, 0, 0] == 900
    assert cache.coords[2, 1, 0, 0] == 900 and (cache.scores[2, 0] == 0).all()
    assert cache.scores[1, 1, 4] == 0 and (cache.coords[1, 1, 4] == 0).all() and np.isfinite(cache.coords).all()
    assert (cache.scores[3] == 0).all()  # processed, nobody there
    tracked = read_ntu_skeleton(path, score_for_state=(0.0, 0.5, 1.0))
    assert tracked.scores[0, 0, 0] == 1.0 and tracked.scores[2, 1, 0] == 0.5
    (tmp_path / "cut.skeleton").write_text(_ntu_text(frames).rsplit("\n", 10)[0])
    with pytest.raises(DatasetFormatError, match="truncated"):
        read_ntu_skeleton(tmp_path / "cut.skeleton")


def test_ntu_names_and_cross_subject_split(tmp_path: Path) -> None:
    n = parse_ntu_name(f"{NTU_NAME}.skeleton")
    assert (n.setup, n.camera, n.subject, n.replication, n.action, n.label) == (1, 1, 1, 1, 1, 0)
    assert ntu_split(n) == "train" and ntu_split(parse_ntu_name("S001C002P003R002A010")) == "test"
    assert len(XSUB_TRAIN_SUBJECTS) == 20 and ntu_split(n, "xview") == "test"
    with pytest.raises(DatasetFormatError):
        parse_ntu_name("video.avi")
    for name in (NTU_NAME, "S001C002P003R002A010", "S018C001P042R001A120"):
        (tmp_path / f"{name}.skeleton").write_text("0\n")
    clips = ntu_clips(tmp_path, tmp_path / "videos", tmp_path / "poses")
    assert [(c.label, c.split) for c in clips] == [(0, "train"), (9, "test")]  # A120 is beyond NTU-60
    assert clips[0].video.name == f"{NTU_NAME}_rgb.avi" and clips[0].poses.name == f"{NTU_NAME}_rgb.npz"


# ------------------------------------------------------------------------------ class folders
def test_folder_dataset_index(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    (root / "tai chi").mkdir(parents=True)
    (root / "weightlifting").mkdir()
    (root / "tai chi" / "a.mp4").symlink_to(shared_path("data", "videos", "stgcn_tai_chi.mp4"))
    (root / "weightlifting" / "b.mp4").symlink_to(shared_path("data", "videos", "stgcn_clean_and_jerk.mp4"))
    frames = root / "weightlifting" / "c_frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "000001.jpg"), np.zeros((8, 8, 3), np.uint8))
    (root / "weightlifting" / "notes.txt").write_text("not a video")
    index, n = build_folder_index(root, tmp_path / "idx" / "all.jsonl", split="train", poses_dir=tmp_path / "p")
    clips = read_clip_index(index)
    assert n == 3 and read_classes(tmp_path / "idx" / "classes.txt") == ["tai chi", "weightlifting"]
    assert [(c.video.name, c.label) for c in clips] == [("a.mp4", 0), ("b.mp4", 1), ("c_frames", 1)]
    assert clips[2].poses.name == "c_frames.npz"
    with pytest.raises(DatasetFormatError, match="no class sub-folders"):
        build_folder_index(tmp_path / "idx", tmp_path / "x.jsonl")
