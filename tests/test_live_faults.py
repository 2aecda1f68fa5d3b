"""`ia-live` under faults: bad inputs, a pose worker killed mid-run, SIGINT/SIGTERM, a killed parent.

Each case checks the exit code, a single stderr line without a traceback, that every child process is
gone and that no shared-memory segment of the run is left in /dev/shm.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHM = Path("/dev/shm")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "realtime.cli", *args]


def _segments(pid: int) -> list[str]:
    return sorted(p.name for p in SHM.glob(f"ia_live_{pid}_*"))


def _children(pid: int) -> dict[str, int]:
    """comm name -> pid of the direct children of `pid` (the pipeline names them `ia-live:<role>`)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out[comm] = int(stat.parent.name)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import build_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "fast.pt"
    return save_checkpoint(path, build_model("fast", class_names=[f"a{i}" for i in range(10)]))


def _pose_model(shared) -> Path:
    local = REPO / "models" / "movenet_multipose_lightning.onnx"
    return local if local.exists() else shared("models", "movenet_multipose_lightning.onnx")


def _assert_one_line_error(proc: subprocess.CompletedProcess | subprocess.Popen, stderr: str, code: int, pattern: str):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert len(lines) == 1, f"expected one stderr line, got: {stderr!r}"
    assert pattern in lines[0], lines[0]


# --------------------------------------------------------------------------------------------------
# bad input: one line, exit code 2, fast, nothing left behind


def _bad_inputs(tmp: Path, checkpoint: Path) -> dict[str, tuple[list[str], str]]:
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    text = tmp / "notes.avi"
    text.write_text("this is not a video\n")
    junk_ckpt = tmp / "junk.pt"
    junk_ckpt.write_bytes(b"not a checkpoint at all")
    return {
        "missing file": (["--video", str(tmp / "nope.mp4")], "video file not found"),
        "empty file": (["--video", str(empty)], "video file is empty"),
        "corrupt file": (["--video", str(corrupt)], "cannot decode video"),
        "text file": (["--video", str(text)], "cannot decode video"),
        "directory": (["--video", str(tmp)], "not a video file"),
        "missing camera": (["--camera", "57"], "cannot open camera 57"),
        "missing checkpoint": (["--checkpoint", str(tmp / "none.pt")], "checkpoint not found"),
        "junk checkpoint": (["--checkpoint", str(junk_ckpt)], "cannot read checkpoint"),
        "bad flag": (["--stride", "0"], "--stride"),
        "unknown flag": (["--no-such-flag"], "unrecognized arguments"),
    }


