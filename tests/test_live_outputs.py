"""Outputs of ia-live: the message schema, the ZeroMQ/JSON Lines publisher, the video overlay, ia-sub
and the console.

ZeroMQ tests use real pyzmq sockets on free loopback ports (bound with port *), never mocks.
"""
from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import zmq

from conftest import REPO, check_message, shared_path
from realtime.annotate import annotate_frame, skeleton_bones
from realtime.console import GATE_LEGEND, Console, LatencyStats, RateMeter, format_plain
from realtime.messages import (KEYS, LATENCY_KEYS, build_message, from_json, person_entry, stamp_publish, to_json,
                               topk_from_probs, validate_message)
from core.decision import DecisionRule
from realtime.publish import Publisher, PublishError, ZmqSink, check_endpoint

LOOPBACK_ANY = "tcp://127.0.0.1:*"
CLASSES = ["clapping", "drinking", "hugging", "jumping", "waving"]


def make_message(seq: int = 0, *, wall_time: float | None = None, probs=None, gate=0.25) -> dict:
    """A complete, valid message as the pipeline would build it (publish latencies left to the publisher)."""
    rng = np.random.default_rng(seq)
    probs = rng.dirichlet(np.ones(len(CLASSES))).astype(np.float32) if probs is None else probs
    frames = np.arange(seq, seq + 32, 4, dtype=np.int64)
    decision = DecisionRule(threshold=0.3).decide(probs, CLASSES, persons=2)
    return build_message(
        seq=seq, source="test.mp4", frame_index=int(frames[-1]) + 1, timestamp=(int(frames[-1]) + 1) / 30.0,
        action=decision.action, action_score=np.float32(decision.score),
        topk=topk_from_probs(probs, CLASSES, k=5), appearance_weight=np.float32(gate), persons=np.int64(2),
        window=frames, latency_ms={"capture": 1.5, "pose": 18.25, "assemble": 0.75, "inference": 41.0},
        dropped_frames=seq // 10, engine="torch", model="random.pt",
        wall_time=time.time() if wall_time is None else wall_time,
        people=[person_entry(i, rng.uniform(0, 300, (17, 2)), rng.uniform(0, 1, 17)) for i in range(2)],
    )


def complete(message: dict) -> dict:
    return stamp_publish(message)


def sub_socket(endpoint: str, topic: bytes = b"ia.actions", **opts) -> tuple[zmq.Context, zmq.Socket]:
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    for name, value in opts.items():
        sock.setsockopt(getattr(zmq, name), value)
    sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    return context, sock


def recv_all(sock: zmq.Socket, count: int, timeout_s: float = 10.0) -> list[list[bytes]]:
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        if sock.poll(100, zmq.POLLIN):
            out.append(sock.recv_multipart())
    return out


# ----------------------------------------------------------------------------------------------- messages
def test_message_is_canonical_and_round_trips():
    message = complete(make_message(3))
    validate_message(message)
    line = to_json(message)
    check_message(line)                                    # and the published JSON Schema agrees
    assert "\n" not in line and ", " not in line and ": " not in line
    assert list(json.loads(line)) == list(KEYS)
    assert list(json.loads(line)["latency_ms"]) == list(LATENCY_KEYS)
    # Same content in another insertion order serialises to the same bytes.
    shuffled = dict(reversed(list(message.items())))
    shuffled["latency_ms"] = dict(reversed(list(message["latency_ms"].items())))
    assert to_json(shuffled) == line
    assert from_json(line) == json.loads(line)
    assert from_json(line.encode()) == message


def test_build_message_converts_pipeline_values():
    message = make_message(0, probs=np.array([0.1, 0.6, 0.3, 0.0, 0.0], np.float32), gate=float("nan"))
    assert message["appearance_weight"] is None          # NaN gate = variant without a gate
    assert type(message["persons"]) is int and type(message["frame_index"]) is int
    assert all(type(f) is int for f in message["window"]["frames"])
    assert [e["index"] for e in message["topk"]] == [1, 2, 0, 3, 4]   # score desc, ties by index
    assert [e["label"] for e in message["topk"][:2]] == ["drinking", "hugging"]
    assert message["topk"][0]["score"] == 0.6
    assert message["latency_ms"]["publish"] is None and message["latency_ms"]["capture_to_publish"] is None
    with pytest.raises(ValueError, match="latency_ms.capture_to_publish"):
        validate_message(message)                          # not complete until the publisher stamps it
    # (label, index, score) tuples are accepted for topk.
    tuples = build_message(**{**_fields(message), "topk": [("drinking", 1, 0.6)]})
    assert tuples["topk"] == [{"label": "drinking", "index": 1, "score": 0.6}]


