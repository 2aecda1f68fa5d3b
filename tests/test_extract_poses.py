"""tools.extract_poses with real MoveNet on two real short videos: resume after a real kill and after a
pre-existing partial state both give exactly the uninterrupted result."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.clipindex import Clip, read_clip_index, write_clip_index
from core.posecache import load_pose_cache, save_pose_cache
from tests.conftest import REPO, movenet_path, shared_path
from tools import extract_poses

VIDEOS = ("mmaction2_test_ucf101_apply_eye_makeup.avi", "stgcn_tai_chi.mp4")  # face close-up; full body
EVERY = 4  # keeps the test cheap: ~116 MoveNet calls per full run


_model = movenet_path


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("extract")
    vids = root / "videos"
    vids.mkdir()
    for name in VIDEOS:
        (vids / name).symlink_to(shared_path("data", "videos", name))
    args = ["--videos", str(vids), "--every", str(EVERY), "--pose-model", str(_model()), "--quiet"]
    ref = root / "ref"
    res = _cli(args + ["--out", str(ref)])
    assert res.returncode == 0, res.stderr
    return {"root": root, "videos": vids, "args": args, "ref": ref}


def _cli(argv: list[str]) -> subprocess.CompletedProcess:
    """Every run compared for exact equality is a fresh process, as a user runs it: in the pytest process,
    state left by earlier tests once shifted MoveNet outputs by ~0.1 px, which is not what resume tests."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "tools.extract_poses", *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _assert_same(a_dir: Path, b_dir: Path) -> None:
    names = sorted(p.name for p in a_dir.iterdir())
    assert names == sorted(p.name for p in b_dir.iterdir()) == sorted(f"{Path(v).stem}.npz" for v in VIDEOS)
    for name in names:
        a, b = load_pose_cache(a_dir / name), load_pose_cache(b_dir / name)
        np.testing.assert_array_equal(a.coords, b.coords)
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.valid, b.valid)
        assert (a.fps, a.width, a.height, a.skeleton, a.estimator) == (b.fps, b.width, b.height, b.skeleton,
                                                                       b.estimator)


def test_uninterrupted_run_is_complete(setup: dict) -> None:
    ref = setup["ref"]
    for name, frames in zip(VIDEOS, (164, 300)):
        cache = load_pose_cache(ref / f"{Path(name).stem}.npz")
        assert cache.num_frames == frames and cache.skeleton == "coco17" and cache.estimator == "movenet"
        assert cache.valid.tolist() == [f % EVERY == 0 for f in range(frames)]
        assert cache.meta["complete"] == "1" and cache.meta["every"] == str(EVERY)
        assert (cache.scores[~cache.valid] == 0).all()
        inside = cache.scores > 0.3
        assert (cache.coords[..., 0][inside] >= -1).all() and (cache.coords[..., 0][inside] <= cache.width).all()
    tai_chi = load_pose_cache(ref / f"{Path(VIDEOS[1]).stem}.npz")
    seen = tai_chi.scores[tai_chi.valid].max(axis=1).mean(axis=-1) > 0.3
    assert seen.mean() > 0.8  # the full-body tai chi man is found in nearly every processed frame


def test_rerun_skips_finished_videos(setup: dict, capsys) -> None:
    assert extract_poses.main(setup["args"] + ["--out", str(setup["ref"])]) == 0
    assert "0 done, 0 resumed, 2 skipped" in capsys.readouterr().err


def test_resume_from_a_partial_state(setup: dict, tmp_path: Path, capsys) -> None:
    """Simulated interruption: video 1 finished, video 2 has a partial checkpoint of its first 100 frames."""
    out = tmp_path / "out"
    out.mkdir()
    first, second = (Path(v).stem for v in VIDEOS)
    (out / f"{first}.npz").write_bytes((setup["ref"] / f"{first}.npz").read_bytes())
    ref2 = load_pose_cache(setup["ref"] / f"{second}.npz")
    k = 100
    persons = [int((ref2.scores[f].max(axis=-1) > 0).sum()) if ref2.valid[f] else 0 for f in range(k)]
    # persons the backend returned per frame: padding rows are the trailing all-zero ones
    partial = ref2.__class__(coords=ref2.coords[:k], scores=ref2.scores[:k], skeleton=ref2.skeleton,
                             fps=ref2.fps, width=ref2.width, height=ref2.height, valid=ref2.valid[:k],
                             source=ref2.source, estimator=ref2.estimator,
                             meta={"complete": "0", "every": str(EVERY), "next_frame": str(k),
                                   "persons": ",".join(map(str, persons))})
    save_pose_cache(out / f"{second}.partial.npz", partial)
    res = _cli(setup["args"] + ["--out", str(out)])
    assert res.returncode == 0, res.stderr
    err = res.stderr
    remaining = len(range(k, 300, EVERY))
    assert "0 done, 1 resumed, 1 skipped" in err and f"{remaining} frames posed" in err
    _assert_same(setup["ref"], out)


def test_resume_after_a_real_kill(setup: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "tools.extract_poses", *setup["args"], "--out", str(out),
           "--checkpoint-frames", "3"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.name.endswith(".partial.npz") for p in out.iterdir()):
            break
        time.sleep(0.02)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)  # no chance to clean up: only atomic writes survive
    proc.wait(timeout=30)
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    for p in out.glob("*.npz"):
        load_pose_cache(p)  # whatever is there is a readable, whole file
    assert killed, "the run finished before it could be killed"
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stderr and " 0 resumed" not in res.stderr
    assert not any(p.name.endswith(".partial.npz") for p in out.iterdir())
    _assert_same(setup["ref"], out)


def test_index_input_and_write_index(setup: dict, tmp_path: Path) -> None:
    clips = [Clip(video=setup["videos"] / VIDEOS[0], label=0, label_name="apply eye makeup", poses=None)]
    index = write_clip_index(tmp_path / "ds" / "test.jsonl", clips, ["apply eye makeup"])
    out = tmp_path / "ds" / "poses"
    out.mkdir(parents=True)
    (out / f"{Path(VIDEOS[0]).stem}.npz").write_bytes((setup["ref"] / f"{Path(VIDEOS[0]).stem}.npz").read_bytes())
    argv = ["--index", str(index), "--out", str(out), "--every", str(EVERY), "--pose-model", str(_model()),
            "--quiet", "--write-index", str(tmp_path / "ds" / "with_poses.jsonl")]
    assert extract_poses.main(argv) == 0
    back = read_clip_index(tmp_path / "ds" / "with_poses.jsonl")
    assert back[0].poses == out.absolute() / f"{Path(VIDEOS[0]).stem}.npz" and back[0].label_name == "apply eye makeup"


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for extra in (["--videos", str(tmp_path / "nope")], ["--index", str(tmp_path / "nope.jsonl")],
                  ["--videos", str(tmp_path), "--pose-backend", "nonexistent"], ["--videos", str(tmp_path)]):
        res = subprocess.run([sys.executable, "-m", "tools.extract_poses", *extra, "--out", str(tmp_path / "o")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, (extra, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
