"""Video writer (``--output``): every source frame, annotated, encoded at the source's frame rate.

Capture hands over every frame it reads (the ``video`` ring, a free-slot queue, a `VideoFrame` each), the
pose workers the persons of each tick (`PoseOverlay`), the publisher each message (`PredictionOverlay`).
A frame is drawn with the latest prediction whose window ended at or before it (label, top-k and gate are
*held* between predictions, as a viewer expects) and the skeletons of the latest pose frame at or before it.

Files (`realtime.flow.BackPressure`) are exact: a frame waits in its ring slot until every prediction and
pose that belongs before it has arrived (a window end or a tick at or before the frame is still pending), so
the video shows what the published messages say, frame for frame. This never deadlocks: what a held frame
waits for was already captured, and capture only waits for a free slot, which the writer returns as soon as
the pipeline catches up. The three producers write to one queue without ordering between them, so a
tick's pose (or a window's prediction) can reach the writer *before* capture's `VideoFrame` of that frame
(capture queues the tick first, then may wait for a video slot); `OverlayState` remembers what came early,
else such a frame would wait forever for what has already passed, fill the ring and stall capture.
Live sources never wait: a frame is drawn at once with what is known, and a frame that finds no free slot
is not recorded (counted in ``video_dropped``).
"""
from __future__ import annotations

from collections import deque

import numpy as np

from realtime.annotate import annotate_frame
from realtime.flow import flow_for
from realtime.items import PoseOverlay, PredictionOverlay, VideoEnd, VideoFrame
from realtime.shm_ring import ShmRing
from realtime.stages.child import Child, set_threads
from realtime.video_out import VideoEncoder

class OverlayState:
    """What is drawn on each frame, and when a frame may be drawn (pure bookkeeping, testable alone)."""

    def __init__(self, wait: bool) -> None:
        self.wait = wait                          # files: hold frames until what precedes them has arrived
        self._pending_predictions: deque[int] = deque()
        self._pending_poses: set[int] = set()
        self._predictions: deque[PredictionOverlay] = deque()
        self._poses: dict[int, PoseOverlay] = {}
        self._early_poses: set[int] = set()       # poses that arrived before their frame was announced
        self._last_prediction = -1                # predictions arrive in order: the latest window end seen

    def frame(self, item: VideoFrame) -> None:
        if not self.wait or item.tick is None:
            return
        if item.index in self._early_poses:
            self._early_poses.discard(item.index)
        else:
            self._pending_poses.add(item.index)
        if item.window_end and item.index > self._last_prediction:
            self._pending_predictions.append(item.index)

    def pose(self, item: PoseOverlay) -> None:
        self._poses[item.index] = item
        if item.index in self._pending_poses:
            self._pending_poses.discard(item.index)
        elif self.wait:
            self._early_poses.add(item.index)     # frames are announced in order: this one is still to come

    def prediction(self, item: PredictionOverlay) -> None:
        self._predictions.append(item)
        self._last_prediction = max(self._last_prediction, item.index)
        while self._pending_predictions and self._pending_predictions[0] <= item.index:
            self._pending_predictions.popleft()

    def everything_arrived(self) -> None:
        """The publisher is done: nothing else will come; draw the rest with what is known."""
        self.wait = False
        self._pending_predictions.clear()
        self._pending_poses.clear()
        self._early_poses.clear()

    def ready(self, index: int) -> bool:
        """May source frame `index` be drawn now?"""
        if not self.wait:
            return True
        if self._pending_predictions and self._pending_predictions[0] <= index:
            return False
        return not any(i <= index for i in self._pending_poses)

    def overlay(self, index: int) -> tuple[dict | None, tuple[np.ndarray, np.ndarray, str] | None]:
        """(message, keypoints) to draw on frame `index`; forgets what later frames no longer need."""
        while len(self._predictions) > 1 and self._predictions[1].index <= index:
            self._predictions.popleft()
        message = None
        if self._predictions and self._predictions[0].index <= index:
            message = self._predictions[0].message
        earlier = [i for i in self._poses if i <= index]
        keypoints = None
        if earlier:
            latest = max(earlier)
            for i in earlier:
                if i != latest:
                    del self._poses[i]
            pose = self._poses[latest]
            keypoints = (pose.coords, pose.scores, pose.skeleton)
        return message, keypoints


def run(child: Child, s) -> None:
    set_threads(1)
    ch = child.ch
    ring = ShmRing.attach(ch.rings["video"])
    height, width = ring.spec.shape[:2]
    child.event("phase", f"opening {s.output.video_out}")
    encoder = VideoEncoder(s.output.video_out, width, height, s.info.fps)
    for slot in range(ring.slots):   # the writer is the only one returning slots: it fills the free list
        ch.free_video.put(slot)
    state = OverlayState(wait=not flow_for(s).live)
    held: deque[VideoFrame] = deque()
    ended: set[str] = set()
    image = np.empty(ring.spec.shape, dtype=ring.spec.dtype)
    closed = False
    child.event("ready", {"video": encoder.codec})
    try:
        while len(ended) < 2 or held:
            if len(ended) < 2:
                item = child.get(ch.video)
                if isinstance(item, VideoFrame):
                    held.append(item)
                    state.frame(item)
                elif isinstance(item, PoseOverlay):
                    state.pose(item)
                elif isinstance(item, PredictionOverlay):
                    state.prediction(item)
                elif isinstance(item, VideoEnd):
                    ended.add(item.who)
                    if item.who == "publisher":
                        state.everything_arrived()
            while held and (len(ended) == 2 or state.ready(held[0].index)):
                frame = held.popleft()
                ring.read(frame.index, out=image, slot=frame.slot)
                ch.free_video.put(frame.slot)
                message, keypoints = state.overlay(frame.index)
                encoder.write(annotate_frame(image, message, keypoints))
        encoder.close()
        closed = True
        child.event("video", {"frames": encoder.frames, "codec": encoder.codec, "path": s.output.video_out})
    finally:
        if not closed:
            encoder.discard()
        ring.close()
