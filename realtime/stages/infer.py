"""Inference: window tensors -> class probabilities -> averaged -> decided action.

The model comes from the checkpoint bytes the parent read and validated (`core.checkpoint.CheckpointBlob`,
handed over in a shared-memory segment), so the file is read and hashed once per run; the configured engine plugin (`realtime.engines`) builds the
engine around it and is warmed up on zeros before the process reports ready, so the first prediction's
latency is a prediction's, not a compilation's. Live, the newest window wins and stale ones go back to
assembly unprocessed (`realtime.flow.QueueReader`).
"""
from __future__ import annotations

import math
import time

import numpy as np

from core.errors import EXIT_USAGE, one_line
from realtime.flow import flow_for
from realtime.items import Prediction, WindowTask
from realtime.messages import topk_from_probs
from realtime.shm_ring import RingError, ShmRing
from realtime.stages.child import Child, PipelineError, set_threads
from realtime.window import ProbAverager


def run(child: Child, s, path: str, sha256: str) -> None:
    import torch

    from core.checkpoint import CheckpointBlob
    from realtime.engines import EngineError

    torch.set_num_threads(max(1, s.threads))
    set_threads(1)
    ch = child.ch
    ring = ShmRing.attach(ch.rings["checkpoint"])
    checkpoint = CheckpointBlob(path=path, data=ring.read(0).tobytes(), sha256=sha256)
    ring.close()
    try:
        child.event("phase", "loading the model")
        model = checkpoint.model()
        child.event("phase", "building the engine (export / compile)")
        engine = s.engine.create(model, checkpoint)
    except (EngineError, ValueError) as exc:
        raise PipelineError(one_line(exc), EXIT_USAGE) from None
    del model
    win_rgb = ShmRing.attach(ch.rings["win_rgb"])
    win_pose = ShmRing.attach(ch.rings["win_pose"])
    rgb = np.zeros((1, *win_rgb.spec.shape), np.float32)
    pose = np.zeros((1, *win_pose.spec.shape), np.float32)
    child.event("phase", "warming up")
    engine(rgb, pose)  # warm-up: first-call allocations and kernel selection are not a prediction's latency
    averager = ProbAverager(s.prediction.average)
    rule = s.model.decision
    names = list(s.model.class_names)
    windows = flow_for(s).reader(child, ch.windows, discard=lambda item: ch.free_win.put(item.slot))
    seq = lost = 0
    child.event("ready", {"engine": engine.name, "describe": engine.describe()})
    try:
        while True:
            item: WindowTask | None = windows.next()
            if item is None:
                break
            try:
                win_rgb.read(item.window, out=rgb[0], slot=item.slot)
                win_pose.read(item.window, out=pose[0], slot=item.slot)
            except RingError:
                lost += 1
                child.count("dropped_windows")
                continue
            finally:
                ch.free_win.put(item.slot)
            start = time.time()
            result = engine(rgb, pose)
            done = time.time()
            probs = averager.add(result.probs)
            decision = rule.decide(probs, names, item.window_persons)
            ch.results.put(Prediction(
                seq=seq, window=item, action=decision.action, action_score=decision.score,
                topk=topk_from_probs(probs, names, s.prediction.topk), gate=float(result.gate),
                inference_ms=(done - item.queued) * 1000.0, engine_ms=(done - start) * 1000.0, engine=engine.name))
            seq += 1
        ch.results.put(None)
        child.event("inferred", {"predictions": seq, "skipped": windows.skipped + lost})
    finally:
        engine.close()
        win_rgb.close()
        win_pose.close()
