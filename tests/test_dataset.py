"""ClipDataset and frame decoding, on the real NTU sample (video + Kinect skeleton) and a 340x256 clip."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core import preprocess, sampling
from core.clipindex import Clip, write_clip_index
from core.posecache import PoseCache, save_pose_cache
from tests.conftest import shared_path
from train.data.dataset import ClipDataset, ClipDatasetConfig, nearest_valid_frames
from train.data.ntu import read_ntu_skeleton
from train.data.video import FrameCache, probe_video, read_frames

NTU_NAME = "S001C001P001R001A001"


def _decode_all(path: Path, limit: int | None = None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while limit is None or len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


@pytest.fixture(scope="module")
def tai_chi_frames() -> tuple[Path, list[np.ndarray]]:
    path = shared_path("data", "videos", "stgcn_tai_chi.mp4")
    return path, _decode_all(path)


def test_read_frames_matches_a_full_decode(tai_chi_frames) -> None:
    path, frames = tai_chi_frames
    n = len(frames)
    info = probe_video(path)
    assert (info.width, info.height) == (340, 256) and abs(info.fps - 29.97) < 0.01
    for idx, seek in (([0, 8, 8, 16, 24], 10**9), ([200, 208, 216, 299], 150), ([5, 3], 10**9)):
        got = read_frames(path, idx, seek_threshold=seek)
        np.testing.assert_array_equal(got, np.stack([frames[i] for i in idx]))
    # past the real end (container counts can be off): the last decodable frame, as sampling clamps
    np.testing.assert_array_equal(read_frames(path, [n - 1, n + 5])[1], frames[-1])


def test_frame_cache_serves_identical_frames(tai_chi_frames) -> None:
    path, frames = tai_chi_frames
    cache = FrameCache(max_bytes=3 * frames[0].nbytes)
    a = read_frames(path, [10, 20], cache=cache)
    b = read_frames(path, [20, 10], cache=cache)
    assert cache.hits == 2 and len(cache) == 2
    np.testing.assert_array_equal(b, a[::-1])
    read_frames(path, [30, 40, 50], cache=cache)
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes  # LRU bound holds


def test_nearest_valid_frames() -> None:
    v = np.array([False, True, False, False, True, False])
    assert nearest_valid_frames(v).tolist() == [1, 1, 1, 4, 4, 4]
    assert nearest_valid_frames(np.zeros(3, bool)).tolist() == [-1, -1, -1]


@pytest.fixture(scope="module")
def ntu_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ntu")
    cache = read_ntu_skeleton(shared_path("data", "skeleton", f"{NTU_NAME}.skeleton"))
    save_pose_cache(root / "poses" / f"{NTU_NAME}_rgb.npz", cache)
    video = shared_path("data", "videos", f"{NTU_NAME}_rgb.avi")
    clip = Clip(video=video, label=0, label_name="drink water", poses=root / "poses" / f"{NTU_NAME}_rgb.npz",
                split="test")
    return write_clip_index(root / "test.jsonl", [clip], ["drink water", "eat meal"])


def test_test_mode_is_the_shared_centre_crop_of_the_sampled_frames(ntu_index: Path) -> None:
    cfg = ClipDatasetConfig(mode="test", n_clips=2, frames=4, tau=8, pose_frames=4, pose_tau=8, skeleton="ntu25")
    ds = ClipDataset(ntu_index, cfg)
    item = ds[0]
    assert item["rgb"].shape == (2, 4, 3, 224, 224) and item["rgb"].dtype == torch.float32
    assert item["pose"].shape == (2, 4, 25 + 2 * 24, 56, 56) and item["label"] == 0
    assert 0.0 <= float(item["rgb"].min()) and float(item["rgb"].max()) <= 1.0
    # independently: decode, sample with core.sampling, crop with core.preprocess
    starts = sampling.test_clip_starts(103, 30.0, 4, 8, n_clips=2)
    idx = sampling.clip_indices(103, 30.0, 4, 8, starts[1])
    frames = _decode_all(Path(ds.clips[0].video), limit=int(idx.max()) + 1)
    tf = preprocess.crop_transform(1080, 1920)
    expect = preprocess.frames_to_tensor(np.stack([preprocess.apply_crop(frames[i], tf) for i in idx]))
    torch.testing.assert_close(item["rgb"][1], expect, rtol=0, atol=0)
    # the head heatmap peaks where the Kinect head joint maps into the crop
    cache = read_ntu_skeleton(shared_path("data", "skeleton", f"{NTU_NAME}.skeleton"))
    head = preprocess.keypoints_to_map(cache.coords[idx[0], 0, 3], tf)
    hm = item["pose"][1, 0, 3].numpy()
    row, col = np.unravel_index(np.argmax(hm), hm.shape)
    assert abs(col - head[0]) <= 1 and abs(row - head[1]) <= 1


def test_train_mode_is_reproducible_per_epoch(ntu_index: Path) -> None:
    cfg = ClipDatasetConfig(mode="train", frames=4, tau=8, pose_frames=4, pose_tau=8, use_rgb=False, seed=3)
    ds = ClipDataset(ntu_index, cfg)
    outs = []
    for epoch in (0, 0, 1, 2, 3):
        ds.set_epoch(epoch)
        outs.append(ds[0]["pose"])
    assert outs[0].shape == (4, 18 + 2 * 17, 56, 56)  # converted to the model's openpose18
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert any(not torch.equal(outs[0], o) for o in outs[2:])


def test_split_augmentation_path_equals_the_joint_one(ntu_index: Path) -> None:
    """The denser/pose-only path (two calls from one generator state) must give the keypoints the one-call
    path gives, i.e. pose maps stay aligned with the RGB crop."""
    cfg = ClipDatasetConfig(mode="train", frames=3, tau=8, pose_frames=3, pose_tau=8)
    joint = ClipDataset(ntu_index, cfg)
    split = ClipDataset(ntu_index, cfg)
    split._same_frames = False
    for epoch in (1, 2):
        joint.set_epoch(epoch)
        split.set_epoch(epoch)
        a, b = joint[0], split[0]
        torch.testing.assert_close(a["rgb"], b["rgb"], rtol=0, atol=0)
        torch.testing.assert_close(a["pose"], b["pose"], rtol=0, atol=1e-6)
    assert float(a["pose"].abs().sum()) > 0 or float(b["pose"].abs().sum()) > 0


def test_denser_pose_stream_and_pose_only(ntu_index: Path, tmp_path: Path) -> None:
    cfg = ClipDatasetConfig(mode="train", frames=4, tau=8, pose_frames=8, pose_tau=4)
    item = ClipDataset(ntu_index, cfg)[0]
    assert item["rgb"].shape[0] == 4 and item["pose"].shape[0] == 8
    # pose-only never opens the video: a clip whose video is missing still works
    src = ClipDataset(ntu_index, ClipDatasetConfig(mode="test", use_rgb=False, n_clips=3)).clips[0]
    gone = Clip(video=tmp_path / "absent.avi", label=1, poses=src.poses)
    out = ClipDataset([gone], ClipDatasetConfig(mode="test", use_rgb=False, n_clips=3))[0]
    assert "rgb" not in out and out["pose"].shape == (3, 8, 52, 56, 56) and out["label"] == 1


def test_unprocessed_frames_hold_the_nearest_processed_one(tmp_path: Path, tai_chi_frames) -> None:
    path, frames = tai_chi_frames
    n = len(frames)
    cache = PoseCache.empty(n, 1, "coco17", 29.97, 340, 256)
    cache.valid[::4] = True  # as `--every 4`
    cache.coords[::4, 0, :, 0] = np.linspace(50, 290, 17)
    cache.coords[::4, 0, :, 1] = 128
    cache.scores[::4] = 0.9
    save_pose_cache(tmp_path / "p.npz", cache)
    clip = Clip(video=path, label=0, poses=tmp_path / "p.npz")
    cfg = ClipDatasetConfig(mode="test", n_clips=1, frames=8, tau=5, pose_frames=8, pose_tau=5, use_rgb=False)
    pose = ClipDataset([clip], cfg)[0]["pose"][0]
    assert (pose[:, :18].flatten(1).max(1).values > 0.5).all()  # every sampled frame has the person
    missing = ClipDataset([Clip(video=path, label=0, poses=None)],
                          ClipDatasetConfig(mode="test", n_clips=1, missing_poses="empty"))[0]
    assert float(missing["pose"].abs().sum()) == 0 and missing["rgb"].shape == (1, 8, 3, 224, 224)
    with pytest.raises(ValueError, match="no pose cache"):
        ClipDataset([Clip(video=path, label=0, poses=None)], ClipDatasetConfig(mode="test"))
