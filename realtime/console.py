"""What a person watching `ia-live` sees: a `rich` live view on a terminal, plain log lines otherwise.

The live view goes to stdout only when stdout is a terminal that nothing else writes to; plain lines go
to stderr, so `ia-live --dump-json - | jq` gets pure JSON Lines on stdout. Rendering is throttled: the
pipeline may call `update` for every prediction without paying for a redraw each time.

The stats dict the pipeline passes to `Console.update` (every key optional):
    in_fps: float          frames read from the source per second
    out_fps: float         predictions published per second
    latency: {stage: {"p50": ms, "p95": ms, ...}}   e.g. `LatencyStats.summary()`
    dropped_frames: int    frames the pipeline skipped to keep up (total)
    zmq_dropped: int       ZeroMQ messages dropped because a subscriber queue was full (total)
    source, engine, model: str
"""
from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping

import numpy as np

LIVE_INTERVAL_S = 0.25    # 4 redraws per second: smooth enough, costs nothing next to inference
PLAIN_INTERVAL_S = 2.0    # one log line every 2 s: readable in a CI log, not a flood


class LatencyStats:
    """Rolling per-stage latency samples (last `window` per stage) with p50/p95 in milliseconds."""

    def __init__(self, window: int = 300) -> None:
        if window < 1:
            raise ValueError("LatencyStats window must be >= 1")
        self.window = window
        self._samples: dict[str, deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        """Record one latency in ms; non-finite values (a stage that did not run) are ignored."""
        if ms is None or not np.isfinite(ms):
            return
        self._samples.setdefault(stage, deque(maxlen=self.window)).append(float(ms))

    def add_message(self, message: Mapping) -> None:
        """Record every stage of a published message's `latency_ms`."""
        for stage, ms in (message.get("latency_ms") or {}).items():
            if isinstance(ms, (int, float)):
                self.add(stage, ms)

    def percentiles(self, stage: str) -> tuple[float, float]:
        """(p50, p95) of the stage's window; NaN when it has no samples yet."""
        samples = self._samples.get(stage)
        if not samples:
            return float("nan"), float("nan")
        p50, p95 = np.percentile(np.fromiter(samples, dtype=np.float64), [50, 95])
        return float(p50), float(p95)

    def stages(self) -> list[str]:
        return list(self._samples)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50", "p95", "n"}} in the order stages were first seen."""
        out = {}
        for stage in self._samples:
            p50, p95 = self.percentiles(stage)
            out[stage] = {"p50": p50, "p95": p95, "n": len(self._samples[stage])}
        return out


class RateMeter:
    """Events per second over the last `window_s` seconds (a camera's fps, the prediction rate)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0


class CounterRate:
    """Rate of a monotonically increasing shared counter (frames read) over the last ~2 s."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._samples: list[tuple[float, int]] = []

    def rate(self, value: int) -> float:
        now = time.monotonic()
        self._samples.append((now, value))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.pop(0)
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


def _bar(fraction: float, width: int) -> str:
    fraction = min(max(fraction, 0.0), 1.0)
    full = int(round(fraction * width))
    return "█" * full + "░" * (width - full)


def _fmt_ms(value: float) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.1f}"


def _latency_rows(latency: Mapping) -> Iterable[tuple[str, float, float]]:
    for stage, value in latency.items():
        if isinstance(value, Mapping):
            yield stage, value.get("p50", float("nan")), value.get("p95", float("nan"))
        else:                               # (p50, p95) tuples are accepted too
            yield stage, value[0], value[1]


def format_plain(stats: Mapping, message: Mapping | None) -> str:
    """One log line: rates, end-to-end latency, drops, the top label and the gate."""
    parts = [f"in {stats.get('in_fps', 0.0):.1f} fps", f"out {stats.get('out_fps', 0.0):.1f} fps"]
    latency = dict((s, (a, b)) for s, a, b in _latency_rows(stats.get("latency") or {}))
    if "capture_to_publish" in latency:
        p50, p95 = latency["capture_to_publish"]
        parts.append(f"latency p50 {_fmt_ms(p50)} / p95 {_fmt_ms(p95)} ms")
    parts.append(f"dropped {stats.get('dropped_frames', 0)}")
    if stats.get("zmq_dropped"):
        parts.append(f"zmq dropped {stats['zmq_dropped']}")
    if message:
        parts.append(f"action {message['action']} {message['action_score']:.2f}")
        if message.get("topk"):
            top = message["topk"][0]
            parts.append(f"top {top['label']} {top['score']:.2f}")
        gate = message.get("appearance_weight")
        parts.append("G n/a" if gate is None else f"G {gate:.2f}")
    return "[ia-live] " + " | ".join(parts)


