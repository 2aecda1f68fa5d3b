"""What every stage process shares: the channels to its neighbours and the rules of a supervised child.

A child never outlives the pipeline: it dies with its parent (the kernel kills it the moment the parent
dies, even while it is busy loading a model: ``PR_SET_PDEATHSIG``; elsewhere a watchdog thread polls), and
while it waits for work it polls `stop` every `POLL_S`. Ctrl-C is the parent's business: a child ignores
SIGINT (it starts with SIGINT blocked, see `realtime.supervisor`, so not even its interpreter start-up
can be interrupted into a traceback). Errors reach the parent as one-line events, never as tracebacks.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from core.errors import EXIT_FAILED, EXIT_OK, UserError, one_line
from realtime.defaults import POLL_S
from realtime.shm_ring import RingSpec

__all__ = ["COUNTERS", "Channels", "Child", "PipelineError", "Stopped", "child_main", "set_threads"]

#: shared counters, reported in every message (`realtime.messages`)
COUNTERS = ("frames_read", "dropped_frames", "dropped_windows", "gaps", "reconnects", "skipped_frames",
            "video_dropped")
OUTCOME_BYTES = 1024


class PipelineError(UserError):
    """A one-line reason the pipeline stopped; `code` is the process exit status (1 unless given)."""

    code = EXIT_FAILED


class Stopped(Exception):
    """Raised inside a child when the pipeline is shutting down."""


@dataclass
class Channels:
    """Synchronisation objects handed to every child (created by the supervisor's spawn context)."""

    stop: Any                 # Event: shut down
    go: Any                   # Event: every process is ready, capture may start
    events: Any               # SimpleQueue of (kind, role, payload) to the supervisor (no feeder thread to lose)
    counters: Any             # Array('q') indexed like COUNTERS
    release_tick: Any         # Value('q'): oldest tick assembly still needs
    tasks: Any                # FrameTask  capture -> pose workers
    free_raw: Any             # raw ring slots free for capture
    done: Any                 # TickDone / StreamEnd  pose workers, capture -> assembly
    free_win: Any             # window ring slots free for assembly
    windows: Any              # WindowTask  assembly -> inference
    results: Any              # Prediction  inference -> publisher
    video: Any                # VideoFrame / PoseOverlay / PredictionOverlay / VideoEnd -> video writer (--output)
    free_video: Any           # video ring slots free for capture
    outcome: Any = None       # Array('c'): "reason\terror" of a run the supervisor ends, written before `stop`
    rings: dict[str, RingSpec] = field(default_factory=dict)

    @classmethod
    def create(cls, ctx) -> "Channels":
        return cls(stop=ctx.Event(), go=ctx.Event(), events=ctx.SimpleQueue(),
                   counters=ctx.Array("q", len(COUNTERS)), release_tick=ctx.Value("q", 0, lock=False),
                   tasks=ctx.Queue(), free_raw=ctx.Queue(), done=ctx.Queue(), free_win=ctx.Queue(),
                   windows=ctx.Queue(), results=ctx.Queue(), video=ctx.Queue(), free_video=ctx.Queue(),
                   outcome=ctx.Array("c", OUTCOME_BYTES, lock=False))

    def set_outcome(self, reason: str, error: str | None = None) -> None:
        """Why the supervisor ends the run (an `end` message reason, `realtime.messages.END_REASONS`), for
        the publisher's last message; call before setting `stop`."""
        text = f"{reason}\t{error or ''}".encode("utf-8")[: OUTCOME_BYTES - 1]
        self.outcome.value = text

    def get_outcome(self) -> tuple[str, str | None]:
        """``(reason, error)`` the supervisor set, or ``("stopped", None)`` when it set none."""
        text = bytes(self.outcome.value).decode("utf-8", "replace") if self.outcome is not None else ""
        reason, _, error = text.partition("\t")
        return (reason or "stopped"), (error or None)

    def count(self, name: str, n: int = 1) -> None:
        i = COUNTERS.index(name)
        with self.counters.get_lock():
            self.counters[i] += n

    def value(self, name: str) -> int:
        return int(self.counters[COUNTERS.index(name)])


class Child:
    """Per-child plumbing: stop/parent polling and blocking gets that wake up for shutdown."""

    def __init__(self, role: str, channels: Channels) -> None:
        self.role = role
        self.ch = channels
        self._parent = mp.parent_process()

    def check(self) -> None:
        if self.ch.stop.is_set() or (self._parent is not None and not self._parent.is_alive()):
            raise Stopped()

    def get(self, q, timeout: float | None = None) -> Any:
        """The next item of ``q``; raises `Stopped` at shutdown and ``queue.Empty`` after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.check()
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise queue.Empty
            try:
                return q.get(timeout=wait)
            except queue.Empty:
                continue

    def wait_until(self, predicate: Callable[[], bool], sleep_s: float = 0.002) -> None:
        while not predicate():
            self.check()
            time.sleep(sleep_s)

    def event(self, kind: str, payload: Any = None) -> None:
        self.ch.events.put((kind, self.role, payload))

    def count(self, name: str, n: int = 1) -> None:
        self.ch.count(name, n)


def child_main(role: str, target: Callable, channels: Channels, *args) -> None:
    """Process target: follow the parent, leave SIGINT to it, run ``target(child, *args)``; any failure
    becomes one ``error`` event and an exit status."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _name_process(role)
    child = Child(role, channels)
    try:
        target(child, *args)
    except Stopped:
        _flush_and_exit(EXIT_OK)
    except UserError as exc:
        child.event("error", (one_line(exc), exc.code))
        _flush_and_exit(exc.code)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as one line
        if os.environ.get("IA_LIVE_DEBUG"):
            traceback.print_exc()
        child.event("error", (f"{type(exc).__name__}: {one_line(exc)}", EXIT_FAILED))
        _flush_and_exit(EXIT_FAILED)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """End this process the moment the parent dies, whatever it is doing (loading a model, warming up an
    engine): Linux's parent-death signal, or a watchdog thread where that is not available."""
    parent = mp.parent_process()
    if parent is None:
        return
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent.pid:   # the parent died before the signal was armed
        os._exit(EXIT_OK)
    if not armed:
        def watch() -> None:
            while parent.is_alive():
                time.sleep(POLL_S)
            os._exit(EXIT_OK)

        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _name_process(role: str) -> None:
    """Show the role in `ps`/`top` (Linux `comm`, 15 bytes): `ia-live:pose0`, `ia-live:infer`, ..."""
    short = {"publisher": "pub", "inference": "infer", "assembly": "asm", "capture": "capture",
             "video writer": "video"}
    name = "ia-live:" + short.get(role, role.replace("pose worker ", "pose"))
    try:
        with open("/proc/self/comm", "w") as fh:
            fh.write(name[:15])
    except OSError:
        pass


def _flush_and_exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)  # skip queue feeder joins: nobody may be reading any more


def set_threads(n: int) -> None:
    """Keep each process to its share of the cores (OpenCV would otherwise start one thread per core)."""
    try:
        import cv2

        cv2.setNumThreads(max(1, n))
    except Exception:  # noqa: BLE001
        pass
