"""Publisher: predictions -> messages -> ZeroMQ, JSON Lines, console (and the video writer's overlay).

Besides one `prediction` per window it publishes a `heartbeat` on ZeroMQ whenever nothing was published
for ``--heartbeat`` seconds (start-up, nobody in view, a stalled source) and, whatever ends the run, an
`end` message last: after the source's end, or with the reason the supervisor wrote into the channels
before it stopped the pipeline (`Channels.set_outcome`), or with this process's own error. With
``--wait-subscribers N`` it holds back its "ready" (so the source is not even opened) until N subscribers
listen. The prediction's `people` get their track ids here (`realtime.people`), the one process that sees
every prediction in order.

The message is built here (`realtime.messages.build_message`) with the run's counters at publish time
(frames and windows dropped, gaps, reconnects). Live, a publisher that fell behind (a stdout reader that
stopped reading blocks the JSON Lines write) publishes the newest prediction next and counts the stale ones
as dropped windows, so a message never reports a scene from long ago as now.
"""
from __future__ import annotations

import math
import queue
import time

from core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, one_line
from realtime.console import Console, CounterRate, LatencyStats, RateMeter
from realtime.flow import flow_for
from realtime.items import Prediction, PredictionOverlay, VideoEnd
from realtime.messages import build_end, build_heartbeat, build_message
from realtime.people import PeopleTracker
from realtime.publish import Publisher, PublishError
from realtime.stages.child import Child, PipelineError, Stopped, set_threads


def message_of(p: Prediction, s, counters, people: list[dict] | None = None) -> dict:
    """The `ia-live` message of one prediction (publish-time latencies left for the publisher to stamp)."""
    last = p.window.last
    return build_message(
        seq=p.seq, source=s.source.name, frame_index=last.index, timestamp=last.timestamp, wall_time=last.wall_time,
        action=p.action, action_score=p.action_score, topk=p.topk,
        appearance_weight=None if math.isnan(p.gate) else p.gate, persons=last.persons, people=people or [],
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
    tracker = PeopleTracker()
    published = 0
    last_seq: int | None = None

    ended = False

    def end(reason: str, error: str | None) -> PublishError | None:
        """Publish the run's last message (once). Best effort: the sink that failed may be why the run ends.
        A JSON Lines file that fails on this very line gets nothing more; ZeroMQ then hears an `error` end
        instead, and the failure is returned for the caller to raise."""
        nonlocal ended
        if ended:
            return None
        ended = True

        def message(reason: str, error: str | None) -> dict:
            return build_end(source=s.source.name, reason=reason, error=error, predictions=published,
                             frames=ch.value("frames_read"), dropped_frames=ch.value("dropped_frames"),
                             dropped_windows=ch.value("dropped_windows"))

        try:
            publisher.publish(message(reason, error))
            return None
        except PublishError as exc:
            failure = exc
        except Exception:  # noqa: BLE001 - never mask the reason the run is ending
            return None
        try:
            publisher.publish(message("error", one_line(failure)))   # the file is marked failed: ZeroMQ only
        except Exception:  # noqa: BLE001
            pass
        return failure

    try:
        if out.wait_subscribers:
            _wait_for_subscribers(child, publisher, out.wait_subscribers, out.wait_timeout)
        child.event("ready", {"endpoint": publisher.endpoint})
        idle_since = time.monotonic()
        while True:
            wait = None
            if out.heartbeat and publisher.zmq is not None:
                wait = max(0.0, out.heartbeat - (time.monotonic() - idle_since))
            try:
                item: Prediction | None = results.next(wait)
            except queue.Empty:
                publisher.publish(build_heartbeat(source=s.source.name, last_seq=last_seq,
                                                  idle_s=time.monotonic() - idle_since,
                                                  frames=ch.value("frames_read")))
                idle_since = time.monotonic()
                continue
            if item is None:
                break
            last = item.window.last
            people = tracker.people(last.keypoints, last.segment)
            message = message_of(item, s, ch, people)
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
            last_seq = message["seq"]
            idle_since = time.monotonic()
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
        if ch.stop.is_set():
            # a stop also ends the source "normally" (capture's read returns None): the supervisor's reason
            # (written before `stop`) is the true one
            failure = end(*ch.get_outcome())
        else:
            # a file paced with --realtime is live for flow control, but it still ended at its end
            failure = end("end_of_file" if s.source.kind == "file" else "end_of_stream", None)
        if failure is not None:
            raise failure
        child.event("published", {"messages": published, "skipped": results.skipped,
                                  "zmq_dropped": publisher.stats.zmq_dropped, "latency": stats.summary(),
                                  "engine_ms": engine_ms.summary().get("engine"), "at": time.time()})
    except Stopped:
        end(*ch.get_outcome())
        raise
    except PipelineError as exc:
        end("stopped" if exc.code == EXIT_OK else "error", None if exc.code == EXIT_OK else one_line(exc))
        raise
    except Exception as exc:  # noqa: BLE001 - reported by child_main; the subscribers hear it too
        end("error", one_line(exc))
        raise
    finally:
        console.close()
        publisher.close()
        if video:
            ch.video.put(VideoEnd("publisher"))


def _wait_for_subscribers(child: Child, publisher: Publisher, count: int, timeout_s: float) -> None:
    """Hold the run until `count` ZeroMQ subscribers listen (`--wait-subscribers`), or fail after `timeout_s`."""
    if publisher.zmq is None:
        raise PipelineError("--wait-subscribers needs ZeroMQ (drop --no-zmq)", EXIT_USAGE)
    if not publisher.wait_for_subscriber(timeout_s, count, check=child.check):
        raise PipelineError(f"--wait-subscribers {count}: {publisher.subscribers} of {count} subscriber(s) on "
                            f"{publisher.endpoint} after --wait-timeout {timeout_s:g} s", EXIT_FAILED)
