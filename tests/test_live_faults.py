"""`ia-live` under faults: bad inputs, a pose worker killed mid-run, SIGINT/SIGTERM, a killed parent, a
parent killed while its children still load, Ctrl-C to the process group during start-up, ``kill -9`` of
the whole process group, and other `ia-live` runs on the same machine.

Each case checks the exit code, a single stderr line without a traceback, that every child process is
gone and that no shared-memory segment or semaphore of the run is left in /dev/shm.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import (REPO, SHM, alive, children_of, ia_live_cmd, ia_live_env, movenet_path, ring_segments_of,
                      read_messages, segments_of)


@pytest.fixture(scope="module")
def checkpoint(random_checkpoint):
    return random_checkpoint


def _env(**extra: str) -> dict:
    return ia_live_env(**extra)


_cmd = ia_live_cmd
_children = children_of
_alive = alive


def _pose_model(shared) -> Path:
    return movenet_path()


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
        "output under a file": (["--dump-json", str(junk_ckpt / "out.jsonl")], "a file stands where its folder"),
        "bad flag": (["--stride", "0"], "--stride"),
        "unknown flag": (["--no-such-flag"], "unrecognized arguments"),
    }


CASES = ["missing file", "empty file", "corrupt file", "text file", "directory", "missing camera",
         "missing checkpoint", "junk checkpoint", "output under a file", "bad flag", "unknown flag"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_exit_2(case, tmp_path, checkpoint, shared):
    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    args, expected = _bad_inputs(tmp_path, checkpoint)[case]
    full = list(args)
    if "--video" not in full and "--camera" not in full:
        full = ["--video", str(video), *full]
    if "--checkpoint" not in full:
        full += ["--checkpoint", str(checkpoint)]
    _check_rejected(full, expected)


def _check_rejected(args: list[str], expected: str, meanwhile=None) -> None:
    """Run ia-live on bad input: one line, exit 2, fast, and nothing of *this* run left in /dev/shm
    (another ia-live on the machine may create and remove its own segments meanwhile: `meanwhile()` runs
    while this one does)."""
    start = time.monotonic()
    proc = subprocess.Popen(_cmd(args + ["--no-zmq", "--quiet"]), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if meanwhile is not None:
        meanwhile()
    _, stderr = proc.communicate(timeout=60)
    elapsed = time.monotonic() - start
    _assert_one_line_error(proc, stderr, 2, expected)
    assert stderr.startswith("ia-live: error: ")
    assert elapsed < 30, f"took {elapsed:.1f} s to reject bad input"
    assert segments_of(proc.pid) == []


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
    assert segments_of(pid) == [], f"leaked shared memory: {segments_of(pid)}"


def test_killed_pose_worker_ends_pipeline(shared, checkpoint, tmp_path):
    proc = _start(shared, checkpoint, tmp_path / "out.jsonl")
    kids = _wait_running(proc, tmp_path / "out.jsonl")
    assert {"ia-live:pose0", "ia-live:capture", "ia-live:infer", "ia-live:asm", "ia-live:pub"} <= set(kids)
    assert ring_segments_of(proc.pid), "the running pipeline should own shared-memory segments"
    os.kill(kids["ia-live:pose0"], signal.SIGKILL)
    start = time.monotonic()
    proc.wait(timeout=30)
    elapsed = time.monotonic() - start
    stderr = proc.stderr.read()
    _assert_one_line_error(proc, stderr, 1, "pose worker 0 process died (signal 9)")
    end = read_messages(tmp_path / "out.jsonl", types=None)[-1]   # the file still ends with the reason
    assert end["type"] == "end" and end["reason"] == "error", end
    assert end["error"] == "pose worker 0 process died (signal 9)", end
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
    # what was published before the signal is complete JSON Lines, ending with the end message
    messages = read_messages(out, types=None)
    assert messages[-1]["type"] == "end" and messages[-1]["reason"] == "stopped", messages[-1]


def test_killed_parent_takes_children_along(shared, checkpoint, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = _start(shared, checkpoint, out)
    kids = _wait_running(proc, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (any(_alive(k) for k in kids.values()) or segments_of(proc.pid)):
        time.sleep(0.1)
    assert not [name for name, k in kids.items() if _alive(k) and name.startswith("ia-live:")]
    # the parent could not unlink; multiprocessing's resource tracker does once every user is gone
    assert segments_of(proc.pid) == []


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


# --------------------------------------------------------------------------------------------------
# supervision faults of issue 8


def _spawned_children(pid: int) -> list[int]:
    """Children of ``pid`` that multiprocessing started (named ia-live:<role> or still bootstrapping)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            if int(text[text.rindex(")") + 2:].split()[1]) != pid:
                continue
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _kill_group_leftovers(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_parent_killed_while_children_load_takes_them_along(shared, checkpoint, tmp_path):
    """SIGKILL of the parent while inference is still building its engine (the onnxruntime engine exports
    the model on first use: a fresh engine cache keeps it busy for seconds) and the pose worker starts: the
    children must go at once, not when they finish loading."""
    out = tmp_path / "out.jsonl"
    args = ["--video", str(shared("data", "videos", "stgcn_tai_chi.mp4")), "--checkpoint", str(checkpoint),
            "--pose-model", str(_pose_model(shared)), "--no-zmq", "--dump-json", str(out), "--quiet",
            "--threads", "1", "--engine", "onnxruntime"]
    proc = subprocess.Popen(_cmd(args), cwd=REPO, env=_env(IA_LIVE_CACHE=str(tmp_path / "engines")),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        kids: dict[str, int] = {}
        while time.monotonic() < deadline and not {"ia-live:infer", "ia-live:pose0"} <= set(kids):
            assert proc.poll() is None, proc.stderr.read()
            kids = _children(proc.pid)
            time.sleep(0.02)
        assert {"ia-live:infer", "ia-live:pose0"} <= set(kids), f"children never started: {kids}"
        assert not list((tmp_path / "engines").glob("*.onnx")), "inference had already built its engine"
        assert not out.exists() or out.read_text() == "", "the pipeline was already running"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        while time.monotonic() - killed < 3 and any(_alive(k) for k in kids.values()):
            time.sleep(0.05)
        lingering = {name: k for name, k in kids.items() if _alive(k) and name.startswith("ia-live:")}
        assert not lingering, f"children outlived their killed parent by 3 s: {sorted(lingering)}"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and segments_of(proc.pid):
            time.sleep(0.1)
        assert segments_of(proc.pid) == []
    finally:
        _kill_group_leftovers(proc.pid)
        proc.wait(timeout=10)


def test_ctrl_c_during_startup_is_one_line(shared, checkpoint, tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group. Sent while the children are being
    started (their interpreters still importing), it must end ia-live with one line and exit 130, not with
    a traceback from every child."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(_cmd(["--video", str(shared("data", "videos", "stgcn_tai_chi.mp4")), "--checkpoint",
                                  str(checkpoint), "--pose-model", str(_pose_model(shared)), "--no-zmq",
                                  "--dump-json", str(out), "--quiet", "--threads", "1", "--engine", "torch"]),
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_spawned_children(proc.pid)) < 5:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.005)
        spawned = _spawned_children(proc.pid)
        assert len(spawned) == 5, f"the five children were not started: {spawned}"
        time.sleep(0.3)   # their interpreters are importing (numpy, OpenCV, torch) now
        os.killpg(proc.pid, signal.SIGINT)
        kids = _children(proc.pid)
        _, stderr = proc.communicate(timeout=60)
        _assert_one_line_error(proc, stderr, 130, "interrupted")
        _assert_clean(proc.pid, kids)
        assert not [k for k in spawned if _alive(k)]
    finally:
        _kill_group_leftovers(proc.pid)
        if proc.poll() is None:
            proc.wait(timeout=10)


