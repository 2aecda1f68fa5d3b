"""Failure 6 of issue 9: a training/evaluation index naming a missing video or pose cache fails when the
dataset opens, before any DataLoader worker starts, with one line naming the index file, the line and the
missing path (it used to surface as "Caught DatasetFormatError in DataLoader worker process 0", without the
path, and only when that batch loaded)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader

from conftest import REPO, make_checkpoint
from core.clipindex import ClipIndexError, write_classes
from core.posecache import PoseCache, save_pose_cache
from train.data.dataset import ClipDataset, ClipDatasetConfig
from train.loop import collate

CLASSES = ["a0", "a1"]


def _video(path: Path, frames: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def _poses(path: Path, frames: int = 12) -> Path:
    cache = PoseCache.empty(frames, 1, "coco17", 25.0, 64, 48)
    cache.valid[:] = True
    cache.coords[:, 0, :, 0] = np.linspace(10, 50, 17)
    cache.coords[:, 0, :, 1] = 24
    cache.scores[:] = 0.9
    return save_pose_cache(path, cache)


def _index(root: Path, records: list[dict]) -> Path:
    """An index of ``records`` beside classes.txt; the real files are made for entries that are not missing."""
    root.mkdir(parents=True, exist_ok=True)
    write_classes(root / "classes.txt", CLASSES)
    for rec in records:
        if not rec.pop("_missing_video", False):
            _video(root / rec["video"])
        if rec.get("poses") and not rec.pop("_missing_poses", False):
            _poses(root / rec["poses"])
    path = root / "index.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _rec(i: int, **flags) -> dict:
    return {"video": f"v{i}.avi", "label": i % 2, "poses": f"p{i}.npz", **flags}


CFG = dict(mode="test", n_clips=1, frames=4, tau=2, pose_frames=4, pose_tau=2, rgb_size=32)


def test_a_complete_index_loads_with_workers(tmp_path: Path) -> None:
    """The control: the same small index without a missing file goes through a 2-worker DataLoader."""
    index = _index(tmp_path, [_rec(0), _rec(1)])
    data = ClipDataset(index, ClipDatasetConfig(**CFG))
    batches = list(DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate))
    assert len(batches) == 1


@pytest.mark.parametrize("missing, what", [("_missing_video", "video"), ("_missing_poses", "pose cache")])
def test_a_missing_file_is_named_with_its_index_line(tmp_path: Path, missing: str, what: str) -> None:
    index = _index(tmp_path, [_rec(0), _rec(1), _rec(2, **{missing: True})])
    gone = tmp_path / ("v2.avi" if what == "video" else "p2.npz")
    with pytest.raises(ClipIndexError) as info:
        ClipDataset(index, ClipDatasetConfig(**CFG))  # before any DataLoader (and its workers) exists
    message = str(info.value)
    assert f"{index}:3:" in message and f"{what} not found: {gone}" in message
    assert "\n" not in message


def test_pose_only_data_needs_no_video_but_its_caches(tmp_path: Path) -> None:
    """Pose-only training reads timing from the cache: an absent video is fine, an absent cache is not."""
    index = _index(tmp_path, [_rec(0, _missing_video=True), _rec(1)])
    ClipDataset(index, ClipDatasetConfig(**CFG, use_rgb=False))
    index = _index(tmp_path / "b", [_rec(0), _rec(1, _missing_poses=True)])
    with pytest.raises(ClipIndexError, match=r"index.jsonl:2: pose cache not found"):
        ClipDataset(index, ClipDatasetConfig(**CFG, use_rgb=False))


def _one_line_failure(proc: subprocess.CompletedProcess, index: Path, line: int, path: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "DataLoader worker" not in proc.stderr, proc.stderr
    assert f"{index}:{line}:" in lines[0] and str(path) in lines[0]


def test_evaluate_with_workers_names_the_missing_video(tmp_path: Path) -> None:
    index = _index(tmp_path / "data", [_rec(0), _rec(1, _missing_video=True)])
    checkpoint = make_checkpoint(tmp_path / "m.pt", num_classes=2, label="a{}")
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", "--checkpoint", str(checkpoint), "--index",
                           str(index), "--out", str(tmp_path / "eval"), "--workers", "2", "--device", "cpu",
                           "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    _one_line_failure(proc, index, 2, tmp_path / "data" / "v1.avi")


def test_stage1_with_workers_names_the_missing_pose_cache(tmp_path: Path) -> None:
    index = _index(tmp_path / "data", [_rec(0, _missing_poses=True), _rec(1)])
    proc = subprocess.run([sys.executable, "-m", "train.stage1", "--stream", "pose", "--preset", "fast", "--index",
                           str(index), "--out", str(tmp_path / "run"), "--epochs", "1", "--workers", "2",
                           "--device", "cpu", "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    _one_line_failure(proc, index, 1, tmp_path / "data" / "p0.npz")