def _fields(message: dict) -> dict:
    return {k: v for k, v in message.items() if k not in ("schema", "type")}


def test_topk_from_probs_checks_names():
    assert len(topk_from_probs(np.full(5, 0.2), CLASSES, k=10)) == 5
    with pytest.raises(ValueError, match="4 class names"):
        topk_from_probs(np.full(5, 0.2), CLASSES[:4])


def test_stamp_publish_fills_end_to_end_and_remainder():
    message = make_message(1, wall_time=1000.0)
    stamp_publish(message, now=1000.2)
    latency = message["latency_ms"]
    assert latency["capture_to_publish"] == pytest.approx(200.0, abs=1e-3)
    measured = latency["capture"] + latency["pose"] + latency["assemble"] + latency["inference"]
    assert latency["publish"] == pytest.approx(200.0 - measured, abs=1e-3)
    # Values the pipeline measured itself are kept.
    message = make_message(1, wall_time=1000.0)
    message["latency_ms"].update(capture_to_publish=90.0, publish=2.0)
    stamp_publish(message, now=1005.0)
    assert (message["latency_ms"]["capture_to_publish"], message["latency_ms"]["publish"]) == (90.0, 2.0)


def _set(path, value):
    def mutate(m):
        *head, last = path
        target = m
        for key in head:
            target = target[key]
        target[last] = value
    return mutate


def _delete(path):
    def mutate(m):
        *head, last = path
        target = m
        for key in head:
            target = target[key]
        del target[last]
    return mutate


BAD = [
    ("missing", _delete(["engine"]), "missing engine"),
    ("unknown key", _set(["extra"], 1), "unknown key.*extra"),
    ("schema", _set(["schema"], "ia-live/0"), "schema"),
    ("seq negative", _set(["seq"], -1), "seq must be >= 0"),
    ("seq bool", _set(["seq"], True), "seq must be an integer"),
    ("seq float", _set(["seq"], 1.0), "seq must be an integer"),
    ("source empty", _set(["source"], ""), "source"),
    ("timestamp nan", _set(["timestamp"], float("nan")), "timestamp must be finite"),
    ("topk empty", _set(["topk"], []), "topk must be a non-empty list"),
    ("action missing", _delete(["action"]), "message is missing action"),
    ("action empty", _set(["action"], ""), "action must be a non-empty string"),
    ("action score", _set(["action_score"], 1.5), "action_score must be <= 1"),
    ("score > 1", _set(["topk", 0, "score"], 1.5), r"topk\[0\].score must be <= 1"),
    ("score nan", _set(["topk", 1, "score"], float("nan")), r"topk\[1\].score must be finite"),
    ("unsorted", _set(["topk", 1, "score"], 0.99999), "sorted by score"),
    ("repeated class", _set(["topk", 1, "index"], None), r"topk\[1\].index must be an integer"),
    ("label type", _set(["topk", 0, "label"], 3), r"topk\[0\].label"),
    ("gate range", _set(["appearance_weight"], 1.2), "appearance_weight must be <= 1"),
    ("persons", _set(["persons"], -2), "persons"),
    ("window empty", _set(["window", "frames"], []), "window.frames must be a non-empty list"),
    ("window order", _set(["window", "frames"], [5, 3]), "non-decreasing"),
    ("window future", _set(["window", "frames"], [10**6]), "after frame_index"),
    ("latency missing", _delete(["latency_ms", "pose"]), "latency_ms is missing pose"),
    ("latency negative", _set(["latency_ms", "inference"], -1.0), "latency_ms.inference must be >= 0"),
    ("latency unfilled", _set(["latency_ms", "publish"], None), "latency_ms.publish must be a number"),
    ("drops", _set(["dropped_frames"], "0"), "dropped_frames must be an integer"),
    ("model", _set(["model"], None), "model"),
]


@pytest.mark.parametrize("name,mutate,pattern", BAD, ids=[b[0] for b in BAD])
def test_validation_rejects_bad_messages(name, mutate, pattern):
    message = complete(make_message(2))
    validate_message(message)
    bad = copy.deepcopy(message)
    mutate(bad)
    with pytest.raises(ValueError, match=pattern):
        validate_message(bad)


