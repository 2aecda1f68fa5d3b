"""Messages for integrators (schema ia-live/4): per-person entries with track ids, heartbeat and end
messages, `--wait-subscribers`, `ia-sub --count` that ends, the JSON Schema in docs/ agreeing with the code
and with docs/messages.md, and `--dump-json` that never leaves half a line (failure 2 of issue 9).

Unit tests drive the real `Publisher` / `JsonlSink` / `ia-sub` with real ZeroMQ sockets on loopback; the
end-to-end tests run `ia-live` as a user does (a subprocess), on a real two-person clip from ../shared.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from conftest import (MESSAGE_SCHEMA, REPO, check_message, children_of, ia_live_cmd, ia_live_env,
                      make_checkpoint, movenet_path, read_messages, segments_of)
from realtime.messages import (END_REASONS, SCHEMA, build_end, build_heartbeat, person_entry, to_json,
                               validate_message)
from realtime.people import PeopleTracker, to_coco17
from realtime.publish import JsonlSink, Publisher, PublishError
from test_live_outputs import make_message

LOOPBACK_ANY = "tcp://127.0.0.1:*"


def sub(endpoint: str, topic: bytes = b"ia.actions") -> tuple[zmq.Context, zmq.Socket]:
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    sock.setsockopt(zmq.SUBSCRIBE, topic)
    return context, sock


def ia_sub(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "realtime.subscribe", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ia_live_env(), cwd=REPO)


def end_message(reason: str = "end_of_file", error: str | None = None) -> dict:
    return build_end(source="test.mp4", reason=reason, error=error, predictions=5, frames=100, dropped_frames=0,
                     dropped_windows=0)


# ----------------------------------------------------------------------------------------------- schema
def test_schema_file_is_valid_and_versioned_with_the_format():
    import jsonschema

    schema = json.loads(MESSAGE_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(SCHEMA.split("/")[1]) and SCHEMA in schema["title"]
    for kind in ("prediction", "heartbeat", "end"):
        assert schema["$defs"][kind]["properties"]["schema"]["const"] == SCHEMA
    assert schema["$defs"]["end"]["properties"]["reason"]["enum"] == list(END_REASONS)


def test_every_message_type_passes_the_schema_and_the_publisher_check():
    message = make_message(4)
    from realtime.messages import stamp_publish

    stamp_publish(message)
    for m in (message, build_heartbeat(source="camera:0", last_seq=None, idle_s=2.0, frames=0),
              build_heartbeat(source="camera:0", last_seq=7, idle_s=2.5, frames=40),
              end_message(), end_message("error", "capture: cannot open camera 0")):
        check_message(json.loads(to_json(m)))


@pytest.mark.parametrize("change,problem,schema_catches", [
    (lambda m: m.update(type="nope"), "type", True),
    (lambda m: m["people"][0].update(track_id=-1), "track_id", True),
    (lambda m: m["people"][0]["keypoints"].pop(), "keypoints", True),
    (lambda m: m["people"][0]["keypoints"][3].__setitem__(2, 1.5), "keypoints", True),
    (lambda m: m["people"][0].update(box=[10, 10, 5]), "box", True),
    (lambda m: m.pop("people"), "people", True),
    # relations between fields are the publisher's check alone (JSON Schema cannot compare values)
    (lambda m: m["people"][0].update(box=[10, 10, 5, 20]), "box", False),
    (lambda m: m["people"].pop(), "people", False),                    # persons says 2
    (lambda m: m["people"][1].update(track_id=m["people"][0]["track_id"]), "repeated", False),
])
def test_bad_people_are_rejected(change, problem, schema_catches):
    """The publisher's check rejects broken people entries, and the schema rejects the structural ones."""
    import jsonschema

    from realtime.messages import stamp_publish

    message = json.loads(to_json(stamp_publish(make_message(1))))
    check_message(message)
    change(message)
    with pytest.raises(ValueError, match=problem):
        validate_message(message)
    schema = json.loads(MESSAGE_SCHEMA.read_text())
    assert bool(list(jsonschema.Draft202012Validator(schema).iter_errors(message))) == schema_catches


