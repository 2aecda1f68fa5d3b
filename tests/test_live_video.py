"""`ia-live --video` end to end on every real video in ../shared, with the real MoveNet pose model.

The number of predictions and each window's frames must follow the shared sampling arithmetic
(`core.sampling`), i.e. exactly what training and evaluation would sample; runs must be deterministic;
the ZeroMQ stream must carry the same bytes as the JSON Lines file.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import check_message, make_checkpoint, movenet_path, read_messages, run_ia_live
from core.sampling import clip_indices, frame_step, windows_for

VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov")
run_live = run_ia_live


def decoded_frames(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n, fps


def sampled_ticks(num_frames: int, fps: float, tau: float) -> int:
    """How many frames of a whole file the stream sampler takes: the indices of one long clip from
    frame 0 (core.sampling's arithmetic, unclamped) that fall inside the file."""
    count = int(num_frames / (tau * fps / 30.0)) + 3
    idx = clip_indices(10**9, fps, count, tau, start=0)
    return int((idx < num_frames).sum())


def read_jsonl(path: Path) -> list[dict]:
    """The predictions of a run, every line checked against the schema (`conftest.read_messages`)."""
    return read_messages(path)


def stable(message: dict) -> dict:
    """The parts of a message that must not change between runs (timing fields do)."""
    return {k: v for k, v in message.items() if k not in ("wall_time", "latency_ms")}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {
        # common case, COCO-17 poses as MoveNet gives them
        "equal": make_checkpoint(root / "equal.pt"),
        # pose stream twice as dense as RGB (T_pose = 2T, pose_tau = tau/2), OpenPose-18 (converted poses)
        "dense": make_checkpoint(root / "dense.pt", frames=4, tau=8, pose_frames=8, pose_tau=4, skeleton="openpose18"),
    }


def _shared_videos():
    from conftest import SHARED

    folder = SHARED / "data" / "videos"
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXT) if folder.is_dir() else []


@pytest.mark.parametrize("name", _shared_videos() or ["(no ../shared videos)"])
def test_video_predictions_follow_sampling(name, shared, checkpoints, tmp_path):
    video = shared("data", "videos", name)
    model = movenet_path()
    out = tmp_path / "out.jsonl"
    proc = run_live(["--video", str(video), "--checkpoint", str(checkpoints["dense"]), "--pose-model", str(model),
                     "--no-zmq", "--dump-json", str(out), "--quiet", "--average", "2", "--threads", "1",
                     "--engine", "torch"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    messages = read_jsonl(out)
    n, fps = decoded_frames(video)
    ticks = sampled_ticks(n, fps, 4)          # pose stream: tau 4 at ref 30 fps
    assert len(messages) == windows_for(ticks, 8, 2) > 0
    assert [m["seq"] for m in messages] == list(range(len(messages)))
    pose_step = frame_step(fps, 4)
    for m in messages:
        # window i is the training clip (core.sampling.clip_indices) starting at tick 2*i of the stream's
        # time grid (k=2 pose frames per RGB frame, stride 1); starts are fractional for non-integer steps
        start = 2 * m["seq"] * pose_step
        assert m["window"]["frames"] == clip_indices(n, fps, 4, 8, start=start).tolist()
        assert m["frame_index"] == int(clip_indices(n, fps, 8, 4, start=start)[-1])
        assert m["timestamp"] == pytest.approx(m["frame_index"] / fps, abs=1e-5)
        assert m["dropped_frames"] == 0 and m["engine"] == "torch" and m["model"] == "dense.pt"
        assert len(m["topk"]) == 5 and m["topk"][0]["label"].startswith("action ")
        assert m["appearance_weight"] is not None and 0 <= m["appearance_weight"] <= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_deterministic_and_zmq_matches_jsonl(shared, checkpoints, tmp_path):
    import zmq

    video = shared("data", "videos", "stgcn_clean_and_jerk.mp4")
    model = movenet_path()
    base = ["--video", str(video), "--checkpoint", str(checkpoints["equal"]), "--pose-model", str(model),
            "--quiet", "--threads", "1", "--max-frames", "150", "--engine", "torch"]
    first = tmp_path / "first.jsonl"
    proc = run_live(base + ["--no-zmq", "--dump-json", str(first)])
    assert proc.returncode == 0, proc.stderr

    port = _free_port()
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"ia.actions")
    sub.setsockopt(zmq.RCVTIMEO, 500)
    sub.connect(f"tcp://127.0.0.1:{port}")
    received: list[list[bytes]] = []
    done = threading.Event()

    def listen():
        while not done.is_set():
            try:
                received.append(sub.recv_multipart())
            except zmq.Again:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    second = tmp_path / "second.jsonl"
    try:
        proc = run_live(base + ["--zmq", f"tcp://127.0.0.1:{port}", "--dump-json", str(second),
                                "--wait-subscribers", "1", "--wait-timeout", "60"])
        assert proc.returncode == 0, proc.stderr
    finally:
        time.sleep(1.0)
        done.set()
        listener.join(5)
        sub.close(0)
        ctx.term()

    a, b = read_jsonl(first), read_jsonl(second)
    n, fps = decoded_frames(video)
    assert len(a) == windows_for(sampled_ticks(min(n, 150), fps, 8), 8, 1) > 0
    assert [stable(m) for m in a] == [stable(m) for m in b], "two runs on the same file differ"
    lines = second.read_text().splitlines()
    assert check_message(lines[-1])["type"] == "end", "the file does not end with the end message"
    # ZeroMQ carries the same bytes, plus heartbeats (start-up takes longer than --heartbeat's 2 s)
    received = [(topic, payload) for topic, payload in received if check_message(payload)["type"] != "heartbeat"]
    assert [topic for topic, _ in received] == [b"ia.actions"] * len(lines)
    assert [payload.decode() for _, payload in received] == lines


def test_realtime_overload_drops_instead_of_lagging(shared, checkpoints, tmp_path):
    """A paced file sampled far more densely than the pipeline can process (--ref-fps 240: every frame
    is sampled): frames are dropped and stale windows skipped, and latency stays bounded instead of
    growing with the backlog as it would with back-pressure."""
    video = shared("data", "videos", "stgcn_tai_chi.mp4")
    out = tmp_path / "rt.jsonl"
    proc = run_live(["--video", str(video), "--realtime", "--ref-fps", "240", "--max-frames", "240",
                     "--checkpoint", str(checkpoints["equal"]), "--pose-model", str(movenet_path()),
                     "--no-zmq", "--dump-json", str(out), "--quiet", "--threads", "1", "--engine", "torch"])
    assert proc.returncode == 0, proc.stderr
    messages = read_jsonl(out)
    assert messages, "no prediction at all"
    drops = [m["dropped_frames"] for m in messages]
    assert drops == sorted(drops)
    # every frame is a sampling target: 240 frames would give 233 windows without any loss
    assert drops[-1] > 0 or len(messages) < windows_for(240, 8, 1)
    # a backlog of 8 s of video would show up as multi-second latency at the end of the run
    tail = [m["latency_ms"]["capture_to_publish"] for m in messages[-5:]]
    assert max(tail) < 4000, tail
