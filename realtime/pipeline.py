"""The live process graph, at a glance; the public entry points are `run` and `Settings`.

    capture ──raw frames (shm, free-slot list)──> pose worker(s) ──RGB crops + keypoints (shm, by tick)──>
    assembly ──windows (shm, free-slot list)──> inference ──predictions (queue)──> publisher
    capture ──every source frame (shm, --output only)──> video writer <──pose + published predictions (queues)

Where to read what:

| what | module |
|---|---|
| options of a run (model, engine, pose backend, outputs) | `realtime.settings` |
| processes, shared memory, signals, exit codes | `realtime.supervisor` |
| one stage's body | `realtime.stages.capture`, `.pose`, `.assemble`, `.infer`, `.publish`, `.video` |
| what travels on the queues | `realtime.items` |
| files (back-pressure) versus live sources (drop stale work) | `realtime.flow` |
| which ticks form a window | `realtime.window` |
| per-person entries and track ids of a message | `realtime.people`, `realtime.tracker` |
| frames + keypoints -> model inputs (shared with training) | `core.clip` |
"""
from __future__ import annotations

from realtime.settings import ModelInfo, OutputOptions, PoseOptions, PredictionOptions, Settings
from realtime.stages.child import PipelineError
from realtime.supervisor import RunResult, ring_layout, run

__all__ = ["ModelInfo", "OutputOptions", "PipelineError", "PoseOptions", "PredictionOptions", "RunResult",
           "Settings", "ring_layout", "run"]