def test_end_reason_and_heartbeat_fields_are_checked():
    with pytest.raises(ValueError, match="reason"):
        validate_message({**end_message(), "reason": "done"})
    with pytest.raises(ValueError, match="idle_s"):
        validate_message({**build_heartbeat(source="x", last_seq=1, idle_s=1, frames=1), "idle_s": -1})
    with pytest.raises(ValueError, match="unknown key"):
        validate_message({**end_message(), "seq": 3})


def test_docs_name_every_schema_field():
    """docs/messages.md documents every field the schema names, and names the schema version."""
    schema = json.loads(MESSAGE_SCHEMA.read_text())
    doc = (REPO / "docs" / "messages.md").read_text()
    assert SCHEMA in doc and MESSAGE_SCHEMA.name in doc

    def fields(node: dict, prefix: str = "") -> set[str]:
        out = set()
        for name, sub_schema in node.get("properties", {}).items():
            out.add(prefix + name)
            items = sub_schema.get("items")
            if "$ref" in (items or {}):
                out |= fields(schema["$defs"][items["$ref"].split("/")[-1]], f"{prefix}{name}[].")
            elif isinstance(items, dict) and "properties" in items:
                out |= fields(items, f"{prefix}{name}[].")
            elif "properties" in sub_schema:
                out |= fields(sub_schema, f"{prefix}{name}.")
        return out

    names = set()
    for kind in ("prediction", "heartbeat", "end"):
        names |= fields(schema["$defs"][kind])
    # an object is documented through its fields (`latency_ms.capture`, ...)
    missing = sorted(n for n in names if not any(f"`{n}{end}" in doc for end in ("`", ".", "[].")))
    assert not missing, f"docs/messages.md does not document {missing}"


# ----------------------------------------------------------------------------------------------- people
def test_person_entry_box_score_and_non_finite_joints():
    kps = np.stack([np.linspace(10, 170, 17), np.linspace(20, 180, 17)], -1)
    scores = np.full(17, 0.8)
    scores[0] = 0.05                     # below the box threshold: not in the box
    kps[16] = (np.nan, np.nan)           # a joint the estimator could not place
    entry = person_entry(3, kps, scores)
    assert entry["track_id"] == 3
    assert entry["box"] == [20.0, 30.0, 160.0, 170.0]
    assert entry["keypoints"][16] == [0.0, 0.0, 0.0]
    assert entry["score"] == pytest.approx((0.05 + 0.8 * 15) / 17, abs=1e-4)


def test_people_tracker_keeps_ids_and_converts_skeletons():
    """COCO-17 passes through; NTU-25 and OpenPose-18 poses become COCO-17 (the one layout messages use)."""
    tracker = PeopleTracker()
    rng = np.random.default_rng(0)

    def person(cx: float) -> np.ndarray:
        return np.stack([cx + rng.uniform(-20, 20, 17), 100 + rng.uniform(-60, 60, 17)], -1)

    first = tracker.people((np.stack([person(100), person(300)]), np.ones((2, 17)), "coco17"))
    second = tracker.people((np.stack([person(310), person(110)]), np.ones((2, 17)), "coco17"))
    assert [p["track_id"] for p in first] == [0, 1] and [p["track_id"] for p in second] == [1, 0]
    # a new segment (a gap in a live stream) starts new tracks
    third = tracker.people((np.stack([person(110)]), np.ones((1, 17)), "coco17"), segment=1)
    assert [p["track_id"] for p in third] == [2]
    assert tracker.people(None, segment=1) == []
    op = np.arange(18 * 2, dtype=np.float32).reshape(1, 18, 2)
    coords, scores = to_coco17(op, np.ones((1, 18)), "openpose18")
    assert coords.shape == (1, 17, 2) and coords[0, 0].tolist() == op[0, 0].tolist()   # the nose stays the nose
    coords, _ = to_coco17(np.zeros((2, 25, 2)), np.ones((2, 25)), "ntu25")
    assert coords.shape == (2, 17, 2)


