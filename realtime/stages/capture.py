"""Capture: read the source, keep the frames the stream sampler selects, hand them to the pose workers.

Each kept frame becomes a *tick* (0, 1, 2, ...): it is written into a free raw-ring slot and a `FrameTask`
names it. The flow policy decides what happens when there is no room (`realtime.flow`): a file waits, a
live source drops the frame and counts it. For a live source, the policy also says where the stream jumped
(a long stall, a reconnect): the frame after the jump starts a new *segment*, and assembly never builds a
window across segments.

A live source is opened only once every process is ready: a camera or a stream opened earlier would
buffer frames during start-up, and the first window would begin with a frame seconds older than the rest.
"""
from __future__ import annotations

import time

from core.sampling import StreamSampler
from realtime.flow import flow_for
from realtime.items import FrameTask, StreamEnd, VideoEnd, VideoFrame
from realtime.shm_ring import ShmRing
from realtime.sources import FrameSource, SourceError
from realtime.stages.child import Child, PipelineError, set_threads
from realtime.window import WindowPlan


def run(child: Child, s) -> None:
    set_threads(1)
    ch = child.ch
    flow = flow_for(s)
    raw = ShmRing.attach(ch.rings["raw"])
    plan = WindowPlan.from_config(s.config, stride=s.prediction.stride)
    sample = StreamSampler(s.info.fps, float(s.config.pose_tau), ref_fps=s.prediction.ref_fps)
    tick_slots = ch.rings["rgb"].slots
    video = ShmRing.attach(ch.rings["video"]) if "video" in ch.rings else None   # --output: every frame
    source = FrameSource(s.source, s.info, stop=ch.stop.is_set, warn=lambda text: child.event("warning", text))
    if flow.open_early:
        source.open()
    for slot in range(raw.slots):  # capture is the only taker of raw slots: it fills the free list
        ch.free_raw.put(slot)
    child.event("ready")
    child.wait_until(ch.go.is_set, 0.01)
    child.event("phase", "reading" if flow.open_early else "opening the source")
    if not flow.open_early:
        _open_live(source, child)
    tick, segment = 0, 0
    previous_ts: float | None = None
    counted = segment_reconnects = 0
    expected_shape = (s.info.height, s.info.width, 3)

    def room() -> bool:
        return tick < ch.release_tick.value + tick_slots

    def always() -> bool:
        return True

    try:
        while True:
            child.check()
            frame = source.read()
            if frame is None:
                break
            child.count("frames_read")
            if source.reconnects != counted:
                child.count("reconnects", source.reconnects - counted)
                counted = source.reconnects
            image = frame.image
            if image.shape != expected_shape:  # a stream that came back at another size
                import cv2

                image = cv2.resize(image, (s.info.width, s.info.height), interpolation=cv2.INTER_AREA)
            kept = None
            if sample(frame.index, frame.timestamp):
                kept = _queue_tick(child, flow, raw, room, tick, segment, previous_ts, segment_reconnects,
                                   source.reconnects, frame, image)
            if kept is not None:
                tick, segment, previous_ts, segment_reconnects = kept
            if video is not None:
                slot = flow.take_slot(child, ch.free_video, always)
                if slot is None:
                    child.count("video_dropped")
                else:
                    video.write(frame.index, image, slot=slot)
                    last = tick - 1 if kept is not None else None
                    ch.video.put(VideoFrame(slot=slot, index=frame.index, tick=last,
                                            window_end=last is not None and plan.is_window_end(last)))
    finally:
        source.close()
        if video is not None:
            ch.video.put(VideoEnd("capture"))
            video.close()
    if source.skipped:
        child.count("skipped_frames", source.skipped)
    if source.error:
        raise PipelineError(source.error)
    for _ in range(s.pose.workers):
        ch.tasks.put(None)
    ch.done.put(StreamEnd(tick))
    child.event("captured", {"frames": ch.value("frames_read"), "ticks": tick, "reconnects": source.reconnects,
                             "segments": segment + 1, "plan_windows": plan.num_windows(tick),
                             "skipped_frames": source.skipped})
    raw.close()


def _queue_tick(child: Child, flow, raw: ShmRing, room, tick: int, segment: int, previous_ts: float | None,
                segment_reconnects: int, reconnects: int, frame, image):
    """Hand a sampled frame to the pose workers as tick `tick`; the new (tick, segment, previous_ts,
    segment_reconnects), or None when the flow policy dropped it (counted)."""
    ch = child.ch
    slot = flow.take_slot(child, ch.free_raw, room)
    if slot is None:
        child.count("dropped_frames")
        return None
    if tick and flow.new_segment(previous_ts, frame.timestamp, reconnects != segment_reconnects):
        segment += 1
        child.count("gaps")
    raw.write(tick, image, slot=slot)
    now = time.time()
    ch.tasks.put(FrameTask(tick=tick, slot=slot, index=frame.index, timestamp=frame.timestamp,
                           wall_time=frame.wall_time, capture_ms=(now - frame.wall_time) * 1000.0,
                           queued=now, segment=segment))
    return tick + 1, segment, frame.timestamp, reconnects


def _open_live(source: FrameSource, child: Child) -> None:
    """Open a live source now; with --reconnect a source that does not open yet is retried with back-off."""
    try:
        source.open()
    except SourceError:
        if not source.spec.reconnect or not source.reopen():
            child.check()
            raise PipelineError(source.error or f"cannot open {source.describe()}") from None
        source.reconnects = 0   # the first open took a few tries; nothing was lost yet
