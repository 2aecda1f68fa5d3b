"""Flow control: the one place that decides how files and live sources differ.

* `BackPressure` (files): nothing is ever skipped. Capture waits for a free raw slot and for room in the
  tick rings, assembly waits for a free window slot, inference and the publisher take every item in order,
  so a run is deterministic.
* `DropStale` (cameras, streams, ``--realtime`` files): nothing waits for a slower stage. Capture drops a
  sampled frame that finds no room (``dropped_frames``); assembly skips a window without a free slot;
  inference and the publisher take the newest item and discard the older ones (``dropped_windows``). So a
  prediction is never older than the rings are deep, whatever stalls downstream (a slow engine, a stdout
  reader that stopped reading). A live stream can also jump: a stall upstream, a reconnect. `DropStale`
  starts a new *segment* there, and no window mixes frames of two segments (`realtime.stages.assemble`).

Stages ask the policy; no stage tests ``if live`` itself.
"""
from __future__ import annotations

import queue
from typing import Any, Callable

__all__ = ["FlowPolicy", "BackPressure", "DropStale", "flow_for", "QueueReader"]


class FlowPolicy:
    """The questions a stage asks; see the module docstring for the two answers."""

    live: bool = False
    #: open the source before reporting ready (a file), or only at `go` (a live source would buffer a
    #: start-up's worth of stale frames meanwhile)
    open_early: bool = True

    def take_slot(self, child, free: Any, room: Callable[[], bool]) -> int | None:
        """A free slot from ``free`` once ``room()`` holds; None: drop the item instead."""
        raise NotImplementedError

    def new_segment(self, previous_ts: float | None, timestamp: float, reconnected: bool) -> bool:
        """Does this frame start a new continuous stretch of the stream?"""
        return False

    def reader(self, child, q: Any, discard: Callable[[Any], None] | None = None) -> "QueueReader":
        return QueueReader(child, q, newest=self.live, discard=discard)


class BackPressure(FlowPolicy):
    live = False

    def take_slot(self, child, free: Any, room: Callable[[], bool]) -> int | None:
        child.wait_until(room)
        return child.get(free)


class DropStale(FlowPolicy):
    live = True
    open_early = False

    def __init__(self, gap_s: float) -> None:
        self.gap_s = float(gap_s)

    def take_slot(self, child, free: Any, room: Callable[[], bool]) -> int | None:
        if not room():
            return None
        try:
            return free.get_nowait()
        except queue.Empty:
            return None

    def new_segment(self, previous_ts: float | None, timestamp: float, reconnected: bool) -> bool:
        return reconnected or (previous_ts is not None and timestamp - previous_ts > self.gap_s)


def flow_for(settings) -> FlowPolicy:
    """The policy of a run's source (`realtime.settings.Settings`)."""
    return DropStale(settings.gap_s) if settings.source.live else BackPressure()


class QueueReader:
    """Reads a stage's input queue: every item in order, or (``newest``) the newest item available, handing
    older ones to ``discard`` and counting them in `skipped`. `next` returns None once the queue's end marker
    (a None) is reached."""

    def __init__(self, child, q: Any, newest: bool, discard: Callable[[Any], None] | None = None) -> None:
        self.child, self.q, self.newest, self.discard = child, q, newest, discard
        self.skipped = 0
        self._ended = False

    def next(self, timeout: float | None = None) -> Any:
        """The next item (None at the end); ``queue.Empty`` when nothing came within ``timeout`` s."""
        if self._ended:
            return None
        item = self.child.get(self.q, timeout)
        if item is None:
            self._ended = True
            return None
        if not self.newest:
            return item
        while True:
            try:
                newer = self.q.get_nowait()
            except queue.Empty:
                return item
            if newer is None:
                self._ended = True   # still hand out `item`; the next call ends
                return item
            if self.discard is not None:
                self.discard(item)
            self.skipped += 1
            self.child.count("dropped_windows")
            item = newer
