"""Assembly: ticks (in any order) -> windows (in order) -> the network's input tensors.

`realtime.window.WindowTracker` says when every tick of a window is done. The window's RGB crops and
keypoints are then read from the tick rings and turned into model inputs by `core.clip.ClipBuilder`
(`rgb_input`, `pose_input`: the dataset's chain), written straight into a free window-ring slot, and
announced to inference with a `WindowTask`. A window that would span two segments of a live stream (a gap
or a reconnect, `realtime.flow`) is not built: it would mix frames from before and after the jump.
"""
from __future__ import annotations

import time

import numpy as np

from core.clip import ClipBuilder, InputSpec
from realtime.flow import flow_for
from realtime.items import StreamEnd, TickDone, WindowTask
from realtime.shm_ring import RingError, ShmRing
from realtime.stages.child import Child
from realtime.window import WindowPlan, WindowTracker


def run(child: Child, s) -> None:
    ch = child.ch
    flow = flow_for(s)
    plan = WindowPlan.from_config(s.config, stride=s.prediction.stride)
    builder = ClipBuilder(InputSpec.from_config(s.config), s.info.height, s.info.width)
    rgb_ring = ShmRing.attach(ch.rings["rgb"])
    kp_ring = ShmRing.attach(ch.rings["keypoints"])
    win_rgb = ShmRing.attach(ch.rings["win_rgb"])
    win_pose = ShmRing.attach(ch.rings["win_pose"])
    crops = np.empty((plan.frames, *rgb_ring.spec.shape), np.uint8)
    window_kp = np.empty((plan.pose_frames, *kp_ring.spec.shape), np.float32)
    tracker = WindowTracker(plan)
    ticks: dict[int, TickDone] = {}
    total_ticks: int | None = None
    built = skipped = split = 0
    for slot in range(win_rgb.slots):  # assembly is the only taker of window slots
        ch.free_win.put(slot)
    child.event("ready")

    def build(slot: int, number: int, pose_ticks: np.ndarray, rgb_ticks: np.ndarray) -> None:
        for i, t in enumerate(rgb_ticks):
            rgb_ring.read(int(t), out=crops[i])
        builder.rgb_input(crops, out=win_rgb.begin_write(number, slot=slot))
        win_rgb.end_write(number, slot=slot)
        for i, t in enumerate(pose_ticks):
            kp_ring.read(int(t), out=window_kp[i])
        coords, scores = window_kp[..., :2], window_kp[..., 2]
        builder.pose_input(coords, scores, out=win_pose.begin_write(number, slot=slot))
        win_pose.end_write(number, slot=slot)

    try:
        while total_ticks is None or tracker.complete_through + 1 < total_ticks:
            msg = child.get(ch.done)
            if isinstance(msg, StreamEnd):
                total_ticks = msg.ticks
                continue
            ticks[msg.tick] = msg
            for end in tracker.add(msg.tick):
                pose_ticks, rgb_ticks = plan.window(end)
                first, last = ticks[int(pose_ticks[0])], ticks[end]
                slot = None
                if first.segment != last.segment:
                    split += 1
                else:
                    slot = flow.take_slot(child, ch.free_win, lambda: True)
                    if slot is None:
                        skipped += 1
                        child.count("dropped_windows")
                if slot is not None:
                    try:
                        build(slot, built, pose_ticks, rgb_ticks)
                    except RingError:   # live only: a slot was reused under us; skip this window
                        ch.free_win.put(slot)
                        slot = None
                        skipped += 1
                        child.count("dropped_windows")
                tracker.assembled(end)
                ch.release_tick.value = tracker.release
                if slot is not None:
                    now = time.time()
                    ch.windows.put(WindowTask(
                        window=built, slot=slot, last=last, frames=tuple(ticks[int(t)].index for t in rgb_ticks),
                        window_persons=max(ticks[int(t)].persons for t in pose_ticks),
                        latency={"capture": last.capture_ms, "pose": last.pose_ms,
                                 "assemble": (now - last.done) * 1000.0},
                        queued=now))
                    built += 1
                for t in [t for t in ticks if t < tracker.release]:
                    del ticks[t]
        ch.windows.put(None)
        child.event("assembled", {"windows": built, "skipped": skipped, "split_by_gap": split})
    finally:
        for ring in (rgb_ring, kp_ring, win_rgb, win_pose):
            ring.close()
