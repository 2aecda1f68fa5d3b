"""The annotated video (`ia-live --output`): every source frame at the source fps, H.264, overlays held
between predictions and legible from 340x256 to 1080p; the encoder (`realtime.video_out`) and the writer's
bookkeeping (`realtime.stages.video.OverlayState`) on their own."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO, ia_live_cmd, ia_live_env, movenet_path, run_ia_live
from realtime.annotate import annotate_frame
from realtime.items import PoseOverlay, PredictionOverlay, VideoFrame
from realtime.stages.video import OverlayState
from realtime.video_out import VideoEncoder, VideoWriteError, h264_available

av = pytest.importorskip("av")


def _decode(path) -> tuple[list[np.ndarray], object, str]:
    """(BGR frames, average rate, codec name) of a video, read with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        return frames, stream.average_rate, stream.codec_context.name


def _message(index: int, label: str, score: float = 0.8, gate: float | None = 0.5) -> dict:
    return {"frame_index": index, "action": label, "action_score": score, "persons": 1,
            "topk": [{"label": label, "index": 0, "score": score}], "appearance_weight": gate, "latency_ms": {}}


# -- the whole pipeline ------------------------------------------------------------------------------------


def test_annotated_video_has_every_source_frame_at_the_source_fps(shared, random_checkpoint, tmp_path):
    """A real 1080p clip (72 frames at 28.05 fps): the annotated video is H.264 with the same frame count
    and frame rate, and differs from the source where the overlay is (label panel, gate bar)."""
    source = shared("data", "videos", "mmaction2_demo_skeleton_ntu_hugging.mp4")
    if not h264_available():
        pytest.skip("PyAV with libx264 is not installed")
    out = tmp_path / "annotated.mp4"
    proc = run_ia_live(["--video", str(source), "--checkpoint", str(random_checkpoint), "--pose-model",
                        str(movenet_path()), "--no-zmq", "--engine", "torch", "--output", str(out),
                        "--dump-json", str(tmp_path / "out.jsonl")], timeout=540)   # 1080p on a loaded CPU
    assert proc.returncode == 0, proc.stderr
    assert "annotated frames (h264)" in proc.stderr
    src_frames, src_rate, _ = _decode(source)
    out_frames, out_rate, codec = _decode(out)
    assert codec == "h264"
    assert len(out_frames) == len(src_frames) == 72
    assert abs(float(out_rate) - float(src_rate)) < 0.01, (out_rate, src_rate)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert lines, "no prediction: nothing would be drawn"
    last = out_frames[-1].astype(np.int16)
    original = src_frames[-1].astype(np.int16)
    h, w = last.shape[:2]
    diff = np.abs(last - original).sum(axis=2)
    assert diff[int(h * 0.95):, :].mean() > 30                   # the gate bar along the bottom
    assert diff[: int(h * 0.08), : int(w * 0.2)].mean() > 30     # the label panel, top left
    assert np.median(diff[int(h * 0.3): int(h * 0.7), int(w * 0.3): int(w * 0.7)]) < 30   # the picture itself


def test_annotated_video_of_a_long_1080p_clip_does_not_hang(shared, random_checkpoint, tmp_path):
    """The NTU drink-water clip (103 frames of 1920x1080): the video ring holds 41 such frames, fewer than
    come before the first prediction, so capture waits for slots while poses race ahead of their frames.
    Before the fix `ia-live --output` hung here in 3 of 4 runs (a race, so this test can miss it; the
    deterministic check is the `OverlayState` test below); it must finish with every frame written."""
    import os
    import signal
    import subprocess

    source = shared("data", "videos", "S001C001P001R001A001_rgb.avi")
    if not h264_available():
        pytest.skip("PyAV with libx264 is not installed")
    out = tmp_path / "annotated.mp4"
    proc = subprocess.Popen(ia_live_cmd(["--video", str(source), "--checkpoint", str(random_checkpoint),
                                         "--pose-model", str(movenet_path()), "--no-zmq", "--engine", "torch",
                                         "--output", str(out), "--quiet"]),
                            cwd=REPO, env=ia_live_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=300)    # ~20 s on 2 cores; a hang never ends
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)      # the supervisor's own shutdown frees its shared memory
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        pytest.fail("ia-live --output hung on a 1080p clip")
    assert proc.returncode == 0, err
    frames, _, _ = _decode(out)
    assert len(frames) == 103


# -- the encoder -------------------------------------------------------------------------------------------


def _frames(count: int, h: int = 256, w: int = 340) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return [np.dstack([(x + 5 * i) % 256, (y * 2) % 256, np.full_like(x, 40)]).astype(np.uint8) for i in range(count)]


@pytest.mark.parametrize("codec", ["h264", "mp4v"])
def test_encoder_writes_every_frame_at_the_given_rate(codec, tmp_path):
    if codec == "h264" and not h264_available():
        pytest.skip("PyAV with libx264 is not installed")
    out = tmp_path / f"{codec}.mp4"
    encoder = VideoEncoder(str(out), 340, 256, 29.97, codec=codec)
    for frame in _frames(30):
        encoder.write(frame)
    encoder.close()
    frames, rate, name = _decode(out)
    assert len(frames) == 30 and frames[0].shape == (256, 340, 3)
    assert abs(float(rate) - 29.97) < 0.01
    assert name == ("h264" if codec == "h264" else "mpeg4")