# ----------------------------------------------------------------------------------------------- publisher
def test_heartbeat_goes_to_zeromq_only_and_end_to_both(tmp_path):
    jsonl = tmp_path / "out.jsonl"
    publisher = Publisher(LOOPBACK_ANY, "ia.actions", jsonl=str(jsonl))
    context, sock = sub(publisher.endpoint)
    try:
        assert publisher.wait_for_subscriber(10.0)
        publisher.publish(make_message(0))
        publisher.publish(build_heartbeat(source="test.mp4", last_seq=0, idle_s=2.0, frames=10))
        publisher.publish(end_message())
        received = []
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            if sock.poll(100, zmq.POLLIN):
                received.append(check_message(sock.recv_multipart()[1]))
    finally:
        publisher.close()
        sock.close()
        context.term()
    assert [m["type"] for m in received] == ["prediction", "heartbeat", "end"]
    in_file = read_messages(jsonl, types=None)
    assert [m["type"] for m in in_file] == ["prediction", "end"]
    assert publisher.stats.published == 1          # predictions only


def test_wait_for_subscribers_counts_each_subscriber():
    """XPUB_VERBOSER: two subscribers to the same topic are two, a subscriber that leaves is gone, and a
    subscriber to another topic does not count."""
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        c1, s1 = sub(publisher.endpoint)
        c3, s3 = sub(publisher.endpoint, topic=b"other")
        try:
            assert publisher.wait_for_subscriber(10.0, count=1)
            assert not publisher.wait_for_subscriber(0.3, count=2)
            c2, s2 = sub(publisher.endpoint)
            assert publisher.wait_for_subscriber(10.0, count=2)
            s2.close()
            c2.term()
            deadline = time.monotonic() + 10
            while publisher.subscribers != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert publisher.subscribers == 1
        finally:
            for s, c in ((s1, c1), (s3, c3)):
                s.close()
                c.term()


# ----------------------------------------------------------------------------------------------- ia-sub
@pytest.mark.parametrize("reason,code", [("end_of_file", 0), ("stopped", 0), ("error", 3), ("source_lost", 3)])
def test_ia_sub_ends_with_the_run(reason, code):
    """`ia-sub --count 6` receiving 5 predictions and then the end message exits (it used to hang), with
    status 3 when the run failed; heartbeats neither count nor print."""
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        proc = ia_sub("--zmq", publisher.endpoint, "--count", "6", "--timeout", "30")
        try:
            assert publisher.wait_for_subscriber(20.0), proc.stderr.read() if proc.poll() is not None else ""
            for i in range(5):
                publisher.publish(make_message(i))
                publisher.publish(build_heartbeat(source="test.mp4", last_seq=i, idle_s=2.0, frames=i))
            publisher.publish(end_message(reason, "capture: camera 0 lost" if code else None))
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == code, err
    lines = out.splitlines()
    assert len(lines) == 6 and all(line.startswith(f"#{i} ") for i, line in enumerate(lines[:5]))
    assert lines[5].startswith(f"end of test.mp4 ({reason}") and "5 predictions" in lines[5]


def test_ia_sub_count_counts_predictions_not_heartbeats():
    with Publisher(LOOPBACK_ANY, "ia.actions") as publisher:
        proc = ia_sub("--zmq", publisher.endpoint, "--count", "2", "--dump-json", "--timeout", "30")
        try:
            assert publisher.wait_for_subscriber(20.0)
            sent = []
            for i in range(4):
                sent.append(publisher.publish(build_heartbeat(source="t", last_seq=None, idle_s=2, frames=0)))
                sent.append(publisher.publish(make_message(i)))
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines() == sent[:4]          # --json prints every message, raw; stops at the 2nd prediction