CASES = ["missing file", "empty file", "corrupt file", "text file", "directory", "missing camera",
         "missing checkpoint", "junk checkpoint", "bad flag", "unknown flag"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2(case, tmp_path, checkpoint, shared):
    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    args, expected = _bad_inputs(tmp_path, checkpoint)[case]
    full = list(args)
    if "--video" not in full and "--camera" not in full:
        full = ["--video", str(video), *full]
    if "--checkpoint" not in full:
        full += ["--checkpoint", str(checkpoint)]
    before = set(SHM.iterdir())
    start = time.monotonic()
    proc = subprocess.run(_cmd(full + ["--no-zmq", "--quiet"]), cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=60)
    elapsed = time.monotonic() - start
    _assert_one_line_error(proc, proc.stderr, 2, expected)
    assert proc.stderr.startswith("ia-live: error: ")
    assert elapsed < 30, f"took {elapsed:.1f} s to reject bad input"
    assert not [p for p in set(SHM.iterdir()) - before if p.name.startswith("ia_live_")]


def test_incompatible_checkpoint_skeleton(tmp_path, shared):
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import build_model

    path = save_checkpoint(tmp_path / "odd.pt", build_model("fast", class_names=[f"a{i}" for i in range(10)]))
    payload = torch.load(path, weights_only=True)
    payload["config"]["skeleton"] = "mpii16"
    torch.save(payload, path)
    proc = subprocess.run(_cmd(["--video", str(shared("data", "videos", "stgcn_tai_chi.mp4")), "--checkpoint",
                                str(path), "--no-zmq", "--quiet"]), cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=60)
    _assert_one_line_error(proc, proc.stderr, 2, "incompatible checkpoint")


# --------------------------------------------------------------------------------------------------
# faults while running


def _start(shared, checkpoint: Path, out: Path) -> subprocess.Popen:
    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    args = ["--video", str(video), "--realtime", "--checkpoint", str(checkpoint), "--pose-model",
            str(_pose_model(shared)), "--no-zmq", "--dump-json", str(out), "--quiet", "--threads", "1", "--engine", "torch"]
    return subprocess.Popen(_cmd(args), cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_running(proc: subprocess.Popen, out: Path, timeout: float = 180) -> dict[str, int]:
    """Wait for the first prediction (the whole graph is up), return the children."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ia-live ended early ({proc.returncode}): {proc.stderr.read()}")
        if out.exists() and out.read_text().count("\n") >= 1:
            kids = _children(proc.pid)
            if any(name.startswith("ia-live:") for name in kids):
                return kids
        time.sleep(0.1)
    proc.kill()
    pytest.fail("no prediction within the timeout")


def _assert_clean(pid: int, kids: dict[str, int]) -> None:
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any(_alive(k) for k in kids.values()):
        time.sleep(0.05)
    assert not [name for name, k in kids.items() if _alive(k) and name.startswith("ia-live:")], "children outlived ia-live"
    assert _segments(pid) == [], f"leaked shared memory: {_segments(pid)}"


def test_killed_pose_worker_ends_pipeline(shared, checkpoint, tmp_path):
    proc = _start(shared, checkpoint, tmp_path / "out.jsonl")
    kids = _wait_running(proc, tmp_path / "out.jsonl")
    assert {"ia-live:pose0", "ia-live:capture", "ia-live:infer", "ia-live:asm", "ia-live:pub"} <= set(kids)
    assert _segments(proc.pid), "the running pipeline should own shared-memory segments"
    os.kill(kids["ia-live:pose0"], signal.SIGKILL)
    start = time.monotonic()
    proc.wait(timeout=30)
    elapsed = time.monotonic() - start
    stderr = proc.stderr.read()
    _assert_one_line_error(proc, stderr, 1, "pose worker 0 process died (signal 9)")
    assert elapsed < 2.0, f"pipeline took {elapsed:.2f} s to stop after a worker died"
    _assert_clean(proc.pid, kids)


@pytest.mark.parametrize("signum,code,text", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_shuts_down_cleanly(signum, code, text, shared, checkpoint, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _start(shared, checkpoint, out)
    kids = _wait_running(proc, out)
    os.kill(proc.pid, signum)
    start = time.monotonic()
    proc.wait(timeout=30)
    elapsed = time.monotonic() - start
    stderr = proc.stderr.read()
    _assert_one_line_error(proc, stderr, code, text)
    assert elapsed < 2.0, f"shutdown took {elapsed:.2f} s"
    _assert_clean(proc.pid, kids)
    # what was published before the signal is complete JSON Lines
    import json

    for line in out.read_text().splitlines():
        json.loads(line)


def test_killed_parent_takes_children_along(shared, checkpoint, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _start(shared, checkpoint, out)
    kids = _wait_running(proc, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (any(_alive(k) for k in kids.values()) or _segments(proc.pid)):
        time.sleep(0.1)
    assert not [name for name, k in kids.items() if _alive(k) and name.startswith("ia-live:")]
    # the parent could not unlink; multiprocessing's resource tracker does once every user is gone
    assert _segments(proc.pid) == []


def _run_short(shared, checkpoint: Path, extra: list[str]) -> subprocess.CompletedProcess:
    args = ["--video", str(shared("data", "videos", "stgcn_tai_chi.mp4")), "--checkpoint", str(checkpoint),
            "--pose-model", str(_pose_model(shared)), "--quiet", "--max-frames", "30", *extra]
    return subprocess.run(_cmd(args), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)


def test_zmq_port_in_use_is_one_line_exit_2(shared, checkpoint):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = _run_short(shared, checkpoint, ["--zmq", f"tcp://127.0.0.1:{port}", "--engine", "torch"])
    _assert_one_line_error(proc, proc.stderr, 2, "publisher:")


def test_unavailable_engine_is_one_line_exit_2(shared, checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the cuda engine is available")
    proc = _run_short(shared, checkpoint, ["--no-zmq", "--engine", "cuda"])
    _assert_one_line_error(proc, proc.stderr, 2, "inference:")
