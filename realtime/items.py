"""What travels on the pipeline's queues: small frozen records, never an image.

Images (frames, crops, windows) live in shared-memory rings (`realtime.shm_ring`); a record names the ring
item (a tick, a slot, a window number) and carries the timings the message reports. One record type per
hop, so a stage's inputs and outputs are readable in its signature:

    capture --FrameTask--> pose worker --TickDone--> assembly --WindowTask--> inference --Prediction--> publisher
    capture --StreamEnd (on the TickDone queue)--> assembly

With ``--output``, the annotated-video writer has one queue of its own, fed by three stages: capture sends a
`VideoFrame` for every source frame (the image in the ``video`` ring), the pose workers a `PoseOverlay` per
tick, the publisher a `PredictionOverlay` per message; capture and the publisher each end their part with
`VideoEnd`.

A queue's end is a ``None`` (capture sends one per pose worker on the task queue; assembly and inference
each send one downstream when their input ended).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FrameTask", "TickDone", "StreamEnd", "WindowTask", "Prediction", "VideoFrame", "PoseOverlay",
           "PredictionOverlay", "VideoEnd"]


@dataclass(frozen=True)
class FrameTask:
    """A sampled source frame waiting in raw-ring slot ``slot`` for pose estimation."""

    tick: int             # sampled-frame number (0, 1, 2, ... in capture order)
    slot: int             # raw ring slot holding the frame
    index: int            # source frame index
    timestamp: float      # stream time of the frame (media time for files, read time for live sources), s
    wall_time: float      # unix time the frame was read
    capture_ms: float     # read -> handed to the pose queue
    queued: float         # unix time it was queued
    segment: int = 0      # continuous stretch of the stream it belongs to (a gap or reconnect starts a new one)


@dataclass(frozen=True)
class TickDone:
    """A tick's crop and keypoints are in the rings. ``keypoints`` (every person found, in source-frame pixels:
    coords, scores, skeleton) only on ticks that end a window: they become the message's `people` (with track
    ids, `realtime.people`) and the annotated video draws them on the window's last frame."""

    tick: int
    index: int
    timestamp: float
    wall_time: float
    capture_ms: float
    pose_ms: float        # queued -> crop and keypoints written
    done: float           # unix time it was done
    persons: int          # persons the estimator found in this frame
    segment: int = 0
    keypoints: tuple[np.ndarray, np.ndarray, str] | None = None


@dataclass(frozen=True)
class StreamEnd:
    """Capture is done: ``ticks`` sampled frames were queued in all."""

    ticks: int


@dataclass(frozen=True)
class WindowTask:
    """An assembled window in window-ring slot ``slot``, described by its last tick."""

    window: int           # window number (ring item)
    slot: int
    last: TickDone        # the window's last tick
    frames: tuple[int, ...]   # source frame indices of its RGB frames
    window_persons: int   # most persons found in any of its pose frames (0: nobody in the whole window)
    latency: dict[str, float]
    queued: float


@dataclass(frozen=True)
class Prediction:
    """One window's result, ready to become a message (`realtime.messages.build_message`)."""

    seq: int
    window: WindowTask
    action: str
    action_score: float
    topk: list[dict[str, Any]]
    gate: float           # NaN: the variant has no gate
    inference_ms: float   # window queued -> engine done
    engine_ms: float      # the engine call alone
    engine: str


@dataclass(frozen=True)
class VideoFrame:
    """A source frame (every one, not only sampled ones) waiting in ``video``-ring slot ``slot``."""

    slot: int
    index: int            # source frame index
    tick: int | None      # its tick when the stream sampler kept it (a pose and maybe a prediction will follow)
    window_end: bool      # the tick ends a window: a prediction for this frame will follow (files)


@dataclass(frozen=True)
class PoseOverlay:
    """The persons the pose backend found in source frame ``index`` (source pixels, backend skeleton)."""

    index: int
    coords: np.ndarray    # (P, J, 2)
    scores: np.ndarray    # (P, J)
    skeleton: str


@dataclass(frozen=True)
class PredictionOverlay:
    """What the video draws of one published message (its window ended at source frame ``index``)."""

    index: int
    message: dict[str, Any]

    #: the message fields the overlay draws (`realtime.annotate.annotate_frame`); only these travel
    FIELDS = ("frame_index", "action", "action_score", "topk", "appearance_weight", "persons", "latency_ms")

    @classmethod
    def of(cls, message: dict[str, Any]) -> "PredictionOverlay":
        return cls(index=int(message["frame_index"]), message={k: message[k] for k in cls.FIELDS if k in message})


@dataclass(frozen=True)
class VideoEnd:
    """``who`` ("capture" or "publisher") has sent its last item to the video writer."""

    who: str