def render_live(stats: Mapping, message: Mapping | None):
    """The rich renderable of the live view (separate from Console so it can be tested headless)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table

    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]in[/] {stats.get('in_fps', 0.0):.1f} fps",
        f"[bold]out[/] {stats.get('out_fps', 0.0):.1f} fps",
        f"[bold]dropped frames[/] {stats.get('dropped_frames', 0)}",
        f"[bold]zmq dropped[/] {stats.get('zmq_dropped', 0)}",
    )
    info = " ".join(f"{k} [cyan]{stats[k]}[/]" for k in ("source", "engine", "model") if stats.get(k))

    latency = Table(title="latency (ms)", expand=False)
    latency.add_column("stage")
    latency.add_column("p50", justify="right")
    latency.add_column("p95", justify="right")
    for stage, p50, p95 in _latency_rows(stats.get("latency") or {}):
        latency.add_row(stage, _fmt_ms(p50), _fmt_ms(p95))

    top = Table(title="top-5", expand=False)
    top.add_column("label")
    top.add_column("score", justify="right")
    top.add_column("")
    gate_line = "gate: waiting for the first prediction"
    if message:
        for entry in message["topk"][:5]:
            top.add_row(entry["label"], f"{entry['score']:.2f}", f"[green]{_bar(entry['score'], 20)}[/]")
        gate = message.get("appearance_weight")
        if gate is None:
            gate_line = "gate: n/a (this model has no gate)"
        else:
            gate_line = f"appearance {gate:.2f} [blue]{_bar(gate, 30)}[/] pose {1 - gate:.2f}"
        info = (f"[bold]{message['action']}[/] {message['action_score']:.2f}  frame {message['frame_index']} "
                f"t={message['timestamp']:.2f}s persons {message['persons']}  " + info)
    tables = Table.grid(padding=(0, 3))
    tables.add_row(latency, top)
    return Panel(Group(head, info, tables, gate_line), title="ia-live", expand=False)


class Console:
    """Live view or periodic plain lines; `enabled=False` makes every call a no-op (e.g. --quiet)."""

    def __init__(self, enabled: bool, *, live: bool | None = None, interval_s: float | None = None) -> None:
        self.enabled = enabled
        self.live = sys.stdout.isatty() if live is None else live
        self.interval_s = interval_s if interval_s is not None else (LIVE_INTERVAL_S if self.live else PLAIN_INTERVAL_S)
        self._live = None
        self._last_render = -float("inf")
        self._pending = False
        self._stats: Mapping = {}
        self._message: Mapping | None = None

    def update(self, stats: Mapping, message: Mapping | None = None) -> None:
        """Take the newest stats (and the newest message, if any); redraw when the interval is due."""
        if not self.enabled:
            return
        self._stats = stats
        if message is not None and message.get("type", "prediction") == "prediction":   # not heartbeat/end
            self._message = message
        self._pending = True
        now = time.monotonic()
        if now - self._last_render >= self.interval_s:
            self._render()
            self._last_render = now

    def _render(self) -> None:
        self._pending = False
        if self.live:
            if self._live is None:
                from rich.live import Live
                self._live = Live(render_live(self._stats, self._message), auto_refresh=False,
                                  redirect_stdout=False, redirect_stderr=False)
                self._live.start()
            self._live.update(render_live(self._stats, self._message), refresh=True)
        else:
            print(format_plain(self._stats, self._message), file=sys.stderr, flush=True)

    def close(self) -> None:
        """Show the final state once more (plain mode) and release the terminal (live mode)."""
        if not self.enabled:
            return
        if self._pending:
            self._render()
        if self._live is not None:
            self._live.stop()
            self._live = None
