"""Live flow under stalls, start-up backlogs and reconnects: predictions stay fresh and windows never mix
frames from both sides of a jump in the stream.

Live sources here are a ``--realtime`` video file paced like a camera, and a real MJPEG-over-HTTP stream
served by the test (`MjpegServer`, paced at its frame rate like a network camera) that OpenCV/FFmpeg read
as a user's ``--video http://...`` would be.
"""
from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO, check_message, children_of, ia_live_cmd, ia_live_env, movenet_path, read_messages, segments_of
from realtime import defaults

F_SETPIPE_SZ = 1031          # fcntl: set a pipe's capacity (Linux)
TICK_S = 8 / 30.0            # the fast preset samples one frame per tau / ref_fps = 8 / 30 s
GAP_S = max(defaults.GAP_MIN_S, defaults.GAP_TICKS * TICK_S)


def _video(path: Path, seconds: float, fps: float = 12.0, size: tuple[int, int] = (160, 120)) -> Path:
    """A small synthetic clip (a square moving over a gradient): long enough to pace in real time, cheap
    to decode and to run MoveNet on."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    base = np.tile(np.linspace(40, 200, w, dtype=np.uint8)[None, :, None], (h, 1, 3))
    for i in range(int(seconds * fps)):
        img = base.copy()
        x = int((i * 3) % (w - 20))
        img[40:60, x:x + 20] = (30, 160, 230)
        writer.write(img)
    writer.release()
    return path


def _args(video: str, checkpoint: Path, *extra: str) -> list[str]:
    return ["--video", video, "--checkpoint", str(checkpoint), "--pose-model", str(movenet_path()), "--no-zmq",
            "--quiet", "--threads", "1", "--engine", "torch", *extra]


def _steps_s(message: dict, fps: float) -> np.ndarray:
    """Seconds between consecutive RGB frames of a message's window."""
    return np.diff(np.asarray(message["window"]["frames"], np.float64)) / fps