def test_repeated_class_and_non_object_rejected():
    message = complete(make_message(2))
    message["topk"][1]["index"] = message["topk"][0]["index"]
    with pytest.raises(ValueError, match="repeated"):
        validate_message(message)
    with pytest.raises(ValueError, match="JSON object"):
        validate_message([1, 2])
    with pytest.raises(ValueError, match="not a JSON message"):
        from_json(b"{nope")
    with pytest.raises(ValueError, match="cannot be serialised"):
        to_json({**message, "timestamp": float("inf")})


# ----------------------------------------------------------------------------------------------- ZeroMQ
def test_subscriber_receives_exactly_the_jsonl_messages(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    publisher = Publisher(LOOPBACK_ANY, "ia.actions", jsonl=str(jsonl))
    context, sub = sub_socket(publisher.endpoint)
    other_context, other = sub_socket(publisher.endpoint, topic=b"ia.actions.other")
    try:
        # Slow joiner: the XPUB sees the subscription, so nothing is published into the void.
        assert publisher.wait_for_subscriber(10.0)
        sent = [publisher.publish(make_message(i)) for i in range(60)]
        received = recv_all(sub, 60)
        assert other.poll(200, zmq.POLLIN) == 0            # prefix filter: another topic gets nothing
    finally:
        publisher.close()
        sub.close(); other.close(); context.term(); other_context.term()
    lines = jsonl.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 61            # one flushed line per message
    assert [parts[0] for parts in received] == [b"ia.actions"] * 60
    assert [parts[1] for parts in received] == lines[:-1] == [s.encode() for s in sent]
    assert [check_message(p[1])["seq"] for p in received] == list(range(60))
    assert publisher.stats.zmq_sent == 60 and publisher.stats.zmq_dropped == 0


def test_close_delivers_queued_messages():
    # Positive check only: on loopback ZeroMQ usually flushes even with LINGER 0, so this cannot prove the
    # linger is needed; it proves close() right after a burst loses nothing.
    publisher = Publisher(LOOPBACK_ANY, "ia.actions")
    context, sub = sub_socket(publisher.endpoint)
    try:
        assert publisher.wait_for_subscriber(10.0)
        for i in range(40):
            publisher.publish(make_message(i))
        publisher.close()                                  # lingers so the last predictions are not lost
        received = recv_all(sub, 40)
    finally:
        sub.close(); context.term()
    assert [check_message(p[1])["seq"] for p in received] == list(range(40))


@pytest.mark.timeout(60)
def test_publishing_without_subscriber_never_blocks():
    message = complete(make_message(0))
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        for i in range(10_000):
            message["seq"] = i
            publisher.publish(message)
        assert publisher.stats.published == 10_000
        assert publisher.stats.zmq_dropped == 0           # no subscriber: nothing queued, nothing dropped
        assert not publisher.wait_for_subscriber(0.05)


@pytest.mark.timeout(60)
def test_subscriber_that_never_reads_causes_counted_drops_not_blocking():
    publisher = Publisher(LOOPBACK_ANY, "ia.actions", sndhwm=2)
    context, sub = sub_socket(publisher.endpoint, RCVHWM=2, RCVBUF=4096)
    message = complete(make_message(0))
    try:
        assert publisher.wait_for_subscriber(10.0)
        for i in range(100_000):
            message["seq"] = i
            publisher.publish(message)
            if publisher.stats.zmq_dropped >= 100:
                break
        stats = publisher.stats
        assert stats.zmq_dropped >= 100, "the stalled subscriber never filled its queue"
        assert stats.zmq_sent + stats.zmq_dropped == stats.published == i + 1
        # The subscriber still gets the oldest messages first, in order, starting at seq 0. Which later
        # ones were accepted depends on when ZeroMQ's I/O thread drained the queue (drops are gaps).
        first = [json.loads(p[1])["seq"] for p in recv_all(sub, 3)]
        assert first[0] == 0 and first == sorted(set(first)) and first[-1] <= i, first
    finally:
        publisher.close()
        sub.close(); context.term()


def test_endpoint_in_use_and_invalid_endpoints_are_one_line_errors():
    first = ZmqSink(LOOPBACK_ANY)
    try:
        with pytest.raises(PublishError, match="already in use") as info:
            ZmqSink(first.endpoint)
        assert "\n" not in str(info.value)
    finally:
        first.close()
    for endpoint, pattern in [("127.0.0.1:5556", "invalid ZeroMQ endpoint"),
                              ("udp://127.0.0.1:5556", "transport"),
                              ("tcp://127.0.0.1", "HOST:PORT"),
                              ("tcp://127.0.0.1:99999", "port"),
                              ("tcp://0.0.0.0:5556", "non-loopback"),
                              ("tcp://*:5556", "non-loopback"),
                              ("tcp://nonexistent.invalid:5556", "non-loopback")]:
        with pytest.raises(PublishError, match=pattern):
            Publisher(endpoint, "ia.actions")
    with pytest.raises(PublishError, match="cannot bind"):
        Publisher("tcp://nonexistent.invalid:5556", "ia.actions", allow_remote=True)
    assert check_endpoint("tcp://localhost:5556") and check_endpoint("tcp://[::1]:5556")
    assert check_endpoint("tcp://0.0.0.0:5556", allow_remote=True)


def test_publisher_rejects_invalid_message_before_any_output(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    with Publisher(None, "ia.actions", jsonl=str(jsonl)) as publisher:
        bad = make_message(0)
        bad["topk"] = []
        with pytest.raises(ValueError, match="topk"):
            publisher.publish(bad)
    assert jsonl.read_text() == ""
    with pytest.raises(PublishError, match="does not exist"):
        Publisher(None, "ia.actions", jsonl=str(tmp_path / "missing" / "out.jsonl"))


def test_jsonl_to_stdout(capsys):
    with Publisher(None, "ia.actions", jsonl="-") as publisher:
        line = publisher.publish(make_message(5))
    out, err = capsys.readouterr()
    assert out == line + "\n" and err == ""


# ----------------------------------------------------------------------------------------------- video


def _person(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A standing COCO-17 person in the middle of a w x h frame."""
    cx, top = w / 2, h * 0.15
    s = h * 0.7
    pts = [(0, .05), (-.03, .03), (.03, .03), (-.06, .04), (.06, .04), (-.12, .2), (.12, .2), (-.16, .38),
           (.16, .38), (-.18, .55), (.18, .55), (-.08, .55), (.08, .55), (-.09, .78), (.09, .78), (-.1, 1.0),
           (.1, 1.0)]
    coords = np.array([[(cx + dx * s, top + dy * s) for dx, dy in pts]], np.float32)
    return coords, np.full((1, 17), 0.9, np.float32)


def test_annotate_draws_limbs_labels_and_gate():
    frame = np.full((240, 320, 3), 128, np.uint8)
    coords, scores = _person(320, 240)
    message = complete(make_message(0, gate=0.75))
    out = annotate_frame(frame, message, (coords, scores, "coco17"))
    assert np.array_equal(frame, np.full((240, 320, 3), 128, np.uint8))   # input untouched
    assert skeleton_bones("coco17") and skeleton_bones("no-such-layout") == ()
    changed = np.abs(out.astype(np.int16) - 128).sum(axis=2) > 30
    # Midpoint of the left thigh (hip 11 -> knee 13) is on a drawn limb, away from any joint.
    mid = ((coords[0, 11] + coords[0, 13]) / 2).round().astype(int)
    assert changed[mid[1], mid[0]]
    # Low-confidence joints are not drawn: without keypoints the same pixel stays grey.
    hidden = annotate_frame(frame, message, (coords, np.zeros_like(scores), "coco17"))
    assert np.abs(hidden[mid[1], mid[0]].astype(int) - 128).sum() <= 30
    # The gate bar: appearance colour on the left 3/4, pose colour on the right.
    from realtime.annotate import APPEARANCE_COLOUR, POSE_COLOUR
    row = out[-8, :, :].astype(int)
    assert np.abs(row[int(320 * 0.3)] - APPEARANCE_COLOUR).sum() < 40
    assert np.abs(row[int(320 * 0.9)] - POSE_COLOUR).sum() < 40
    with pytest.raises(ValueError, match="BGR uint8"):
        annotate_frame(np.zeros((10, 10, 3), np.float32), message)


def test_annotate_real_frame():
    path = shared_path("data", "videos", "mmaction2_basketball_shooting.mp4")
    capture = cv2.VideoCapture(str(path))
    ok, frame = capture.read()
    capture.release()
    assert ok
    coords, scores = _person(frame.shape[1], frame.shape[0])
    out = annotate_frame(frame, complete(make_message(0, gate=float("nan"))), (coords, scores, "coco17"))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (np.abs(out.astype(int) - frame.astype(int)).sum(axis=2) > 30).mean() > 0.05


# ----------------------------------------------------------------------------------------------- ia-sub
def _ia_sub(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "realtime.subscribe", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


@pytest.mark.parametrize("raw", [False, True], ids=["human", "json"])
def test_ia_sub_prints_count_messages(raw):
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        proc = _ia_sub("--zmq", publisher.endpoint, "--count", "3", "--timeout", "20", *(["--dump-json"] if raw else []))
        try:
            assert publisher.wait_for_subscriber(20.0), proc.stderr.read() if proc.poll() is not None else ""
            lines = []
            for i in range(5):                 # more than --count: ia-sub must stop at 3
                lines.append(publisher.publish(make_message(i)))
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    printed = out.splitlines()
    assert len(printed) == 3
    if raw:
        assert printed == lines[:3]
    else:
        for i, text in enumerate(printed):
            top = check_message(lines[i])["topk"][0]
            assert text.startswith(f"#{i} test.mp4 frame ") and f"{top['label']} {top['score']:.2f}" in text
            assert "G 0.25" in text


def test_ia_sub_timeout_and_bad_endpoint():
    proc = _ia_sub("--zmq", "tcp://127.0.0.1:9", "--timeout", "0.3")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and "no message" in err and "Traceback" not in err and out == ""
    proc = _ia_sub("--zmq", "nonsense")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and err.count("\n") == 1 and "cannot connect" in err


# ----------------------------------------------------------------------------------------------- console
def test_latency_stats_rolling_percentiles():
    stats = LatencyStats(window=100)
    for v in range(1000):               # only the last 100 (900..999) count
        stats.add("inference", float(v))
    stats.add("inference", float("nan"))
    p50, p95 = stats.percentiles("inference")
    assert p50 == pytest.approx(np.percentile(np.arange(900, 1000), 50))
    assert p95 == pytest.approx(np.percentile(np.arange(900, 1000), 95))
    assert all(math.isnan(v) for v in stats.percentiles("pose"))
    stats.add_message(complete(make_message(0)))
    assert stats.summary()["pose"] == {"p50": 18.25, "p95": 18.25, "n": 1}


def test_rate_meter():
    meter = RateMeter(window_s=2.0)
    for i in range(61):
        meter.tick(now=10.0 + i / 30.0)            # 30 Hz for 2 s
    assert meter.rate(now=12.0) == pytest.approx(30.0, rel=0.05)
    assert meter.rate(now=20.0) == 0.0


def test_console_plain_mode_logs_to_stderr_only(capsys):
    message = complete(make_message(0))
    latency = LatencyStats()
    latency.add_message(message)
    console = Console(True, live=False, interval_s=0.0)
    console.update({"in_fps": 29.97, "out_fps": 7.5, "latency": latency.summary(), "dropped_frames": 4}, message)
    console.close()
    out, err = capsys.readouterr()
    assert out == ""
    top = message["topk"][0]
    assert "in 30.0 fps" in err and "dropped 4" in err and f"top {top['label']}" in err and "G 0.25" in err
    legend, line = err.strip().splitlines()           # the gate bar's legend once, then the log line
    assert legend == f"[ia-live] {GATE_LEGEND}"
    assert line == format_plain({"in_fps": 29.97, "out_fps": 7.5, "latency": latency.summary(),
                                 "dropped_frames": 4}, message)
    Console(False).update({"in_fps": 1.0}, message)
    assert capsys.readouterr() == ("", "")


def test_console_live_view_renders():
    from rich.console import Console as RichConsole
    from realtime.console import render_live

    message = complete(make_message(0))
    latency = LatencyStats()
    latency.add_message(message)
    rich = RichConsole(width=120, record=True, file=open(os.devnull, "w"))
    rich.print(render_live({"in_fps": 30.0, "out_fps": 7.5, "latency": latency.summary()}, message))
    text = rich.export_text()
    assert "inference" in text and message["topk"][0]["label"] in text and "appearance 0.25" in text


def test_docs_subscriber_snippet_receives_messages():
    """The 10-line subscriber in docs/messages.md must keep working against the real publisher."""
    import re

    doc = (REPO / "docs" / "messages.md").read_text()
    code = re.search(r"## A 10-line Python subscriber\n\n```python\n(.*?)```", doc, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        code = code.replace("tcp://127.0.0.1:5556", publisher.endpoint).replace("while True:", "for _ in range(2):")
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert publisher.wait_for_subscriber(20.0)
            sent = [check_message(publisher.publish(make_message(i))) for i in range(2)]
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert [line.split()[1] for line in out.splitlines()] == [m["topk"][0]["label"] for m in sent]
