"""One clip builder for live and training: the same video and pose cache through the live pipeline and
through the training `ClipDataset` give the network bit-identical inputs.

The live side is the real `ia-live` process graph (capture, pose worker with the ``file`` backend replaying
the cache, shared-memory rings, assembly) with an engine that records the windows it is given
(`tests/recording_engine.py`); the training side is `ClipDataset` in test mode at the same clip starts. The
cache is made to exercise what used to differ: frames the cache did not process (held from the nearest
processed frame), a cache extracted at another resolution (rescaled about pixel centres), more persons than
the model draws, persons that vanish.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import make_checkpoint, read_messages
from core.clipindex import Clip
from core.posecache import PoseCache, save_pose_cache
from core.sampling import clip_indices, frame_step
from recording_engine import RecordingEngine, recorded
from train.data.dataset import ClipDataset, ClipDatasetConfig


def _decoded(path: Path) -> tuple[int, float, int, int]:
    cap = cv2.VideoCapture(str(path))
    fps, w, h = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, fps, w, h


def _cache(path: Path, frames: int, fps: float, width: int, height: int) -> Path:
    """7 person slots (the model draws 5), random poses inside a ``width`` x ``height`` frame, scores that
    vary per frame, persons absent on some frames, and every third frame plus a run of 9 unprocessed."""
    rng = np.random.default_rng(8)
    cache = PoseCache.empty(frames, 7, "coco17", fps, width, height, source=path.stem, estimator="test")
    centres = rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height], (7, 2))
    for f in range(frames):
        drift = 0.05 * min(width, height) * np.sin(f / 9.0 + np.arange(7))[:, None]
        cache.coords[f] = (centres + drift)[:, None, :] + rng.normal(0, 0.12 * height, (7, 17, 2))
        cache.scores[f] = rng.uniform(0.0, 1.0, (7, 17)) * (rng.uniform(size=(7, 1)) > 0.25)
    cache.valid[:] = True
    cache.valid[1::3] = False
    cache.valid[100:109] = False
    cache.scores[~cache.valid] = 0.0
    save_pose_cache(path, cache)
    return path


@pytest.mark.parametrize("overrides", [
    {},                                                                                  # the fast preset
    dict(frames=4, tau=8, pose_frames=8, pose_tau=4, skeleton="openpose18", pose_crop="person"),
], ids=["frame-aligned", "dense-openpose18-person-box"])
def test_live_windows_equal_training_clips(overrides, tmp_path, shared):
    from realtime.cli import build_parser, prepare
    from realtime.pipeline import run

    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    n, fps, width, height = _decoded(video)
    cache = _cache(tmp_path / "poses.npz", n, fps, 2 * width, 2 * height)   # extracted on a 2x copy
    checkpoint = make_checkpoint(tmp_path / "model.pt", **overrides)
    out, folder = tmp_path / "live.jsonl", tmp_path / "windows"
    settings = prepare(build_parser().parse_args([
        "--video", str(video), "--checkpoint", str(checkpoint), "--pose-backend", "file", "--pose-cache", str(cache),
        "--no-zmq", "--quiet", "--dump-json", str(out), "--threads", "1"]))
    settings = dataclasses.replace(settings, engine=RecordingEngine(folder=str(folder)))
    result = run(settings)
    assert result.code == 0, result.message
    messages = read_messages(out)
    windows = [w for w in recorded(folder) if w["rgb"].any()]   # the engine's warm-up call is all zeros
    assert len(windows) == len(messages) > 10

    config = settings.model.config
    dataset = ClipDataset([Clip(video=video, label=0, poses=cache)], ClipDatasetConfig.from_model(config, mode="test"))
    k = config.pose_frames // config.frames
    step = frame_step(fps, config.pose_tau, config.ref_fps)
    drawn = 0
    for i, (message, window) in enumerate(zip(messages, windows)):
        start = i * k * step                              # window i starts on tick k * i (stride 1)
        assert message["window"]["frames"] == clip_indices(n, fps, config.frames, config.tau, start).tolist()
        item = dataset.clip_at(0, start)
        np.testing.assert_array_equal(window["rgb"][0], item["rgb"].numpy(), err_msg=f"RGB of window {i}")
        np.testing.assert_array_equal(window["pose"][0], item["pose"].numpy(), err_msg=f"pose maps of window {i}")
        drawn += int(window["pose"].any())
    assert drawn == len(windows), "some windows had no person drawn: the comparison would be weaker"