def _read_until(proc: subprocess.Popen, out: Path, count: int, timeout: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists():
            text = out.read_text()
            lines = text[:text.rfind("\n") + 1].splitlines()   # complete lines only: the run is writing
            predictions = [m for m in map(check_message, lines) if m["type"] == "prediction"]
            if len(predictions) >= count:
                return predictions[:count]
        if proc.poll() is not None:
            pytest.fail(f"ia-live ended early ({proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"fewer than {count} predictions within {timeout} s")


# ------------------------------------------------------------------------------------ a stalled consumer


def test_stalled_stdout_reader_gets_fresh_predictions(tmp_path, random_checkpoint):
    """``--dump-json -`` into a pipe whose reader stops for 12 s: the publisher blocks in its write, but
    once the reader is back it publishes the newest prediction, not a queue of stale ones, and counts what
    it dropped."""
    video = _video(tmp_path / "clip.mp4", seconds=30)
    proc = subprocess.Popen(ia_live_cmd(_args(str(video), random_checkpoint, "--realtime", "--dump-json", "-")),
                            cwd=REPO, env=ia_live_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 4096)   # a few messages fill it
        first = proc.stdout.readline()
        assert first, proc.stderr.read()
        time.sleep(12.0)
        rest = proc.stdout.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    messages = [check_message(line) for line in [first, *rest.splitlines()]]
    assert messages[-1]["type"] == "end" and messages[-1]["reason"] == "end_of_file", messages[-1]
    messages = [m for m in messages if m["type"] == "prediction"]
    staleness = [m["latency_ms"]["capture_to_publish"] for m in messages]
    assert max(staleness) < 5000, f"a prediction was published {max(staleness) / 1000:.1f} s after capture"
    assert messages[-1]["dropped_windows"] > 0, "stale predictions were dropped without being counted"
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


# ------------------------------------------------------------------------------------ a stall upstream


def test_stall_starts_a_new_window(tmp_path, random_checkpoint):
    """The pose worker stops for 4 s (SIGSTOP: a machine that stalls): capture drops what it cannot queue,
    and the windows after the stall must not reach back across it."""
    fps = 12.0
    video = _video(tmp_path / "clip.mp4", seconds=30, fps=fps)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(ia_live_cmd(_args(str(video), random_checkpoint, "--realtime", "--dump-json", str(out))),
                            cwd=REPO, env=ia_live_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc, out, 2)
        pose = children_of(proc.pid)["ia-live:pose0"]
        os.kill(pose, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(pose, signal.SIGCONT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
    messages = read_messages(out)
    worst = max(float(_steps_s(m, fps).max()) for m in messages)
    assert worst <= GAP_S + 1 / fps, f"a window spans a {worst:.1f} s jump"
    assert messages[-1]["gaps"] >= 1 and messages[-1]["reconnects"] == 0
    assert messages[-1]["timestamp"] > messages[1]["timestamp"] + 4.0, "no prediction after the stall"


# ------------------------------------------------------------------------------------ a network stream


class MjpegServer:
    """A live MJPEG-over-HTTP camera on 127.0.0.1: every connection gets frames paced at ``fps`` from the
    moment it connects (``per_connection`` of them, then the server hangs up; None = forever)."""

    def __init__(self, fps: float = 15.0, per_connection: int | None = None, size: tuple[int, int] = (160, 120)):
        self.fps, self.per_connection, self.size = fps, per_connection, size
        self.sent: list[int] = []          # frames fully sent, per connection in accept order
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}/live.mjpg"

    def __enter__(self) -> "MjpegServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.sent.append(0)
            threading.Thread(target=self._serve, args=(conn, len(self.sent) - 1), daemon=True).start()

    def _frame(self, n: int) -> bytes:
        w, h = self.size
        img = np.full((h, w, 3), 60 + (n * 7) % 150, np.uint8)
        x = (n * 4) % (w - 24)
        img[50:74, x:x + 24] = (20, 200, 240)
        ok, jpg = cv2.imencode(".jpg", img)
        return jpg.tobytes()

    def _serve(self, conn: socket.socket, idx: int) -> None:
        try:
            conn.settimeout(None)
            conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            t0, n = time.monotonic(), 0
            while not self._stop.is_set() and (self.per_connection is None or n < self.per_connection):
                data = self._frame(n)
                conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(data)
                             + data + b"\r\n")
                n += 1
                self.sent[idx] = n
                time.sleep(max(0.0, t0 + n / self.fps - time.monotonic()))
        except OSError:
            pass
        finally:
            conn.close()


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return stderr


def test_stream_starts_with_fresh_frames(tmp_path, random_checkpoint):
    """A camera stream buffers while ia-live starts its processes (seconds): the first window must be
    made of fresh frames, not begin with a frame from before the start-up."""
    fps = 15.0
    out = tmp_path / "out.jsonl"
    with MjpegServer(fps=fps) as server:
        proc = subprocess.Popen(ia_live_cmd(_args(server.url, random_checkpoint, "--dump-json", str(out))),
                                cwd=REPO, env=ia_live_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            messages = _read_until(proc, out, 4)
        finally:
            stderr = _stop(proc)
    assert proc.returncode == 130, stderr
    worst = max(float(_steps_s(m, fps).max()) for m in messages)
    assert worst <= GAP_S + 1 / fps, f"a window starts {worst:.1f} s before the rest of its frames"
    assert segments_of(proc.pid) == []


def test_reconnect_starts_a_new_window(tmp_path, random_checkpoint):
    """The camera hangs up after 8 s and ia-live reconnects (--reconnect): no window mixes frames from before
    and after the reconnect, and the messages say it happened."""
    fps, per_connection = 15.0, 120
    out = tmp_path / "out.jsonl"
    with MjpegServer(fps=fps, per_connection=per_connection) as server:
        proc = subprocess.Popen(ia_live_cmd(_args(server.url, random_checkpoint, "--reconnect", "--dump-json",
                                                  str(out), "--max-frames", str(per_connection + 90))),
                                cwd=REPO, env=ia_live_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        try:
            _, stderr = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sent = list(server.sent)
    assert proc.returncode == 0, stderr
    # connection 0 is the parent's probe; 1 the capture's first, fully read before the server hung up
    assert len(sent) >= 3 and sent[1] == per_connection, sent
    messages = read_messages(out)
    mixed = [m["window"]["frames"] for m in messages
             if min(m["window"]["frames"]) < per_connection <= max(m["window"]["frames"])]
    assert not mixed, f"windows mix frames from both connections: {mixed[:2]}"
    assert any(m["frame_index"] >= per_connection for m in messages), "no prediction after the reconnect"
    assert messages[-1]["reconnects"] == 1 and messages[-1]["gaps"] >= 1


def test_lost_stream_ends_with_source_lost(tmp_path, random_checkpoint):
    """Without --reconnect, a camera that hangs up ends the run: exit 1, one line, and an `end` message
    (the last line of the file) whose reason says the source was lost."""
    out = tmp_path / "out.jsonl"
    with MjpegServer(fps=15.0, per_connection=90) as server:
        proc = subprocess.run(ia_live_cmd(_args(server.url, random_checkpoint, "--dump-json", str(out))), cwd=REPO,
                              env=ia_live_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1, proc.stderr
    assert "stopped delivering frames" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    end = read_messages(out, types=None)[-1]
    assert end["type"] == "end" and end["reason"] == "source_lost", end
    assert "stopped delivering frames" in end["error"] and end["frames"] >= 1
