"""Frame sources: classification, probing real files, file timestamps, realtime pacing, reconnect."""
from __future__ import annotations

import time

import cv2
import pytest

from realtime.sources import FrameSource, SourceError, SourceSpec, make_spec, probe


def test_make_spec_kinds():
    assert make_spec(camera=0).kind == "camera" and make_spec(camera=0).live
    assert make_spec(video="rtsp://127.0.0.1/x").kind == "stream"
    assert make_spec(video="HTTP://host/a.mjpg").live
    f = make_spec(video="clip.mp4")
    assert f.kind == "file" and not f.live and f.name == "clip.mp4"
    assert make_spec(video="clip.mp4", realtime=True).live
    with pytest.raises(SourceError):
        make_spec()
    with pytest.raises(SourceError):
        make_spec(camera=0, video="x.mp4")
    with pytest.raises(SourceError, match=">= 0"):
        make_spec(camera=-1)


def test_probe_and_read_real_file(shared):
    path = shared("data", "videos", "mmaction2_test_ucf101_apply_eye_makeup.avi")
    spec = make_spec(video=str(path), max_frames=50)
    info = probe(spec)
    assert (info.width, info.height) == (320, 240) and info.fps_known and info.fps == pytest.approx(25.0)
    with FrameSource(spec, info) as src:
        frames = []
        while (f := src.read()) is not None:
            frames.append(f)
    assert [f.index for f in frames] == list(range(50))
    assert frames[10].timestamp == pytest.approx(10 / 25.0)
    ref = cv2.VideoCapture(str(path))
    ok, first = ref.read()
    ref.release()
    assert ok and (frames[0].image == first).all()


def test_realtime_pacing_never_runs_ahead(shared):
    path = shared("data", "videos", "mmaction2_test_ucf101_apply_eye_makeup.avi")
    spec = make_spec(video=str(path), realtime=True, max_frames=13)
    info = probe(spec)
    start = time.monotonic()
    with FrameSource(spec, info) as src:
        n = 0
        while src.read() is not None:
            n += 1
    # 13 frames at 25 fps cannot be delivered in less than 12/25 s (a lower bound only: no speed claim)
    assert n == 13 and time.monotonic() - start >= 12 / 25.0 - 0.01


def test_stream_reconnects_after_loss(shared):
    """A live source that ends (a file opened as a 'stream') is reopened with back-off."""
    path = shared("data", "videos", "mmaction2_test_ucf101_apply_eye_makeup.avi")
    n = 164
    spec = SourceSpec("stream", str(path), reconnect=True, max_frames=n + 20)
    info = probe(spec)
    with FrameSource(spec, info) as src:
        src.BACKOFF_START = 0.05
        indices = []
        while (f := src.read()) is not None:
            indices.append(f.index)
    assert indices == list(range(n + 20)) and src.reconnects == 1 and src.error is None


def test_stream_without_reconnect_reports_loss(shared):
    path = shared("data", "videos", "mmaction2_test_ucf101_apply_eye_makeup.avi")
    spec = SourceSpec("stream", str(path), reconnect=False)
    with FrameSource(spec, probe(spec)) as src:
        while src.read() is not None:
            pass
    assert src.error and "stopped delivering frames" in src.error


def test_stop_interrupts_reconnect_backoff(tmp_path, shared):
    path = shared("data", "videos", "mmaction2_test_ucf101_apply_eye_makeup.avi")
    spec = SourceSpec("stream", str(path), reconnect=True)
    info = probe(spec)
    stop = {"now": False}
    src = FrameSource(spec, info, stop=lambda: stop["now"])
    src.open()
    src.spec = SourceSpec("stream", str(tmp_path / "gone.mp4"), reconnect=True)  # the stream vanishes
    src._cap.release()
    start = time.monotonic()
    stop_at = start + 0.5

    def stopper() -> bool:
        if time.monotonic() > stop_at:
            stop["now"] = True
        return stop["now"]

    src._stop = stopper
    assert src.read() is None
    assert time.monotonic() - start < 5  # back-off sleeps wake up for stop
    src.close()


def test_probe_rejects_unreachable_stream():
    with pytest.raises(SourceError, match="cannot open stream"):
        probe(make_spec(video="rtsp://127.0.0.1:9/none"))


def test_one_fps_rule_for_every_reader():
    """`core.video.resolve_fps`: the live source, the dataset and pose extraction all take a container's
    frame rate only when it is plausible, else the default (and say so)."""
    from core.video import DEFAULT_FPS, resolve_fps

    assert resolve_fps(29.97) == (29.97, True)
    for garbage in (0, None, float("nan"), float("inf"), 0.5, 90000.0, "x"):
        assert resolve_fps(garbage) == (DEFAULT_FPS, False)
    assert resolve_fps(0, default=25.0) == (25.0, False)