# ----------------------------------------------------------------------------------------------- --dump-json
_FILL_SCRIPT = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)          # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
from realtime.publish import JsonlSink, PublishError
sink = JsonlSink(sys.argv[1])
try:
    for i in range(100000):
        sink.write('{"line":%d,"pad":"%s"}' % (i, "x" * (i % 97)))
except PublishError as exc:
    print(exc)
    sys.exit(1)
finally:
    sink.close()
"""


@pytest.mark.parametrize("limit", [10_000, 65_537])
def test_jsonl_file_that_fills_up_keeps_whole_lines(tmp_path, limit):
    """A disk that fills mid-run (here: RLIMIT_FSIZE in a child process, the same EFBIG/short-write path as
    ENOSPC on a real file system): the file is cut back to its last complete line and the error names it."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-c", _FILL_SCRIPT, str(out), str(limit)], capture_output=True,
                          text=True, env=ia_live_env(), cwd=REPO, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.strip() == f"--dump-json {out}: File too large"
    data = out.read_bytes()
    assert 0 < len(data) <= limit and data.endswith(b"\n"), "a half-written line was left"
    lines = data.decode().splitlines()
    assert [json.loads(line)["line"] for line in lines] == list(range(len(lines)))


def test_jsonl_dev_full_names_the_output():
    sink = JsonlSink("/dev/full")
    with pytest.raises(PublishError, match=r"^--dump-json /dev/full: No space left on device$"):
        sink.write('{"a":1}')
    sink.close()


# ----------------------------------------------------------------------------------------------- ia-live, end to end
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "fast.pt")


def _live_args(video: Path, checkpoint: Path, *extra: str) -> list[str]:
    return ["--video", str(video), "--checkpoint", str(checkpoint), "--pose-model", str(movenet_path()),
            "--quiet", "--threads", "1", "--engine", "torch", *extra]


