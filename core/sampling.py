"""The one temporal sampling shared by live inference, training and evaluation.

A checkpoint's T (frames per clip) and tau (frame interval) were learned on ~30 fps video, so a clip
must span the same *seconds* whatever the source rate: the step between sampled frames is
``tau * fps / ref_fps`` source frames (``ref_fps`` = 30). A 60 fps file is sampled every 16 frames
for tau = 8, a 10 fps webcam every 2.67 frames.

Rounding: the k-th index of a clip starting at ``start`` is ``start + k*step`` rounded to the nearest
frame, ties going down (``ceil(x - 0.5)``). The streaming sampler picks "the first frame at or after
target time minus half a frame", which is the same rule, so a file streamed through
``StreamSampler`` yields exactly ``clip_indices(..., start=0)``.

End of video: indices past the last frame are clamped to the last frame (the released code, with
``frame_interval`` fixed, instead requires the clip to fit; clamping repeats the last frame for very
short videos rather than failing).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["frame_step", "clip_indices", "clip_span", "frames_needed", "train_clip_start", "test_clip_starts",
           "StreamSampler", "windows_for"]

# tolerance (in source frames) so that ties and float noise resolve identically in both code paths
_EPS = 1e-6


def _check(num_frames: int, fps: float, T: int, tau: float, ref_fps: float) -> None:
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if not (fps > 0 and ref_fps > 0 and tau > 0):
        raise ValueError(f"fps, tau and ref_fps must be positive, got fps={fps} tau={tau} ref_fps={ref_fps}")
    if T <= 0:
        raise ValueError(f"T must be positive, got {T}")


def frame_step(fps: float, tau: float, ref_fps: float = 30.0) -> float:
    """Source frames between two sampled frames: ``tau * fps / ref_fps``."""
    return tau * fps / ref_fps


def clip_span(fps: float, T: int, tau: float, ref_fps: float = 30.0) -> float:
    """Source frames from a clip's first sampled frame to its last: ``(T - 1) * step``."""
    return (T - 1) * frame_step(fps, tau, ref_fps)


def _round_index(x: np.ndarray | float) -> np.ndarray:
    return np.ceil(np.asarray(x, dtype=np.float64) - 0.5 - _EPS).astype(np.int64)


def clip_indices(num_frames: int, fps: float, T: int, tau: float, start: float,
                 ref_fps: float = 30.0) -> np.ndarray:
    """Source frame indices ``round(start + k*step)``, k = 0..T-1, clamped to ``[0, num_frames-1]``."""
    _check(num_frames, fps, T, tau, ref_fps)
    step = frame_step(fps, tau, ref_fps)
    idx = _round_index(start + np.arange(T, dtype=np.float64) * step)
    return np.clip(idx, 0, num_frames - 1)


def frames_needed(fps: float, T: int, tau: float, ref_fps: float = 30.0) -> int:
    """Source frames a video must have for one whole clip starting at frame 0: the last index of
    `clip_indices` (unclamped) plus one. Why: the live pipeline's first window is exactly that clip
    (`StreamSampler` reproduces `clip_indices(start=0)`), so a shorter file can never yield a prediction
    and is refused up front instead of after a long start-up."""
    span = clip_span(fps, T, tau, ref_fps)
    return int(clip_indices(int(math.ceil(span)) + 2, fps, T, tau, start=0, ref_fps=ref_fps)[-1]) + 1


def train_clip_start(num_frames: int, fps: float, T: int, tau: float, rng: np.random.Generator,
                     ref_fps: float = 30.0) -> int:
    """Uniformly random integer start such that the whole clip fits; 0 if the video is too short."""
    _check(num_frames, fps, T, tau, ref_fps)
    room = num_frames - 1 - clip_span(fps, T, tau, ref_fps)
    if room < 0:
        return 0
    return int(rng.integers(0, math.floor(room + _EPS) + 1))


