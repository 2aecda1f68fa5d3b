"""The supervisor: shared memory, processes, signals and exit codes of one `ia-live` run.

`run(settings)` creates the rings (`ring_layout`) and the channels, starts one process per stage
(`realtime.stages`), lets capture begin once every process reports ready, and ends the run on the first of:
the end of the source, a child's error or death, SIGINT/SIGTERM. It never raises for a runtime problem:
the `RunResult` carries the exit code and a one-line message.

What it guarantees, whatever happens:

* no child outlives the run. Children die with the parent (`realtime.stages.child`), poll `stop` while
  they wait, get `STOP_GRACE_S` to leave after `stop`, and are then terminated and killed;
* no traceback on Ctrl-C. Children are started with SIGINT blocked, so a Ctrl-C that reaches the whole
  process group while they start cannot interrupt their interpreter start-up; the parent alone reacts;
* nothing is left in /dev/shm. The parent owns every segment (named ``ia_live_<pid>_...``) and the named
  semaphores behind the channels (``sem.ia_live_<pid>_sem-...``) and unlinks them on every path out; if the
  whole process group was killed (``kill -9``), the next run reclaims what dead owners left
  (`realtime.shm_ring.reclaim_stale`).
"""
from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import connection
from typing import Any, Callable, Iterator

import numpy as np

from core.errors import EXIT_FAILED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM, UserError, one_line
from realtime.defaults import STOP_GRACE_S, VIDEO_RING_BYTES, WINDOW_SLOTS
from realtime.shm_ring import ShmRing, reclaim_stale, segment_prefix, unique_name
from realtime.stages import assemble, capture, infer, pose, publish, video
from realtime.stages.child import Channels, child_main

__all__ = ["RunResult", "ring_layout", "run"]


@dataclass
class RunResult:
    code: int
    message: str | None = None
    summary: dict = field(default_factory=dict)
    reason: str = "end_of_file"   # the `end` message's reason (`realtime.messages.END_REASONS`)


def ring_layout(s) -> dict[str, tuple[int, tuple[int, ...], str]]:
    """name -> (slots, item shape, dtype) of every ring the pipeline needs.

    Per tick the pose stage stores the drawn persons' keypoints (model skeleton, top-k, x/y/score);
    assembly renders a window's pose maps from them (`core.clip.ClipBuilder`), because a person-centric
    map's box depends on the whole window. Maps are float32: they are rendered in float32 (the released
    code's arithmetic) and fed to the network as float32.
    """
    from core.skeletons import get_skeleton
    from realtime.window import WindowPlan

    cfg = s.config
    plan = WindowPlan.from_config(cfg, stride=s.prediction.stride)
    skeleton = get_skeleton(cfg.skeleton)
    channels = cfg.pose_channels or skeleton.num_channels
    size, msize = int(cfg.rgb_size), int(cfg.map_size)
    tick_slots = s.tick_slots or plan.pose_frames + plan.step + max(8, 4 * s.pose.workers)
    frame_shape = (s.info.height, s.info.width, 3)
    layout = {
        "raw": (2 * s.pose.workers + 2, frame_shape, "uint8"),
        "rgb": (tick_slots, (size, size, 3), "uint8"),
        "keypoints": (tick_slots, (int(cfg.top_k_persons), skeleton.num_joints, 3), "float32"),
        "win_rgb": (WINDOW_SLOTS, (plan.frames, 3, size, size), "float32"),
        "win_pose": (WINDOW_SLOTS, (plan.pose_frames, channels, msize, msize), "float32"),
    }
    if s.output.video_out:   # every source frame, for the annotated video (`realtime.stages.video`)
        layout["video"] = (video_slots(frame_shape), frame_shape, "uint8")
    return layout


