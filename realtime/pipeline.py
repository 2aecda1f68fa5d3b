"""The live process graph: capture -> pose workers -> window assembly -> inference -> publishing.

    capture ──raw frames (shm, free-slot list)──> pose worker(s) ──RGB crops + pose maps (shm, by tick)──>
    assembly ──windows (shm, free-slot list)──> inference ──message fields (queue)──> publisher

Each stage is its own process (spawn context), so decoding, pose estimation and the network overlap on
different cores. Large arrays live in `shm_ring.ShmRing`s; queues carry only item numbers, timings and
keypoint lists. Flow control decides the two behaviours:

* files: back-pressure. Capture waits for a free raw slot and for the tick rings to have room
  (`release_tick`: the oldest tick assembly still needs; `pub_next`: the oldest frame the publisher still
  needs for `--output`), and assembly waits for a free window slot, so no frame or window is ever skipped
  and results are deterministic;
* live sources: never wait. A sampled frame that finds no free slot is dropped and counted
  (`dropped_frames`), inference always takes the newest window and skips stale ones, so latency stays
  bounded by the ring sizes instead of growing.

Supervision: the parent owns every shared-memory segment (created with the `ia_live_<pid>_` prefix,
unlinked in `finally`), watches the children's sentinels, and on a child's death, a start-up error or
SIGINT/SIGTERM sets `stop`, gives the children 1 s to leave, then terminates them. Children poll `stop`
and their parent every 0.2 s, so none outlives the pipeline.
"""
from __future__ import annotations

import argparse
import math
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from multiprocessing import connection
from pathlib import Path
from typing import Any, Callable

import numpy as np

from realtime.shm_ring import RingError, RingSpec, ShmRing, segment_prefix, unique_name
from realtime.sources import SourceInfo, SourceSpec
from realtime.window import ProbAverager, WindowPlan, WindowTracker

