"""Which sampled frames form each prediction window, in order, from out-of-order pose results.

Vocabulary: a *tick* is one frame the stream sampler selected, numbered 0, 1, 2, ... in arrival order.
The sampler runs at the pose stream's step (`pose_tau`), the finer of the two streams. A checkpoint whose
pose stream sees k times as many frames as its RGB stream (`pose_frames = k * frames`,
`pose_tau = tau / k`, Table 13 of the paper) takes every k-th tick as an RGB frame. Windows are laid
out exactly like a training clip from `core.sampling.clip_indices(start=...)`: the window's first pose
frame is also its first RGB frame. A window is `pose_frames` consecutive ticks and starts on a tick that
is a multiple of `k * stride`, so RGB frames are always the ticks divisible by k and only those ticks need
an RGB crop. For the common k = 1 everything reduces to "the last `frames` sampled frames".

This module is pure bookkeeping (no processes, no shared memory) so it can be tested exhaustively; the
pipeline's assembly process drives it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from core.errors import UserError


class WindowPlanError(UserError, ValueError):
    """The checkpoint's temporal layout is not one the live pipeline can stream."""


@dataclass(frozen=True)
class WindowPlan:
    """Temporal layout of one prediction window, in ticks."""

    frames: int        # T: RGB frames per window
    pose_frames: int   # T_pose: pose frames per window
    stride: int = 1    # predictions every `stride` RGB-frame steps (k * stride ticks)

    def __post_init__(self) -> None:
        if self.frames < 1 or self.pose_frames < 1:
            raise WindowPlanError(f"a window needs at least one frame (frames={self.frames}, pose_frames={self.pose_frames})")
        if self.pose_frames % self.frames:
            raise WindowPlanError(f"pose_frames ({self.pose_frames}) must be a multiple of frames ({self.frames})")
        if self.stride < 1:
            raise WindowPlanError(f"stride must be >= 1, got {self.stride}")

    @classmethod
    def from_config(cls, config, stride: int = 1) -> "WindowPlan":
        """From a `core.model.ModelConfig` (frames, tau, pose_frames, pose_tau)."""
        frames, pose_frames = int(config.frames), int(config.pose_frames)
        tau, pose_tau = float(config.tau), float(config.pose_tau)
        uses_rgb = getattr(config, "uses_appearance", True)
        uses_pose = getattr(config, "uses_pose", True)
        if uses_rgb and uses_pose:
            if pose_frames % frames:
                raise WindowPlanError(f"checkpoint pose_frames={pose_frames} is not a multiple of frames={frames}")
            k = pose_frames // frames
            if abs(pose_tau * k - tau) > 1e-6:
                raise WindowPlanError(f"checkpoint pose_tau={pose_tau} is not tau/k={tau}/{k}: the streams would not cover the same time")
        return cls(frames=frames, pose_frames=pose_frames, stride=stride)

    @property
    def k(self) -> int:
        """Pose frames per RGB frame."""
        return self.pose_frames // self.frames

    @property
    def step(self) -> int:
        """Ticks between consecutive window ends."""
        return self.k * self.stride

    def needs_rgb(self, tick: int) -> bool:
        return tick % self.k == 0

    def is_window_end(self, tick: int) -> bool:
        first = tick + 1 - self.pose_frames
        return first >= 0 and first % self.step == 0

    def window(self, end: int) -> tuple[np.ndarray, np.ndarray]:
        """(pose ticks, RGB ticks) of the window that ends at tick `end`."""
        if not self.is_window_end(end):
            raise ValueError(f"tick {end} does not end a window")
        first = end + 1 - self.pose_frames
        return np.arange(first, end + 1), np.arange(first, end + 1, self.k)

    def release_after(self, end: int) -> int:
        """Lowest tick still needed once the window ending at `end` has been assembled."""
        return end + self.step + 1 - self.pose_frames

    def num_windows(self, num_ticks: int) -> int:
        """Predictions a stream of `num_ticks` sampled frames triggers."""
        if num_ticks < self.pose_frames:
            return 0
        return (num_ticks - self.pose_frames) // self.step + 1


class WindowTracker:
    """Turns completion notices for ticks (in any order) into window ends, in order.

    Windows need consecutive ticks, so a window ends only when every tick up to it is complete.
    """

    def __init__(self, plan: WindowPlan):
        self.plan = plan
        self._pending: set[int] = set()
        self._next = 0            # lowest tick not yet known complete
        self.release = 0          # lowest tick a future window can still use

    @property
    def complete_through(self) -> int:
        """Highest tick such that it and every earlier tick are complete (-1 before any)."""
        return self._next - 1

    def add(self, tick: int) -> list[int]:
        """Record tick `tick` as complete; return the ends of newly completed windows, ascending."""
        if tick < self._next or tick in self._pending:
            raise ValueError(f"tick {tick} reported twice")
        self._pending.add(tick)
        ends = []
        while self._next in self._pending:
            self._pending.remove(self._next)
            if self.plan.is_window_end(self._next):
                ends.append(self._next)
            self._next += 1
        return ends

    def assembled(self, end: int) -> None:
        """The window ending at `end` has been copied out; its older ticks may be reused."""
        self.release = max(self.release, self.plan.release_after(end))


class ProbAverager:
    """Mean of the last `n` window probability vectors (sliding-window smoothing of predictions).

    Why: one window is ~2 s of video; consecutive windows overlap by all but `stride` frames, so averaging
    a few trades a little reaction time for much steadier labels.
    """

    def __init__(self, n: int):
        if n < 1:
            raise ValueError(f"average must be >= 1, got {n}")
        self._window: deque[np.ndarray] = deque(maxlen=n)

    def add(self, probs: np.ndarray) -> np.ndarray:
        self._window.append(np.asarray(probs, dtype=np.float64).reshape(-1))
        return np.mean(np.stack(self._window), axis=0)

    def __len__(self) -> int:
        return len(self._window)