def test_dump_json_to_dev_full_fails_with_one_line(shared, checkpoint):
    video = shared("data", "videos", "mmaction2_basketball_shooting.mp4")
    proc = subprocess.run(ia_live_cmd(_live_args(video, checkpoint, "--no-zmq", "--max-frames", "90",
                                                 "--dump-json", "/dev/full")),
                          cwd=REPO, env=ia_live_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(lines) == 1, proc.stderr
    assert lines[0].startswith("ia-live: error:") and "--dump-json /dev/full: No space left on device" in lines[0]


def test_two_people_tracked_heartbeats_end_and_subscribers(shared, checkpoint, tmp_path):
    """One run on a real two-person clip (426x240), as an integrator would consume it:

    * `--wait-subscribers 2`: two `ia-sub` processes started first, both get the first prediction;
    * `ia-sub --count 3` ends after 3 predictions; `ia-sub --json` (no count) ends with the end message;
    * every prediction has `people` in source-frame pixels with track ids that persist across windows;
    * the pose worker is paused for 1.5 s mid-run: heartbeats (`--heartbeat 0.3`) reach ZeroMQ, not the file;
    * the file and ZeroMQ end with the same `end` message (end_of_file, counts).
    """
    video = shared("data", "videos", "mmaction2_basketball_shooting.mp4")
    port_probe = Publisher(LOOPBACK_ANY, "ia.actions")
    endpoint = port_probe.endpoint
    port_probe.close()
    counted = ia_sub("--zmq", endpoint, "--count", "3", "--timeout", "300")
    raw = ia_sub("--zmq", endpoint, "--dump-json", "--timeout", "300")
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(ia_live_cmd(_live_args(video, checkpoint, "--zmq", endpoint, "--dump-json", str(out),
                                                   "--heartbeat", "0.3",
                                                   "--wait-subscribers", "2", "--wait-timeout", "120")),
                            cwd=REPO, env=ia_live_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n") >= 1):
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        pose = children_of(proc.pid)["ia-live:pose0"]
        os.kill(pose, signal.SIGSTOP)
        time.sleep(1.5)
        os.kill(pose, signal.SIGCONT)
        proc.wait(timeout=240)
        counted_out, counted_err = counted.communicate(timeout=30)
        raw_out, raw_err = raw.communicate(timeout=30)
    finally:
        for p in (proc, counted, raw):
            if p.poll() is None:
                p.kill()
                p.wait()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert segments_of(proc.pid) == []

    in_file = read_messages(out, types=None)
    predictions = [m for m in in_file if m["type"] == "prediction"]
    assert [m["type"] for m in in_file[:-1]] == ["prediction"] * (len(in_file) - 1), "a heartbeat in the file"
    end = in_file[-1]
    assert end["type"] == "end" and end["reason"] == "end_of_file" and end["error"] is None
    assert end["predictions"] == len(predictions) > 5 and end["frames"] == 300

    # ia-sub --count 3: three human lines, exit 0
    assert counted.returncode == 0, counted_err
    assert len(counted_out.splitlines()) == 3
    # ia-sub --json: everything ZeroMQ carried, from the very first prediction (--wait-subscribers), to the end
    assert raw.returncode == 0, raw_err
    on_zmq = [check_message(line) for line in raw_out.splitlines()]
    assert [m for m in on_zmq if m["type"] != "heartbeat"] == in_file
    beats = [m for m in on_zmq if m["type"] == "heartbeat"]
    assert beats and all(b["idle_s"] >= 0.3 for b in beats), "no heartbeat while the pose worker was paused"

    # people: source-frame pixels, ids that persist across windows
    assert max(m["persons"] for m in predictions) >= 2, "MoveNet found fewer than 2 people in a 2-person clip"
    width, height = 426, 240
    for m in predictions:
        for p in m["people"]:
            x0, y0, x1, y1 = p["box"]
            assert -1 <= x0 <= x1 <= width + 1 and -1 <= y0 <= y1 <= height + 1, p["box"]
            assert all(-1 <= x <= width + 1 and -1 <= y <= height + 1 for x, y, s in p["keypoints"] if s >= 0.3)
    with_people = [m for m in predictions if m["people"]]
    counts: dict[int, int] = {}
    for m in with_people:
        for p in m["people"]:
            counts[p["track_id"]] = counts.get(p["track_id"], 0) + 1
    top_two = sorted(counts.values(), reverse=True)[:2]
    assert top_two[0] >= 0.6 * len(with_people), f"no track id persists: {counts}"
    assert len(top_two) == 2 and top_two[1] >= 0.3 * len(with_people), f"the second person is not tracked: {counts}"


def test_wait_subscribers_timeout_and_usage(shared, checkpoint):
    """Nobody subscribes within --wait-timeout: one line naming the flag, exit 1, nothing left behind; and
    --wait-subscribers without ZeroMQ is a usage error."""
    video = shared("data", "videos", "mmaction2_basketball_shooting.mp4")
    probe = Publisher(LOOPBACK_ANY, "ia.actions")
    endpoint = probe.endpoint
    probe.close()
    proc = subprocess.Popen(ia_live_cmd(_live_args(video, checkpoint, "--zmq", endpoint, "--wait-subscribers", "1",
                                                   "--wait-timeout", "1")),
                            cwd=REPO, env=ia_live_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert err.strip() == (f"ia-live: error: publisher: --wait-subscribers 1: 0 of 1 subscriber(s) on {endpoint} "
                           f"after --wait-timeout 1 s"), err
    assert segments_of(proc.pid) == []
    proc = subprocess.run(ia_live_cmd(_live_args(video, checkpoint, "--no-zmq", "--wait-subscribers", "1")),
                          cwd=REPO, env=ia_live_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip() == "ia-live: error: --wait-subscribers needs ZeroMQ: drop --no-zmq"