def test_encoder_handles_odd_sizes(tmp_path):
    if not h264_available():
        pytest.skip("PyAV with libx264 is not installed")
    out = tmp_path / "odd.mp4"
    encoder = VideoEncoder(str(out), 339, 255, 25.0)
    for frame in _frames(5, 255, 339):
        encoder.write(frame)
    encoder.close()
    frames, _, _ = _decode(out)
    assert len(frames) == 5


def test_encoder_on_a_full_disk_raises_naming_the_output(tmp_path):
    """/dev/full behind an .mp4 name: every write fails with ENOSPC, and it must not pass unnoticed."""
    out = tmp_path / "full.mp4"
    out.symlink_to("/dev/full")
    with pytest.raises(VideoWriteError, match=r"full\.mp4.*No space left on device"):
        encoder = VideoEncoder(str(out), 340, 256, 25.0)
        for frame in _frames(60):
            encoder.write(frame)
        encoder.close()


# -- what each frame shows ---------------------------------------------------------------------------------


def _pose(index: int) -> PoseOverlay:
    return PoseOverlay(index=index, coords=np.zeros((1, 17, 2), np.float32), scores=np.ones((1, 17), np.float32),
                       skeleton="coco17")


def test_file_frames_wait_for_the_prediction_that_precedes_them():
    state = OverlayState(wait=True)
    state.frame(VideoFrame(slot=0, index=0, tick=0, window_end=False))
    state.frame(VideoFrame(slot=1, index=1, tick=None, window_end=False))
    assert not state.ready(0) and not state.ready(1)          # the pose of frame 0 is still coming
    state.pose(_pose(0))
    assert state.ready(0) and state.ready(1)
    message, keypoints = state.overlay(1)
    assert message is None and keypoints is not None          # no prediction yet: no label, but the skeleton
    state.frame(VideoFrame(slot=2, index=8, tick=1, window_end=True))
    state.pose(_pose(8))
    state.frame(VideoFrame(slot=3, index=9, tick=None, window_end=False))
    assert state.ready(7) and not state.ready(8) and not state.ready(9)   # window 8's prediction is pending
    state.prediction(PredictionOverlay(index=8, message=_message(8, "wave")))
    assert state.ready(9)
    assert state.overlay(8)[0]["action"] == "wave"
    assert state.overlay(9)[0]["action"] == "wave"            # held between predictions
    state.prediction(PredictionOverlay(index=16, message=_message(16, "clap")))
    assert state.overlay(15)[0]["action"] == "wave"
    assert state.overlay(16)[0]["action"] == "clap"


def test_a_pose_or_prediction_that_arrives_before_its_frame_is_not_waited_for():
    """The writer's queue has three producers and no order between them: capture queues a tick to the pose
    workers *before* it announces the frame (and may then wait for a video slot), so the pose, even the
    window's prediction, can come first. Such a frame must still be drawable (before the fix it waited
    forever, the ring filled and capture stalled: `ia-live --output` hung on a 1080p NTU clip)."""
    state = OverlayState(wait=True)
    state.pose(_pose(0))                                       # pose of frame 0 before frame 0
    state.frame(VideoFrame(slot=0, index=0, tick=0, window_end=False))
    assert state.ready(0)
    state.pose(_pose(8))
    state.prediction(PredictionOverlay(index=8, message=_message(8, "wave")))   # both before frame 8
    state.frame(VideoFrame(slot=1, index=8, tick=1, window_end=True))
    state.frame(VideoFrame(slot=2, index=9, tick=None, window_end=False))
    assert state.ready(8) and state.ready(9)
    assert state.overlay(9)[0]["action"] == "wave"
    state.frame(VideoFrame(slot=3, index=16, tick=2, window_end=True))   # its pose and prediction still to come
    assert not state.ready(16)
    state.pose(_pose(16))
    assert not state.ready(16)
    state.prediction(PredictionOverlay(index=16, message=_message(16, "clap")))
    assert state.ready(16)


def test_live_frames_never_wait():
    state = OverlayState(wait=False)
    state.frame(VideoFrame(slot=0, index=0, tick=0, window_end=True))
    assert state.ready(0)
    assert state.overlay(0) == (None, None)


def test_end_of_predictions_releases_every_frame():
    state = OverlayState(wait=True)
    state.frame(VideoFrame(slot=0, index=5, tick=0, window_end=True))
    assert not state.ready(5)
    state.everything_arrived()
    assert state.ready(5)


# -- legibility --------------------------------------------------------------------------------------------


def _label_panel_height(h: int, w: int) -> int:
    frame = np.full((h, w, 3), 200, np.uint8)
    out = annotate_frame(frame, _message(0, "wave"))
    column = np.abs(out[:, w // 8].astype(int) - 200).sum(axis=1) > 30   # a column through the label panel
    rows = np.flatnonzero(column[: h // 2])
    return int(rows.max() - rows.min() + 1)


def test_overlay_scales_with_the_frame():
    """Text and panels grow with the frame: the label panel is the same share of the height at 340x256
    and at 1920x1080 (within 30 %), so a 1080p video is as readable as a small one."""
    small, large = _label_panel_height(256, 340), _label_panel_height(1080, 1920)
    assert small >= 20                                 # legible at 256 rows: the panel holds a ~13 px font
    ratio = (large / 1080) / (small / 256)
    assert 0.7 < ratio < 1.3, (small, large)