def test_kill_9_of_the_group_is_reclaimed_by_the_next_run(shared, checkpoint, tmp_path):
    """``kill -9`` of the whole process group (the parent, every child and multiprocessing's resource tracker)
    leaves the run's segments and semaphores behind: nobody is alive to unlink them. The next run must
    reclaim them, and only those of dead owners."""
    out = tmp_path / "out.jsonl"
    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    proc = subprocess.Popen(_cmd(["--video", str(video), "--realtime", "--checkpoint", str(checkpoint),
                                  "--pose-model", str(_pose_model(shared)), "--no-zmq", "--dump-json", str(out),
                                  "--quiet", "--threads", "1", "--engine", "torch"]),
                            cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    dead = proc.pid
    try:
        kids = _wait_running(proc, out)
        os.killpg(dead, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(k) for k in kids.values()):
            time.sleep(0.05)
        left = segments_of(dead)
        assert ring_segments_of(dead), "the killed run left nothing: this test no longer tests anything"
        rerun = _run_short(shared, checkpoint, ["--no-zmq", "--engine", "torch", "--threads", "1"])
        assert rerun.returncode == 0, rerun.stderr
        assert segments_of(dead) == [], f"the next run did not reclaim {segments_of(dead)}"
        # the semaphores behind the run's queues and events were among them (named after the run, not sem.mp-*)
        assert any(name.startswith("sem.") for name in left), f"its semaphores are not attributable: {left}"
    finally:
        _kill_group_leftovers(dead)
        for name in segments_of(dead):
            (SHM / name).unlink(missing_ok=True)


def test_leak_check_is_not_fooled_by_another_run(tmp_path, checkpoint, shared):
    """The bad-input check counts only segments of the ia-live it started: another run that creates its own
    while the check runs (here: a live process's segment appearing meanwhile) is not a leak."""
    from realtime.shm_ring import ShmRing, segment_prefix, unique_name

    other = subprocess.Popen(["sleep", "120"])
    ring = None

    def another_run_starts() -> None:
        nonlocal ring
        ring = ShmRing.create(unique_name(segment_prefix(other.pid), "raw"), 2, (4,), "uint8")

    try:
        _check_rejected(["--video", str(tmp_path / "nope.mp4"), "--checkpoint", str(checkpoint)],
                        "video file not found", meanwhile=another_run_starts)
        assert ring is not None and ring_segments_of(other.pid)   # the other run's segment was there
    finally:
        if ring is not None:
            ring.close()
            ring.unlink()
        other.kill()
        other.wait()