POLL_S = 0.2                  # children check stop / parent liveness this often
STOP_GRACE_S = 1.0            # after `stop`, children get this long before terminate()
WINDOW_SLOTS = 3              # assembled windows in flight: one being inferred, one ready, one being written
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class PipelineError(RuntimeError):
    """A one-line reason the pipeline stopped; `code` is the process exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED):
        super().__init__(message)
        self.code = code


class _Stopped(Exception):
    """Raised inside a child when the pipeline is shutting down."""


@dataclass
class Settings:
    """Everything the children need, picklable (no open handles)."""

    source: SourceSpec
    info: SourceInfo
    checkpoint: str
    model_name: str
    config: dict                      # core.model.ModelConfig.to_dict()
    class_names: list[str]
    args: argparse.Namespace          # pose backend and engine flags
    engine: str = "auto"
    pose: str = "movenet"
    pose_workers: int = 1
    threads: int = 1
    stride: int = 1
    average: int = 3
    topk: int = 5
    decision: dict = field(default_factory=dict)   # core.decision.DecisionRule.to_dict()
    ref_fps: float = 30.0
    zmq: str | None = None
    zmq_allow_remote: bool = False    # the user named a non-loopback endpoint explicitly
    topic: str = "ia.actions"
    jsonl: str | None = None
    video_out: str | None = None
    quiet: bool = False
    print_labels: bool = False        # one human line per prediction on stdout (--demo)
    tick_slots: int = 0               # 0 = derived from the window plan


@dataclass
class Shared:
    """Synchronisation objects handed to every child (created by the parent's context)."""

    stop: Any
    go: Any
    events: Any                       # SimpleQueue of (kind, role, payload): no feeder thread to lose
    dropped: Any                      # Value('q'): sampled frames dropped (live sources)
    frames_read: Any                  # Value('q')
    release_tick: Any                 # Value('q'): oldest tick assembly still needs
    pub_next: Any                     # Value('q'): oldest tick the publisher still needs (--output)
    tasks: Any
    free_raw: Any
    done: Any
    free_win: Any
    windows: Any
    results: Any
    rings: dict[str, RingSpec] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# helpers shared by the children


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class _Child:
    """Per-child plumbing: stop/parent polling and blocking gets that wake up for shutdown."""

    def __init__(self, role: str, shared: Shared):
        import multiprocessing as mp

        self.role = role
        self.shared = shared
        self._parent = mp.parent_process()

    def check(self) -> None:
        if self.shared.stop.is_set() or (self._parent is not None and not self._parent.is_alive()):
            raise _Stopped()

    def get(self, q) -> Any:
        while True:
            self.check()
            try:
                return q.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def wait_until(self, predicate: Callable[[], bool], sleep_s: float = 0.002) -> None:
        while not predicate():
            self.check()
            time.sleep(sleep_s)

    def event(self, kind: str, payload: Any = None) -> None:
        self.shared.events.put((kind, self.role, payload))


def _child_entry(role: str, target: Callable, shared: Shared, *args) -> None:
    """Process target wrapper: SIGINT is the parent's business; errors become one-line events."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _name_process(role)
    child = _Child(role, shared)
    try:
        target(child, *args)
    except _Stopped:
        _flush_and_exit(EXIT_OK)
    except PipelineError as exc:
        child.event("error", (str(exc), exc.code))
        _flush_and_exit(exc.code)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the parent as one line
        if os.environ.get("IA_LIVE_DEBUG"):
            traceback.print_exc()
        child.event("error", (f"{type(exc).__name__}: {_one_line(exc)}", EXIT_FAILED))
        _flush_and_exit(EXIT_FAILED)


def _name_process(role: str) -> None:
    """Show the role in `ps`/`top` (Linux `comm`, 15 bytes): `ia-live:pose0`, `ia-live:infer`, ..."""
    short = {"publisher": "pub", "inference": "infer", "assembly": "asm", "capture": "capture"}
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


def _set_threads(n: int) -> None:
    """Keep each process to its share of the cores (numpy/OpenCV would otherwise each start N threads)."""
    try:
        import cv2

        cv2.setNumThreads(max(1, n))
    except Exception:  # noqa: BLE001
        pass


def make_sampler(fps: float, tau: float, ref_fps: float) -> Callable[[int, float], bool]:
    """The shared `core.sampling.StreamSampler`: `(index, timestamp_s) -> bool`, one call per frame."""
    from core.sampling import StreamSampler

    return StreamSampler(fps, tau, ref_fps=ref_fps)


# --------------------------------------------------------------------------------------------------
# capture


def _capture(child: _Child, s: Settings) -> None:
    from realtime.sources import FrameSource

    _set_threads(1)
    sh = child.shared
    raw = ShmRing.attach(sh.rings["raw"])
    plan = _plan(s)
    cfg = s.config
    sample = make_sampler(s.info.fps, float(cfg["pose_tau"]), s.ref_fps)
    tick_slots = sh.rings["rgb"].slots
    display = "display" in sh.rings
    live = s.source.live
    source = FrameSource(s.source, s.info, stop=lambda: sh.stop.is_set())
    source.open()
    for slot in range(raw.slots):  # capture is the only taker of raw slots: it fills the free list
        sh.free_raw.put(slot)
    child.event("ready")
    child.wait_until(sh.go.is_set, 0.01)
    tick = 0
    expected_shape = (s.info.height, s.info.width, 3)
    try:
        while True:
            child.check()
            frame = source.read()
            if frame is None:
                break
            with sh.frames_read.get_lock():
                sh.frames_read.value += 1
            if not sample(frame.index, frame.timestamp):
                continue

            def room() -> bool:
                free = tick < sh.release_tick.value + tick_slots
                return free and (not display or tick < sh.pub_next.value + tick_slots)

            slot = None
            if live:
                if room():
                    try:
                        slot = sh.free_raw.get_nowait()
                    except queue.Empty:
                        slot = None
                if slot is None:
                    with sh.dropped.get_lock():
                        sh.dropped.value += 1
                    continue
            else:
                child.wait_until(room)
                slot = child.get(sh.free_raw)
            image = frame.image
            if image.shape != expected_shape:  # a stream that came back at another size
                import cv2

                image = cv2.resize(image, (s.info.width, s.info.height), interpolation=cv2.INTER_AREA)
            raw.write(tick, image, slot=slot)
            capture_ms = (time.time() - frame.wall_time) * 1000.0
            sh.tasks.put((tick, slot, frame.index, frame.timestamp, frame.wall_time, capture_ms, time.time()))
            tick += 1
    finally:
        source.close()
    if source.error:
        raise PipelineError(source.error, EXIT_FAILED)
    for _ in range(s.pose_workers):
        sh.tasks.put(None)
    sh.done.put(("end", tick))
    child.event("captured", {"frames": sh.frames_read.value, "ticks": tick, "reconnects": source.reconnects,
                             "plan_windows": plan.num_windows(tick)})
    raw.close()


# --------------------------------------------------------------------------------------------------
# pose workers


def _pose_worker(child: _Child, s: Settings, worker: int) -> None:
    from core.clip import ClipBuilder, InputSpec
    from core.preprocess import apply_crop
    from realtime.pose import get_backend

    _set_threads(1)
    sh = child.shared
    plan = _plan(s)
    raw = ShmRing.attach(sh.rings["raw"])
    rgb_ring = ShmRing.attach(sh.rings["rgb"])
    kp_ring = ShmRing.attach(sh.rings["keypoints"])
    display = ShmRing.attach(sh.rings["display"]) if "display" in sh.rings else None
    backend = get_backend(s.pose).configure(s.args, s.source.name)
    builder = ClipBuilder(InputSpec.from_config(s.config), s.info.height, s.info.width)
    joints = _joints(backend.skeleton)
    frame = np.empty(raw.spec.shape, dtype=raw.spec.dtype)
    child.event("ready")
    try:
        while True:
            task = child.get(sh.tasks)
            if task is None:
                break
            tick, slot, index, timestamp, wall, capture_ms, queued = task
            raw.read(tick, out=frame, slot=slot)
            sh.free_raw.put(slot)
            if display is not None and plan.is_window_end(tick):
                display.write(tick, frame)
            if plan.needs_rgb(tick):
                rgb_ring.write(tick, apply_crop(frame, builder.crop))
            coords, scores = backend(frame, index)
            coords = np.asarray(coords, np.float32).reshape(-1, joints, 2)
            scores = np.asarray(scores, np.float32).reshape(-1, joints)
            # only the persons a window will draw travel on: the model's skeleton, top-k by score, padded
            mc, ms = builder.keypoints(coords[None], scores[None], backend.skeleton)
            view = kp_ring.begin_write(tick)
            view.fill(0.0)
            view[: mc.shape[1], :, :2] = mc[0]
            view[: ms.shape[1], :, 2] = ms[0]
            kp_ring.end_write(tick)
            now = time.time()
            sh.done.put(("tick", tick, index, timestamp, wall, capture_ms, (now - queued) * 1000.0, now,
                         int(coords.shape[0]), (coords, scores, backend.skeleton) if plan.is_window_end(tick) else None))
    finally:
        backend.close()
        for ring in (raw, rgb_ring, kp_ring, display):
            if ring is not None:
                ring.close()


def _joints(skeleton: str) -> int:
    from core.skeletons import get_skeleton

    return get_skeleton(skeleton).num_joints


# --------------------------------------------------------------------------------------------------
# window assembly


def _assemble(child: _Child, s: Settings) -> None:
    from core.clip import ClipBuilder, InputSpec

    sh = child.shared
    plan = _plan(s)
    builder = ClipBuilder(InputSpec.from_config(s.config), s.info.height, s.info.width)
    rgb_ring = ShmRing.attach(sh.rings["rgb"])
    kp_ring = ShmRing.attach(sh.rings["keypoints"])
    window_kp = np.empty((plan.pose_frames, *kp_ring.spec.shape), np.float32)
    win_rgb = ShmRing.attach(sh.rings["win_rgb"])
    win_pose = ShmRing.attach(sh.rings["win_pose"])
    tracker = WindowTracker(plan)
    meta: dict[int, tuple] = {}
    frame_index_of: dict[int, int] = {}
    crop = np.empty(rgb_ring.spec.shape, dtype=np.uint8)
    total_ticks: int | None = None
    window_no = 0
    skipped = 0
    inv255 = np.float32(255.0)
    for slot in range(win_rgb.slots):  # assembly is the only taker of window slots
        sh.free_win.put(slot)
    child.event("ready")
    try:
        while total_ticks is None or tracker.complete_through + 1 < total_ticks:
            msg = child.get(sh.done)
            if msg[0] == "end":
                total_ticks = msg[1]
                continue
            _, tick, index, timestamp, wall, capture_ms, pose_ms, pose_done, persons, kp = msg
            meta[tick] = (index, timestamp, wall, capture_ms, pose_ms, pose_done, persons, kp)
            frame_index_of[tick] = index
            for end in tracker.add(tick):
                pose_ticks, rgb_ticks = plan.window(end)
                if s.source.live:
                    try:
                        slot = sh.free_win.get_nowait()
                    except queue.Empty:
                        slot = None
                else:
                    slot = child.get(sh.free_win)
                if slot is not None:
                    try:
                        rv = win_rgb.begin_write(window_no, slot=slot)
                        for i, t in enumerate(rgb_ticks):
                            rgb_ring.read(int(t), out=crop)
                            np.divide(crop.transpose(2, 0, 1), inv255, out=rv[i], dtype=np.float32)
                        win_rgb.end_write(window_no, slot=slot)
                        for i, t in enumerate(pose_ticks):
                            kp_ring.read(int(t), out=window_kp[i])
                        coords, scores = window_kp[..., :2], window_kp[..., 2]
                        pv = win_pose.begin_write(window_no, slot=slot)
                        builder.render(builder.map_coords(coords, scores), scores, out=pv)
                        win_pose.end_write(window_no, slot=slot)
                    except RingError:   # live only: a slot was reused under us; skip this window
                        sh.free_win.put(slot)
                        slot = None
                tracker.assembled(end)
                sh.release_tick.value = tracker.release
                if slot is None:
                    skipped += 1
                else:
                    index, timestamp, wall, capture_ms, pose_ms, pose_done, persons, kp = meta[end]
                    window_persons = max(meta[int(t)][6] for t in pose_ticks)
                    now = time.time()
                    sh.windows.put({
                        "window": window_no, "slot": slot, "end_tick": end, "frame_index": index,
                        "timestamp": timestamp, "wall_time": wall, "persons": persons, "keypoints": kp,
                        "window_persons": window_persons,
                        "frames": [frame_index_of[int(t)] for t in rgb_ticks],
                        "latency": {"capture": capture_ms, "pose": pose_ms, "assemble": (now - pose_done) * 1000.0},
                        "queued": now,
                    })
                    window_no += 1
                for t in [t for t in meta if t < tracker.release]:
                    del meta[t]
                    frame_index_of.pop(t, None)
        sh.windows.put(None)
        child.event("assembled", {"windows": window_no, "skipped": skipped})
    finally:
        for ring in (rgb_ring, kp_ring, win_rgb, win_pose):
            ring.close()


# --------------------------------------------------------------------------------------------------
# inference


def _infer(child: _Child, s: Settings) -> None:
    import torch

    from core.checkpoint import load_checkpoint
    from core.decision import DecisionRule
    from realtime.engines import EngineError, create_engine
    from realtime.messages import topk_from_probs

    torch.set_num_threads(max(1, s.threads))
    _set_threads(1)
    sh = child.shared
    try:
        model = load_checkpoint(s.checkpoint)
        engine = create_engine(s.engine, model, s.checkpoint, s.args)
    except (EngineError, ValueError) as exc:
        raise PipelineError(_one_line(exc), EXIT_USAGE) from None
    win_rgb = ShmRing.attach(sh.rings["win_rgb"])
    win_pose = ShmRing.attach(sh.rings["win_pose"])
    rgb = np.zeros((1, *win_rgb.spec.shape), np.float32)
    pose = np.zeros((1, *win_pose.spec.shape), np.float32)
    engine(rgb, pose)  # warm-up: first-call allocations and kernel selection are not a prediction's latency
    averager = ProbAverager(s.average)
    rule = DecisionRule(**s.decision)
    seq = 0
    skipped = 0
    child.event("ready", {"engine": engine.name, "describe": engine.describe()})
    try:
        while True:
            item = child.get(sh.windows)
            if item is not None and s.source.live:   # newest window wins; stale ones go back
                while True:
                    try:
                        newer = sh.windows.get_nowait()
                    except queue.Empty:
                        break
                    if newer is None:
                        sh.windows.put(None)
                        break
                    sh.free_win.put(item["slot"])
                    skipped += 1
                    item = newer
            if item is None:
                break
            try:
                win_rgb.read(item["window"], out=rgb[0], slot=item["slot"])
                win_pose.read(item["window"], out=pose[0], slot=item["slot"])
            except RingError:
                skipped += 1
                continue
            finally:
                sh.free_win.put(item["slot"])
            start = time.time()
            result = engine(rgb, pose)
            done = time.time()
            probs = averager.add(result.probs)
            decision = rule.decide(probs, s.class_names, item["window_persons"])
            latency = dict(item["latency"])
            latency["inference"] = (done - item["queued"]) * 1000.0
            sh.results.put({
                "fields": {
                    "seq": seq, "source": s.source.name, "frame_index": item["frame_index"],
                    "timestamp": item["timestamp"], "wall_time": item["wall_time"],
                    "action": decision.action, "action_score": decision.score,
                    "topk": topk_from_probs(probs, s.class_names, s.topk),
                    "appearance_weight": None if math.isnan(result.gate) else float(result.gate),
                    "persons": item["persons"], "window": {"frames": item["frames"]},
                    "latency_ms": {**latency, "capture_to_publish": None, "publish": None},
                    "dropped_frames": int(sh.dropped.value), "engine": engine.name, "model": s.model_name,
                },
                "end_tick": item["end_tick"], "keypoints": item["keypoints"], "engine_ms": (done - start) * 1000.0,
            })
            seq += 1
        sh.results.put(None)
        child.event("inferred", {"predictions": seq, "skipped": skipped})
    finally:
        engine.close()
        win_rgb.close()
        win_pose.close()


# --------------------------------------------------------------------------------------------------
# publishing


def _publish(child: _Child, s: Settings) -> None:
    from realtime.console import Console, LatencyStats, RateMeter
    from realtime.messages import build_message
    from realtime.publish import Publisher

    _set_threads(1)
    sh = child.shared
    display = ShmRing.attach(sh.rings["display"]) if "display" in sh.rings else None
    frame = np.empty(display.spec.shape, dtype=display.spec.dtype) if display is not None else None
    cfg = s.config
    prediction_fps = float(s.ref_fps) / (float(cfg["tau"]) * s.stride)
    try:
        publisher = Publisher(s.zmq, s.topic, s.jsonl, s.video_out, video_fps=prediction_fps,
                              allow_remote=s.zmq_allow_remote)
    except Exception as exc:  # noqa: BLE001 - bind errors, unwritable paths
        raise PipelineError(_one_line(exc), EXIT_USAGE) from None
    # stdout carries JSON Lines or --demo's label lines: the live view must not draw over them
    console = Console(enabled=not s.quiet, live=False if (s.jsonl == "-" or s.print_labels) else None)
    stats = LatencyStats()
    out_rate, in_rate = RateMeter(), _CounterRate()
    engine_ms = LatencyStats()
    published = 0
    child.event("ready", {"endpoint": publisher.endpoint})
    try:
        while True:
            item = child.get(sh.results)
            if item is None:
                break
            message = build_message(**item["fields"])
            image = None
            if display is not None:
                try:
                    image = display.read(item["end_tick"], out=frame)
                except RingError:
                    image = None   # live: the frame was reused before we got to it
                sh.pub_next.value = item["end_tick"] + 1
            try:
                publisher.publish(message, image, item["keypoints"])
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc.__context__, BrokenPipeError) or isinstance(exc, BrokenPipeError):
                    # `ia-live --dump-json | head`: the reader left; end quietly like any Unix filter
                    raise PipelineError("JSON Lines reader closed the pipe", EXIT_OK) from None
                raise
            published += 1
            if s.print_labels:
                labels = "  ".join(f"{e['label']} {e['score']:.2f}" for e in message["topk"][:3])
                print(f"{message['timestamp']:7.2f}s  frame {message['frame_index']:5d}  "
                      f"persons {message['persons']}  {message['action']:<14s}  ({labels})", flush=True)
            stats.add_message(message)
            engine_ms.add("engine", item["engine_ms"])
            out_rate.tick()
            console.update({
                "in_fps": in_rate.rate(sh.frames_read.value), "out_fps": out_rate.rate(),
                "latency": stats.summary(), "dropped_frames": message["dropped_frames"],
                "zmq_dropped": publisher.stats.zmq_dropped, "source": s.source.name,
                "engine": message["engine"], "model": s.model_name,
            }, message)
        if display is not None:
            sh.pub_next.value = 1 << 62
        child.event("published", {"messages": published, "zmq_dropped": publisher.stats.zmq_dropped,
                                  "latency": stats.summary(), "engine_ms": engine_ms.summary().get("engine")})
    finally:
        console.close()
        publisher.close()
        if display is not None:
            display.close()


class _CounterRate:
    """Rate of a monotonically increasing shared counter over the last ~2 s."""

    def __init__(self, window_s: float = 2.0):
        self.window_s = window_s
        self._samples: list[tuple[float, int]] = []

    def rate(self, value: int) -> float:
        now = time.monotonic()
        self._samples.append((now, value))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.pop(0)
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


# --------------------------------------------------------------------------------------------------
# parent: build, supervise, tear down


def _plan(s: Settings) -> WindowPlan:
    from types import SimpleNamespace

    return WindowPlan.from_config(SimpleNamespace(**s.config), stride=s.stride)


def ring_layout(s: Settings) -> dict[str, tuple[int, tuple[int, ...], str]]:
    """name -> (slots, item shape, dtype) of every ring the pipeline needs.

    Per tick the pose stage stores the drawn persons' keypoints (model skeleton, top-k, x/y/score);
    assembly renders a window's pose maps from them (`core.clip.ClipBuilder`), because a person-centric
    map's box depends on the whole window. Maps are float32: they are rendered in float32 (the released
    code's arithmetic) and fed to the network as float32.
    """
    cfg = s.config
    plan = _plan(s)
    from core.skeletons import get_skeleton

    skeleton = get_skeleton(cfg["skeleton"])
    channels = cfg.get("pose_channels") or skeleton.num_channels
    size, msize = int(cfg["rgb_size"]), int(cfg["map_size"])
    tick_slots = s.tick_slots or plan.pose_frames + plan.step + max(8, 4 * s.pose_workers)
    frame_shape = (s.info.height, s.info.width, 3)
    layout = {
        "raw": (2 * s.pose_workers + 2, frame_shape, "uint8"),
        "rgb": (tick_slots, (size, size, 3), "uint8"),
        "keypoints": (tick_slots, (int(cfg["top_k_persons"]), skeleton.num_joints, 3), "float32"),
        "win_rgb": (WINDOW_SLOTS, (plan.frames, 3, size, size), "float32"),
        "win_pose": (WINDOW_SLOTS, (plan.pose_frames, channels, msize, msize), "float32"),
    }
    if s.video_out:
        layout["display"] = (tick_slots, frame_shape, "uint8")
    return layout


@dataclass
class RunResult:
    code: int
    message: str | None = None
    summary: dict = field(default_factory=dict)


class _SignalFlag:
    def __init__(self):
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


def run(s: Settings, on_event: Callable[[str, str, Any], None] | None = None) -> RunResult:
    """Run the pipeline to the end of the source (or a signal / failure); never raises for runtime
    problems: the result carries the exit code and a one-line message."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    rings: list[ShmRing] = []
    procs: list[tuple[str, Any]] = []
    flag = _SignalFlag()
    flag.install()
    summary: dict[str, Any] = {}
    try:
        prefix = segment_prefix()
        shared = Shared(
            stop=ctx.Event(), go=ctx.Event(), events=ctx.SimpleQueue(),
            dropped=ctx.Value("q", 0), frames_read=ctx.Value("q", 0), release_tick=ctx.Value("q", 0, lock=False),
            pub_next=ctx.Value("q", 0, lock=False),
            tasks=ctx.Queue(), free_raw=ctx.Queue(), done=ctx.Queue(), free_win=ctx.Queue(),
            windows=ctx.Queue(), results=ctx.Queue(),
        )
        for name, (slots, shape, dtype) in ring_layout(s).items():
            ring = ShmRing.create(unique_name(prefix, name), slots, shape, dtype)
            rings.append(ring)
            shared.rings[name] = ring.spec

        roles: list[tuple[str, Callable, tuple]] = [("publisher", _publish, (s,)), ("inference", _infer, (s,)),
                                                   ("assembly", _assemble, (s,))]
        roles += [(f"pose worker {i}", _pose_worker, (s, i)) for i in range(s.pose_workers)]
        roles.append(("capture", _capture, (s,)))
        for role, target, args in roles:
            proc = ctx.Process(target=_child_entry, args=(role, target, shared, *args), name=f"ia-live {role}",
                               daemon=True)
            proc.start()
            procs.append((role, proc))
        return _supervise(s, shared, procs, flag, summary, on_event)
    except KeyboardInterrupt:
        return RunResult(EXIT_SIGINT, "interrupted", summary)
    finally:
        _teardown(procs, locals().get("shared"))
        for ring in rings:
            ring.close()
            ring.unlink()
        flag.restore()
        _release_sync_objects(procs)


def _release_sync_objects(procs: list) -> None:
    """Let the named semaphores behind Events/Values/Queues be unlinked now, not at interpreter exit.

    With the spawn context each is a named POSIX semaphore (/dev/shm/sem.mp-*), unlinked by a finalizer
    when garbage collected. `multiprocessing` keeps joined Process objects (and through their args our
    `Shared`) until its next cleanup; dropping them here means a caller that exits with `os._exit`
    leaks nothing and the resource tracker has nothing to warn about. (The parent never `put`s on a
    data queue - the children fill the free-slot lists - because a queue's feeder thread would keep two
    semaphores alive past this point.)
    """
    import gc
    import multiprocessing as mp

    procs.clear()
    mp.active_children()  # forgets joined children
    gc.collect()


def _supervise(s: Settings, shared: Shared, procs, flag: _SignalFlag, summary: dict, on_event) -> RunResult:
    ready: set[str] = set()
    finished: set[str] = set()
    errors: list[tuple[str, str, int]] = []
    sentinels = {proc.sentinel: (role, proc) for role, proc in procs}

    def drain() -> None:
        while not shared.events.empty():
            kind, role, payload = shared.events.get()
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
                return RunResult(EXIT_OK, None, {**summary, "stopped": message})
            return RunResult(code, f"{role}: {message}", summary)
        if flag.signum is not None:
            sig = flag.signum
            return RunResult(EXIT_SIGINT if sig == signal.SIGINT else EXIT_SIGTERM,
                             "interrupted" if sig == signal.SIGINT else "terminated", summary)
        if not shared.go.is_set() and len(ready) == len(procs):
            shared.go.set()
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
                return RunResult(EXIT_FAILED, f"{role} process died ({how})", summary)
        if len(finished) == len(procs):
            drain()
            return RunResult(EXIT_OK, None, summary)
        connection.wait(list(sentinels), timeout=0.1)


def _teardown(procs, shared: Shared | None) -> None:
    if shared is not None:
        shared.stop.set()
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
