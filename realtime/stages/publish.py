"""Publisher: predictions -> messages -> ZeroMQ, JSON Lines, console (and the video writer's overlay).

The message is built here (`realtime.messages.build_message`) with the run's counters at publish time
(frames and windows dropped, gaps, reconnects). Live, a publisher that fell behind (a stdout reader that
stopped reading blocks the JSON Lines write) publishes the newest prediction next and counts the stale ones
as dropped windows, so a message never reports a scene from long ago as now.
"""
from __future__ import annotations

import math
import time

from core.errors import EXIT_OK, EXIT_USAGE, one_line
from realtime.console import Console, CounterRate, LatencyStats, RateMeter
from realtime.flow import flow_for
from realtime.items import Prediction, PredictionOverlay, VideoEnd
from realtime.messages import build_message
from realtime.publish import Publisher
from realtime.stages.child import Child, PipelineError, set_threads


def message_of(p: Prediction, s, counters) -> dict:
    """The `ia-live` message of one prediction (publish-time latencies left for the publisher to stamp)."""
    last = p.window.last
    return build_message(
        seq=p.seq, source=s.source.name, frame_index=last.index, timestamp=last.timestamp, wall_time=last.wall_time,
        action=p.action, action_score=p.action_score, topk=p.topk,
        appearance_weight=None if math.isnan(p.gate) else p.gate, persons=last.persons,
        window={"frames": list(p.window.frames)},
        latency_ms={**p.window.latency, "inference": p.inference_ms, "capture_to_publish": None, "publish": None},
        dropped_frames=counters.value("dropped_frames"), dropped_windows=counters.value("dropped_windows"),
        gaps=counters.value("gaps"), reconnects=counters.value("reconnects"), engine=p.engine, model=s.model.name)


def total_frames(s) -> int | None:
    """Frames the run will read (progress and ETA on the console): a file's count, capped by --max-frames."""
    count = s.info.frame_count
    if s.source.kind != "file" or count is None:
        return None
    return min(count, s.source.max_frames or count)


def run(child: Child, s) -> None:
    set_threads(1)
    ch = child.ch
    out = s.output
    video = "video" in ch.rings   # --output: the video writer draws what was published
    try:
        publisher = Publisher(out.zmq, out.topic, out.jsonl, allow_remote=out.zmq_allow_remote)
    except Exception as exc:  # noqa: BLE001 - bind errors, unwritable paths
        raise PipelineError(one_line(exc), EXIT_USAGE) from None
    # stdout carries JSON Lines or --demo's label lines: the live view must not draw over them
    console = Console(enabled=not out.quiet, live=False if (out.jsonl == "-" or out.print_labels) else None)
    stats, engine_ms = LatencyStats(), LatencyStats()
    out_rate, in_rate = RateMeter(), CounterRate()
    results = flow_for(s).reader(child, ch.results)
    published = 0
    child.event("ready", {"endpoint": publisher.endpoint})
    try:
        while True:
            item: Prediction | None = results.next()
            if item is None:
                break
            message = message_of(item, s, ch)
            try:
                publisher.publish(message)
            except Exception as exc:  # noqa: BLE001
                if isinstance(exc.__context__, BrokenPipeError) or isinstance(exc, BrokenPipeError):
                    # `ia-live --dump-json | head`: the reader left; end quietly like any Unix filter
                    raise PipelineError("JSON Lines reader closed the pipe", EXIT_OK) from None
                raise
            published += 1
            if video:
                ch.video.put(PredictionOverlay.of(message))
            if out.print_labels:
                labels = "  ".join(f"{e['label']} {e['score']:.2f}" for e in message["topk"][:3])
                print(f"{message['timestamp']:7.2f}s  frame {message['frame_index']:5d}  "
                      f"persons {message['persons']}  {message['action']:<14s}  ({labels})", flush=True)
            stats.add_message(message)
            engine_ms.add("engine", item.engine_ms)
            out_rate.tick()
            console.update({
                "in_fps": in_rate.rate(ch.value("frames_read")), "out_fps": out_rate.rate(),
                "latency": stats.summary(), "dropped_frames": message["dropped_frames"],
                "zmq_dropped": publisher.stats.zmq_dropped, "source": s.source.name,
                "engine": message["engine"], "model": s.model.name,
                "frames_read": ch.value("frames_read"), "frame_count": total_frames(s),
            }, message)
        child.event("published", {"messages": published, "skipped": results.skipped,
                                  "zmq_dropped": publisher.stats.zmq_dropped, "latency": stats.summary(),
                                  "engine_ms": engine_ms.summary().get("engine"), "at": time.time()})
    finally:
        console.close()
        publisher.close()
        if video:
            ch.video.put(VideoEnd("publisher"))