def video_slots(frame_shape: tuple[int, ...]) -> int:
    """Slots of the ``video`` ring: as many frames as `VIDEO_RING_BYTES` holds (4 to 256). For a file they
    are how far capture may run ahead of the last prediction (more slots: more overlap between stages)."""
    return int(min(256, max(4, VIDEO_RING_BYTES // int(np.prod(frame_shape)))))


def run(s, on_event: Callable[[str, str, Any], None] | None = None) -> RunResult:
    """Run the pipeline to the end of the source (or a signal / failure); see the module docstring."""
    from core.checkpoint import CheckpointBlob

    ctx = mp.get_context("spawn")
    rings: list[ShmRing] = []
    procs: list[tuple[str, Any]] = []
    flag = _SignalFlag()
    flag.install()
    summary: dict[str, Any] = {}
    channels: Channels | None = None
    try:
        checkpoint = s.checkpoint or CheckpointBlob.read(s.model.path)
        reclaim_stale()
        prefix = segment_prefix()
        with _semaphores_named(prefix):
            channels = Channels.create(ctx)
        layout = ring_layout(s)
        # the checkpoint's bytes reach the inference process through shared memory, not through the pipe
        # that hands a spawned child its arguments: a 20+ MB argument would block `Process.start()` until the
        # child has imported its modules, and forever if the child died first
        layout["checkpoint"] = (1, (len(checkpoint.data),), "uint8")
        for name, (slots, shape, dtype) in layout.items():
            ring = ShmRing.create(unique_name(prefix, name), slots, shape, dtype)
            rings.append(ring)
            channels.rings[name] = ring.spec
        rings[-1].write(0, np.frombuffer(checkpoint.data, np.uint8))
        roles: list[tuple[str, Callable, tuple]] = [
            ("publisher", publish.run, (s,)), ("inference", infer.run, (s, checkpoint.path, checkpoint.sha256)),
            ("assembly", assemble.run, (s,))]
        roles += [(f"pose worker {i}", pose.run, (s, i)) for i in range(s.pose.workers)]
        if s.output.video_out:
            roles.append(("video writer", video.run, (s,)))
        roles.append(("capture", capture.run, (s,)))
        with _sigint_blocked():  # inherited through exec: children start with SIGINT blocked
            for role, target, args in roles:
                proc = ctx.Process(target=child_main, args=(role, target, channels, *args), name=f"ia-live {role}",
                                   daemon=True)
                proc.start()
                procs.append((role, proc))
        result = _supervise(channels, procs, flag, summary, on_event, s.source.kind != "file")
        # before teardown sets `stop`: the publisher's last message says why the run ended
        channels.set_outcome(result.reason, result.message if result.reason in ("error", "source_lost") else None)
        return result
    except UserError as exc:   # e.g. the checkpoint file vanished since it was validated
        return RunResult(exc.code, one_line(exc), summary)
    except OSError as exc:     # shared memory or processes refused (a full /dev/shm, a file-size limit)
        return RunResult(EXIT_FAILED, f"cannot set up the pipeline: {exc.strerror or one_line(exc)}", summary)
    except KeyboardInterrupt:
        if channels is not None:
            channels.set_outcome("stopped")
        return RunResult(EXIT_SIGINT, "interrupted", summary, reason="stopped")
    finally:
        _teardown(procs, channels)
        for ring in rings:
            ring.close()
            ring.unlink()
        flag.restore()
        channels = None
        _release_sync_objects(procs)


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _semaphores_named(prefix: str) -> Iterator[None]:
    """Name the POSIX semaphores behind Events/Queues/Values after this run (``sem.<prefix>sem-*``) instead
    of multiprocessing's anonymous ``sem.mp-*``, so that a run killed with its whole process group (and its
    resource tracker) leaves semaphores the next run can attribute and reclaim."""
    config = mp.current_process()._config  # noqa: SLF001 - multiprocessing reads the prefix from here
    previous = config.get("semprefix")
    config["semprefix"] = f"/{prefix}sem"
    try:
        yield
    finally:
        if previous is None:
            config.pop("semprefix", None)
        else:
            config["semprefix"] = previous


def _release_sync_objects(procs: list) -> None:
    """Let the named semaphores behind Events/Values/Queues be unlinked now, not at interpreter exit.

    Each is a named POSIX semaphore, unlinked by a finalizer when garbage collected. `multiprocessing`
    keeps joined Process objects (and through their args our `Channels`) until its next cleanup; dropping
    them here means a caller that exits with `os._exit` leaks nothing and the resource tracker has nothing
    to warn about. (The parent never `put`s on a data queue - the children fill the free-slot lists -
    because a queue's feeder thread would keep two semaphores alive past this point.)
    """
    procs.clear()
    mp.active_children()  # forgets joined children
    gc.collect()


def _supervise(ch: Channels, procs, flag: "_SignalFlag", summary: dict, on_event,
               device: bool = False) -> RunResult:
    """Watch the children until the run ends; ``device``: the source is a camera or a stream (not a file),
    whose capture failure is reported as ``source_lost``."""
    ready: set[str] = set()
    finished: set[str] = set()
    errors: list[tuple[str, str, int]] = []
    sentinels = [proc.sentinel for _, proc in procs]

    def drain() -> None:
        while not ch.events.empty():
            kind, role, payload = ch.events.get()
            if kind == "ready":
                ready.add(role)
                if payload:
                    summary.setdefault("ready", {})[role] = payload
            elif kind == "error":
                errors.append((role, payload[0], payload[1]))
            else:
                summary[kind] = payload
            if on_event is not None:
                on_event(kind, role, payload)

    while True:
        drain()
        if errors:
            role, message, code = errors[0]
            if code == EXIT_OK:  # a deliberate quiet stop (e.g. the stdout reader went away)
                return RunResult(EXIT_OK, None, {**summary, "stopped": message}, reason="stopped")
            lost = role == "capture" and device   # a camera or stream that failed (and --reconnect gave up)
            return RunResult(code, f"{role}: {message}", summary, reason="source_lost" if lost else "error")
        if flag.signum is not None:
            sig = flag.signum
            return RunResult(EXIT_SIGINT if sig == signal.SIGINT else EXIT_SIGTERM,
                             "interrupted" if sig == signal.SIGINT else "terminated", summary, reason="stopped")
        if not ch.go.is_set() and len(ready) == len(procs):
            ch.go.set()
            summary["go_time"] = time.time()
            if on_event is not None:
                on_event("go", "pipeline", summary["go_time"])
        for role, proc in procs:
            if role in finished or proc.exitcode is None:
                continue
            finished.add(role)
            if proc.exitcode != 0:
                time.sleep(0.05)
                drain()
                if errors:
                    continue
                how = f"signal {-proc.exitcode}" if proc.exitcode < 0 else f"exit code {proc.exitcode}"
                return RunResult(EXIT_FAILED, f"{role} process died ({how})", summary, reason="error")
        if len(finished) == len(procs):
            drain()
            return RunResult(EXIT_OK, None, summary)
        connection.wait(sentinels, timeout=0.1)


def _teardown(procs, ch: Channels | None) -> None:
    if ch is not None:
        ch.stop.set()
    t0 = time.monotonic()
    deadline = t0 + STOP_GRACE_S
    for role, proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if os.environ.get("IA_LIVE_DEBUG"):
            print(f"[teardown] {role} exit={proc.exitcode} at {time.monotonic() - t0:.3f}s", file=sys.stderr)
    for _, proc in procs:
        if proc.is_alive():
            proc.terminate()
    for _, proc in procs:
        proc.join(0.5)
        if proc.is_alive():
            proc.kill()
            proc.join(0.5)


class _SignalFlag:
    """SIGINT/SIGTERM only set a flag; the supervision loop turns it into exit 130/143."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread)
                pass

    def _handle(self, signum, _frame) -> None:
        self.signum = signum

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