def test_clip_starts(num_frames: int, fps: float, T: int, tau: float, n_clips: int = 10,
                     ref_fps: float = 30.0) -> np.ndarray:
    """``n_clips`` integer starts spread evenly over the video (TSM style: the free room is cut into
    ``n_clips`` equal segments and each clip starts at its segment's centre). Starts repeat when the
    video is shorter than ``n_clips`` frames of room; all are 0 when the clip does not fit."""
    _check(num_frames, fps, T, tau, ref_fps)
    if n_clips <= 0:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    room = num_frames - 1 - clip_span(fps, T, tau, ref_fps)
    if room <= 0:
        return np.zeros(n_clips, dtype=np.int64)
    tick = (math.floor(room + _EPS) + 1) / n_clips
    return np.floor(tick / 2 + tick * np.arange(n_clips)).astype(np.int64)


class StreamSampler:
    """Decides, frame by frame, which frames of a stream to sample (one every ``tau / ref_fps`` s).

    The first frame is sampled and anchors the schedule; the k-th target is ``anchor + k * period``,
    and a frame is taken when it is the first at or after its target minus half a nominal frame
    (``0.5 / fps_hint``), i.e. the frame nearest the target on a regular source. After a stall (the
    frame just taken is already at or past the next target too) the schedule re-anchors on that frame
    instead of taking every following frame to catch up, so samples never bunch. A timestamp going
    backwards (a looping file, a restarted camera) also re-anchors.
    """

    def __init__(self, fps_hint: float, tau: float, ref_fps: float = 30.0) -> None:
        if not (fps_hint > 0 and tau > 0 and ref_fps > 0):
            raise ValueError(f"fps_hint, tau and ref_fps must be positive, got {fps_hint}, {tau}, {ref_fps}")
        self.fps_hint = float(fps_hint)
        self.tau = float(tau)
        self.ref_fps = float(ref_fps)
        self.step = frame_step(self.fps_hint, self.tau, self.ref_fps)  # in nominal source frames
        self.reset()

    def reset(self) -> None:
        self._anchor: float | None = None
        self._k = 0  # index of the next target
        self._last_ts: float | None = None
        self.num_sampled = 0
        self.num_reanchors = 0

    @property
    def period_s(self) -> float:
        return self.tau / self.ref_fps

    def __call__(self, index: int, timestamp_s: float | None = None) -> bool:
        """True if the frame should be sampled. ``timestamp_s`` defaults to ``index / fps_hint``."""
        ts = index / self.fps_hint if timestamp_s is None else float(timestamp_s)
        backwards = self._last_ts is not None and ts < self._last_ts
        self._last_ts = ts
        if self._anchor is None or backwards:
            if backwards:
                self.num_reanchors += 1
            return self._take(ts, anchor=True)
        pos = (ts - self._anchor) * self.fps_hint  # in nominal source frames since the anchor
        if pos < self._k * self.step - 0.5 - _EPS:
            return False
        # taken; if the next target has already passed as well we fell behind: re-anchor here
        behind = pos >= (self._k + 1) * self.step - 0.5 - _EPS and self.step >= 1.0
        if behind:
            self.num_reanchors += 1
        return self._take(ts, anchor=behind)

    should_sample = __call__

    def _take(self, ts: float, anchor: bool) -> bool:
        if anchor:
            self._anchor, self._k = ts, 1
        else:
            self._k += 1
        self.num_sampled += 1
        return True


def windows_for(num_sampled: int, T: int, stride: int) -> int:
    """Predictions triggered by ``num_sampled`` sampled frames when the first fires at sampled frame
    ``T`` and then every ``stride`` sampled frames: ``0`` if fewer than T, else
    ``1 + (num_sampled - T) // stride``."""
    if T <= 0 or stride <= 0:
        raise ValueError(f"T and stride must be positive, got T={T} stride={stride}")
    if num_sampled < T:
        return 0
    return 1 + (num_sampled - T) // stride
