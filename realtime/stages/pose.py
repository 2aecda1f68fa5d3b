"""Pose worker: per tick, the frame's RGB crop and the keypoints of the persons a window will draw.

For each `FrameTask` it copies the frame out of the raw ring (and frees the slot at once), stores the
test-time RGB crop when the tick is an RGB frame (`core.clip.ClipBuilder.crop_frame`), runs the pose backend
and stores the drawn persons (`ClipBuilder.keypoints`: the model's skeleton, top-k by score, padded) in the
keypoints ring. Assembly turns a window's crops and keypoints into model inputs with the same
`ClipBuilder`, so the chain is the one the training dataset runs (`core.clip`). Ticks finish out of order
when several workers run; assembly puts them back in order.
"""
from __future__ import annotations

import time

import numpy as np

from core.clip import ClipBuilder, InputSpec
from core.skeletons import get_skeleton
from realtime.items import FrameTask, PoseOverlay, TickDone
from realtime.shm_ring import ShmRing
from realtime.stages.child import Child, set_threads
from realtime.window import WindowPlan


def run(child: Child, s, worker: int) -> None:
    set_threads(1)
    ch = child.ch
    plan = WindowPlan.from_config(s.config, stride=s.prediction.stride)
    raw = ShmRing.attach(ch.rings["raw"])
    rgb_ring = ShmRing.attach(ch.rings["rgb"])
    kp_ring = ShmRing.attach(ch.rings["keypoints"])
    video = "video" in ch.rings   # --output: the annotated video draws every tick's persons
    backend = s.pose.backend   # configured in the parent; opens its runtime (a session) on first use
    builder = ClipBuilder(InputSpec.from_config(s.config), s.info.height, s.info.width)
    joints = get_skeleton(backend.skeleton).num_joints
    frame = np.empty(raw.spec.shape, dtype=raw.spec.dtype)
    child.event("ready")
    try:
        while True:
            task: FrameTask | None = child.get(ch.tasks)
            if task is None:
                break
            raw.read(task.tick, out=frame, slot=task.slot)
            ch.free_raw.put(task.slot)
            window_end = plan.is_window_end(task.tick)
            if plan.needs_rgb(task.tick):
                rgb_ring.write(task.tick, builder.crop_frame(frame))
            coords, scores = backend(frame, task.index)
            coords = np.asarray(coords, np.float32).reshape(-1, joints, 2)
            scores = np.asarray(scores, np.float32).reshape(-1, joints)
            if video:
                ch.video.put(PoseOverlay(index=task.index, coords=coords, scores=scores, skeleton=backend.skeleton))
            selected_c, selected_s = builder.keypoints(coords[None], scores[None], backend.skeleton)
            view = kp_ring.begin_write(task.tick)
            view.fill(0.0)
            view[: selected_c.shape[1], :, :2] = selected_c[0]
            view[: selected_s.shape[1], :, 2] = selected_s[0]
            kp_ring.end_write(task.tick)
            now = time.time()
            ch.done.put(TickDone(tick=task.tick, index=task.index, timestamp=task.timestamp, wall_time=task.wall_time,
                                 capture_ms=task.capture_ms, pose_ms=(now - task.queued) * 1000.0, done=now,
                                 persons=int(coords.shape[0]), segment=task.segment,
                                 keypoints=(coords, scores, backend.skeleton) if window_end else None))
    finally:
        backend.close()
        for ring in (raw, rgb_ring, kp_ring):
            ring.close()
