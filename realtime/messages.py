"""The messages `ia-live` publishes: one schema, built, checked and serialised in one place.

Three message types share the schema version and a top-level ``type``: ``prediction`` (one per averaged
window, with the per-person entries of the window's latest pose frame), ``heartbeat`` (ZeroMQ only, when
nothing was published for a while, so a subscriber can tell "nobody in view" from "ia-live died") and
``end`` (the last message of a run, with the reason and counts, so a subscriber never waits forever).
The machine-readable contract is `docs/messages.schema.json`; `validate_message` here is the publisher's
fast, strict check of the same rules.

Every output (ZeroMQ, JSON Lines, the console, the annotated video, `ia-sub`) consumes the same dict, so
a consumer can rely on one documented shape (`docs/messages.md`). Serialisation is canonical (fixed key
order, compact separators, no NaN) so that the bytes on the ZeroMQ socket and the line in the JSON Lines
file are identical and comparable in tests.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "ia-live/4"

#: The message types (``type`` field).
TYPES: tuple[str, ...] = ("prediction", "heartbeat", "end")
#: Why a run ended (``reason`` of an ``end`` message).
END_REASONS: tuple[str, ...] = ("end_of_file", "end_of_stream", "stopped", "source_lost", "error")

#: Top-level keys of a prediction, in the order `to_json` writes them.
KEYS: tuple[str, ...] = (
    "schema", "type", "seq", "source", "frame_index", "timestamp", "wall_time", "action", "action_score", "topk",
    "appearance_weight",
    "persons", "people", "window", "latency_ms", "dropped_frames", "dropped_windows", "gaps", "reconnects", "engine", "model",
)
TOPK_KEYS: tuple[str, ...] = ("label", "index", "score")
#: Keys of one `people` entry.
PERSON_KEYS: tuple[str, ...] = ("track_id", "box", "score", "keypoints")
#: Joints per person in `people[].keypoints` (COCO-17 order, whatever skeleton the pose backend produces).
NUM_KEYPOINTS = 17
#: Keys of a heartbeat and of an end message, in the order `to_json` writes them.
HEARTBEAT_KEYS: tuple[str, ...] = ("schema", "type", "source", "wall_time", "last_seq", "idle_s", "frames")
END_KEYS: tuple[str, ...] = ("schema", "type", "source", "wall_time", "reason", "error", "predictions", "frames",
                             "dropped_frames", "dropped_windows")
_KEYS_OF = {"prediction": KEYS, "heartbeat": HEARTBEAT_KEYS, "end": END_KEYS}
#: Latency stages, in pipeline order; `capture_to_publish` is the end-to-end total.
LATENCY_KEYS: tuple[str, ...] = ("capture_to_publish", "capture", "pose", "assemble", "inference", "publish")
#: Stages the publisher may fill at send time when the pipeline leaves them as None.
PUBLISH_STAGES: tuple[str, ...] = ("capture_to_publish", "publish")

_SCORE_DIGITS = 6      # probabilities: 1e-6 is far below any meaningful difference
_MS_DIGITS = 3         # latencies in ms: microsecond resolution
_TIME_DIGITS = 6       # seconds: microsecond resolution
_PIXEL_DIGITS = 2      # keypoints and boxes in source pixels: 1/100 px is below any estimator's precision
_KP_SCORE_DIGITS = 4   # keypoint and person scores: 17 x 3 numbers per person, keep the line short


def _is_int(value: Any) -> bool:
    if type(value) is int:          # fast path: validation runs for every published message
        return True
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    if type(value) is float or type(value) is int:
        return True
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _round(value: float, digits: int) -> float:
    return round(float(value), digits)


def topk_from_probs(probs: np.ndarray | Sequence[float], class_names: Sequence[str], k: int = 5) -> list[dict]:
    """The `topk` list from a probability vector: highest first, ties broken by the lower class index."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(class_names) != p.shape[0]:
        raise ValueError(f"topk_from_probs: {p.shape[0]} probabilities but {len(class_names)} class names")
    k = max(1, min(int(k), p.shape[0]))
    order = np.lexsort((np.arange(p.shape[0]), -p))[:k]   # stable: score desc, then index asc
    return [{"label": str(class_names[i]), "index": int(i), "score": float(p[i])} for i in order]


def _normalise_topk(topk: Any) -> list[dict]:
    out = []
    for entry in topk:
        if isinstance(entry, Mapping):
            label, index, score = entry.get("label"), entry.get("index"), entry.get("score")
        else:
            label, index, score = entry
        out.append({
            "label": str(label),
            "index": int(index) if _is_int(index) else index,
            "score": _round(score, _SCORE_DIGITS) if _is_number(score) else score,
        })
    return out


def _normalise_latency(latency_ms: Mapping[str, Any] | None) -> dict:
    latency_ms = dict(latency_ms or {})
    out = {}
    for key in LATENCY_KEYS:
        value = latency_ms.pop(key, None)
        out[key] = _round(value, _MS_DIGITS) if _is_number(value) else value
    out.update(latency_ms)          # unknown keys are kept so that validation can name them
    return out


def build_message(
    *,
    seq: int,
    source: str,
    frame_index: int,
    timestamp: float,
    topk: Sequence[Mapping[str, Any]] | Sequence[tuple],
    action: str,
    action_score: float,
    appearance_weight: float | None,
    persons: int,
    window: Mapping[str, Any] | Sequence[int],
    latency_ms: Mapping[str, float | None],
    dropped_frames: int,
    engine: str,
    model: str,
    wall_time: float | None = None,
    dropped_windows: int = 0,
    gaps: int = 0,
    reconnects: int = 0,
    people: Sequence[Mapping[str, Any]] = (),
) -> dict:
    """Build a message in canonical form (Python scalars, rounded floats, fixed key order).

    Accepts what the pipeline naturally has: numpy scalars, `topk` as (label, index, score) tuples,
    `window` as a plain list of frame indices, a NaN gate (variants without a gate) meaning null, and
    `latency_ms` with `capture_to_publish`/`publish` missing, for the publisher to fill at send time
    (`stamp_publish`). `wall_time` is the unix time the window's last frame was captured; it defaults
    to now. `people` are `person_entry` dicts (or anything with the same keys). The result is not validated here (a partially filled message is legal until publish);
    `validate_message` is the check.
    """
    if appearance_weight is not None and _is_number(appearance_weight):
        appearance_weight = None if math.isnan(float(appearance_weight)) else _round(appearance_weight, _SCORE_DIGITS)
    if isinstance(window, Mapping):
        frames = window.get("frames", [])
    else:
        frames = window
    if isinstance(frames, np.ndarray):
        frames = frames.reshape(-1).tolist()
    frames = [int(f) if _is_int(f) else f for f in frames]
    message = {
        "schema": SCHEMA,
        "type": "prediction",
        "seq": int(seq) if _is_int(seq) else seq,
        "source": source,
        "frame_index": int(frame_index) if _is_int(frame_index) else frame_index,
        "timestamp": _round(timestamp, _TIME_DIGITS) if _is_number(timestamp) else timestamp,
        "wall_time": _round(time.time() if wall_time is None else wall_time, _TIME_DIGITS)
        if (wall_time is None or _is_number(wall_time)) else wall_time,
        "action": str(action),
        "action_score": _round(action_score, _SCORE_DIGITS) if _is_number(action_score) else action_score,
        "topk": _normalise_topk(topk),
        "appearance_weight": appearance_weight,
        "persons": int(persons) if _is_int(persons) else persons,
        "people": [dict(p) for p in people],
        "window": {"frames": frames},
        "latency_ms": _normalise_latency(latency_ms),
        "dropped_frames": int(dropped_frames) if _is_int(dropped_frames) else dropped_frames,
        "dropped_windows": int(dropped_windows) if _is_int(dropped_windows) else dropped_windows,
        "gaps": int(gaps) if _is_int(gaps) else gaps,
        "reconnects": int(reconnects) if _is_int(reconnects) else reconnects,
        "engine": engine,
        "model": model,
    }
    return message


def person_entry(track_id: int, keypoints: np.ndarray, scores: np.ndarray, score: float | None = None,
                 box: Sequence[float] | None = None, box_score_thr: float = 0.1) -> dict:
    """One `people` entry from COCO-17 keypoints ``(17, 2)`` and scores ``(17,)`` in source-frame pixels.

    `box` defaults to the extent of the joints scoring at least `box_score_thr` (all joints when none does:
    the estimator still placed them), `score` to the mean joint score. Non-finite joints become (0, 0) with
    score 0, so the message stays JSON.
    """
    kp = np.asarray(keypoints, np.float64).reshape(NUM_KEYPOINTS, 2)
    sc = np.asarray(scores, np.float64).reshape(NUM_KEYPOINTS)
    bad = ~(np.isfinite(kp).all(-1) & np.isfinite(sc))
    kp, sc = np.where(bad[:, None], 0.0, kp), np.clip(np.where(bad, 0.0, sc), 0.0, 1.0)
    if box is None:
        ok = (sc >= box_score_thr) & ~bad
        pts = kp[ok] if ok.any() else kp[~bad] if (~bad).any() else np.zeros((1, 2))
        box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
    score = float(sc.mean()) if score is None or not math.isfinite(float(score)) else float(score)
    return {
        "track_id": int(track_id),
        "box": [_round(v, _PIXEL_DIGITS) for v in box],
        "score": _round(min(1.0, max(0.0, score)), _KP_SCORE_DIGITS),
        "keypoints": [[_round(x, _PIXEL_DIGITS), _round(y, _PIXEL_DIGITS), _round(s, _KP_SCORE_DIGITS)]
                      for (x, y), s in zip(kp, sc)],
    }


def build_heartbeat(*, source: str, last_seq: int | None, idle_s: float, frames: int,
                    wall_time: float | None = None) -> dict:
    """A heartbeat: nothing was published for `idle_s` seconds, but the run is alive (`last_seq` is the
    last prediction's seq, None before the first)."""
    return {"schema": SCHEMA, "type": "heartbeat", "source": source,
            "wall_time": _round(time.time() if wall_time is None else wall_time, _TIME_DIGITS),
            "last_seq": None if last_seq is None else int(last_seq), "idle_s": _round(idle_s, _MS_DIGITS),
            "frames": int(frames)}


def build_end(*, source: str, reason: str, predictions: int, frames: int, dropped_frames: int,
              dropped_windows: int, error: str | None = None, wall_time: float | None = None) -> dict:
    """The last message of a run: why it ended (`END_REASONS`), the error text when it failed, and counts."""
    return {"schema": SCHEMA, "type": "end", "source": source,
            "wall_time": _round(time.time() if wall_time is None else wall_time, _TIME_DIGITS),
            "reason": reason, "error": error, "predictions": int(predictions), "frames": int(frames),
            "dropped_frames": int(dropped_frames), "dropped_windows": int(dropped_windows)}


def stamp_publish(message: dict, now: float | None = None) -> dict:
    """Fill the publish-time latencies the pipeline left as None, in place; returns the message.

    `capture_to_publish` is now minus `wall_time` (capture of the window's last frame); `publish` is the
    remainder after the measured stages (queue transit to the publisher and serialisation), so that the
    stages add up to the end-to-end figure. Clocks are `time.time()`, shared by all processes of a host.
    """
    latency = message.setdefault("latency_ms", {})
    now = time.time() if now is None else now
    if latency.get("capture_to_publish") is None and _is_number(message.get("wall_time")):
        latency["capture_to_publish"] = _round(max(0.0, (now - float(message["wall_time"])) * 1000.0), _MS_DIGITS)
    if latency.get("publish") is None and _is_number(latency.get("capture_to_publish")):
        measured = sum(float(latency[k]) for k in ("capture", "pose", "assemble", "inference")
                       if _is_number(latency.get(k)))
        latency["publish"] = _round(max(0.0, float(latency["capture_to_publish"]) - measured), _MS_DIGITS)
    return message


def _fail(problem: str) -> None:
    raise ValueError(f"invalid {SCHEMA} message: {problem}")


def _check_finite(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> None:
    if not _is_number(value):
        _fail(f"{name} must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        _fail(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        _fail(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        _fail(f"{name} must be <= {maximum}, got {value}")


def _check_int(name: str, value: Any, minimum: int = 0) -> None:
    if not _is_int(value):
        _fail(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        _fail(f"{name} must be >= {minimum}, got {value}")


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        _fail(f"{name} must be a non-empty string, got {value!r}")


def _check_keys(name: str, obj: Mapping, expected: Sequence[str]) -> None:
    missing = [k for k in expected if k not in obj]
    if missing:
        _fail(f"{name} is missing {', '.join(missing)}")
    unknown = [k for k in obj if k not in expected]
    if unknown:
        _fail(f"{name} has unknown key(s) {', '.join(map(str, unknown))}")


def message_type(message: Any) -> str | None:
    """The ``type`` of a parsed message (None when it has none): what consumers switch on."""
    return message.get("type") if isinstance(message, Mapping) else None


def validate_message(message: Any) -> None:
    """Raise ValueError naming the first problem; return None for a valid, complete message of any type.

    Strict on purpose (no unknown keys, every latency filled, scores sorted) so that a producer bug shows
    up in the producer's tests rather than as a confused subscriber.
    """
    if not isinstance(message, Mapping):
        _fail(f"expected a JSON object, got {type(message).__name__}")
    kind = message.get("type")
    if kind not in TYPES:
        _fail(f"type must be one of {', '.join(TYPES)}, got {kind!r}")
    _check_keys(f"{kind} message", message, _KEYS_OF[kind])
    if message["schema"] != SCHEMA:
        _fail(f"schema must be {SCHEMA!r}, got {message['schema']!r}")
    _check_str("source", message["source"])
    _check_finite("wall_time", message["wall_time"], minimum=0.0)
    if kind == "heartbeat":
        if message["last_seq"] is not None:
            _check_int("last_seq", message["last_seq"])
        _check_finite("idle_s", message["idle_s"], minimum=0.0)
        _check_int("frames", message["frames"])
        return
    if kind == "end":
        if message["reason"] not in END_REASONS:
            _fail(f"reason must be one of {', '.join(END_REASONS)}, got {message['reason']!r}")
        if message["error"] is not None:
            _check_str("error", message["error"])
        for key in ("predictions", "frames", "dropped_frames", "dropped_windows"):
            _check_int(key, message[key])
        return
    _check_int("seq", message["seq"])
    _check_str("source", message["source"])
    _check_int("frame_index", message["frame_index"])
    _check_finite("timestamp", message["timestamp"], minimum=0.0)
    _check_finite("wall_time", message["wall_time"], minimum=0.0)

    _check_str("action", message["action"])
    _check_finite("action_score", message["action_score"], 0.0, 1.0)
    topk = message["topk"]
    if not isinstance(topk, list) or not topk:
        _fail("topk must be a non-empty list")
    seen = set()
    previous = math.inf
    for i, entry in enumerate(topk):
        if not isinstance(entry, Mapping):
            _fail(f"topk[{i}] must be an object")
        _check_keys(f"topk[{i}]", entry, TOPK_KEYS)
        _check_str(f"topk[{i}].label", entry["label"])
        _check_int(f"topk[{i}].index", entry["index"])
        _check_finite(f"topk[{i}].score", entry["score"], 0.0, 1.0)
        if entry["index"] in seen:
            _fail(f"topk[{i}].index {entry['index']} is repeated")
        seen.add(entry["index"])
        if entry["score"] > previous:
            _fail(f"topk must be sorted by score, highest first (topk[{i}] > topk[{i - 1}])")
        previous = entry["score"]

    if message["appearance_weight"] is not None:
        _check_finite("appearance_weight", message["appearance_weight"], 0.0, 1.0)
    _check_int("persons", message["persons"])
    _validate_people(message["people"], message["persons"])

    window = message["window"]
    if not isinstance(window, Mapping):
        _fail("window must be an object")
    _check_keys("window", window, ("frames",))
    frames = window["frames"]
    if not isinstance(frames, list) or not frames:
        _fail("window.frames must be a non-empty list of frame indices")
    for i, f in enumerate(frames):
        _check_int(f"window.frames[{i}]", f)
        if i and f < frames[i - 1]:
            _fail(f"window.frames must be non-decreasing (window.frames[{i}] < window.frames[{i - 1}])")
    if frames[-1] > message["frame_index"]:
        _fail(f"window.frames ends at {frames[-1]}, after frame_index {message['frame_index']}")

    latency = message["latency_ms"]
    if not isinstance(latency, Mapping):
        _fail("latency_ms must be an object")
    _check_keys("latency_ms", latency, LATENCY_KEYS)
    for key in LATENCY_KEYS:
        _check_finite(f"latency_ms.{key}", latency[key], minimum=0.0)

    for key in ("dropped_frames", "dropped_windows", "gaps", "reconnects"):
        _check_int(key, message[key])
    _check_str("engine", message["engine"])
    _check_str("model", message["model"])


def _validate_people(people: Any, persons: int) -> None:
    if not isinstance(people, list):
        _fail("people must be a list")
    if len(people) != persons:
        _fail(f"people has {len(people)} entries but persons is {persons}")
    ids = set()
    for i, person in enumerate(people):
        if not isinstance(person, Mapping):
            _fail(f"people[{i}] must be an object")
        _check_keys(f"people[{i}]", person, PERSON_KEYS)
        _check_int(f"people[{i}].track_id", person["track_id"])
        if person["track_id"] in ids:
            _fail(f"people[{i}].track_id {person['track_id']} is repeated")
        ids.add(person["track_id"])
        _check_finite(f"people[{i}].score", person["score"], 0.0, 1.0)
        box = person["box"]
        if not isinstance(box, list) or len(box) != 4:
            _fail(f"people[{i}].box must be [x0, y0, x1, y1]")
        for j, v in enumerate(box):
            _check_finite(f"people[{i}].box[{j}]", v)
        if box[2] < box[0] or box[3] < box[1]:
            _fail(f"people[{i}].box must have x0 <= x1 and y0 <= y1, got {box}")
        kps = person["keypoints"]
        if not isinstance(kps, list) or len(kps) != NUM_KEYPOINTS:
            _fail(f"people[{i}].keypoints must be {NUM_KEYPOINTS} [x, y, score] triples (COCO-17)")
        for j, kp in enumerate(kps):
            if not isinstance(kp, list) or len(kp) != 3:
                _fail(f"people[{i}].keypoints[{j}] must be [x, y, score]")
            _check_finite(f"people[{i}].keypoints[{j}][0]", kp[0])
            _check_finite(f"people[{i}].keypoints[{j}][1]", kp[1])
            _check_finite(f"people[{i}].keypoints[{j}][2]", kp[2], 0.0, 1.0)


def _canonical(message: Mapping) -> dict:
    """Copy with keys in schema order (unknown keys last, so a bad message still serialises)."""
    order = _KEYS_OF.get(message.get("type"), KEYS)
    out = {k: message[k] for k in order if k in message}
    out.update({k: v for k, v in message.items() if k not in out})
    if isinstance(out.get("topk"), list):
        out["topk"] = [
            {**{k: e[k] for k in TOPK_KEYS if k in e}, **{k: v for k, v in e.items() if k not in TOPK_KEYS}}
            if isinstance(e, Mapping) else e
            for e in out["topk"]
        ]
    if isinstance(out.get("latency_ms"), Mapping):
        lat = out["latency_ms"]
        out["latency_ms"] = {**{k: lat[k] for k in LATENCY_KEYS if k in lat},
                             **{k: v for k, v in lat.items() if k not in LATENCY_KEYS}}
    return out


def to_json(message: Mapping) -> str:
    """One compact line, keys in schema order; the same message always gives the same string.

    NaN/inf are refused (they are not JSON); non-ASCII labels are written as UTF-8, not escaped.
    """
    try:
        return json.dumps(_canonical(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"message cannot be serialised: {exc}") from None


def from_json(data: str | bytes) -> dict:
    """Parse and validate one serialised message (what a subscriber does)."""
    try:
        message = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JSON message: {exc}") from None
    validate_message(message)
    return message


def read_jsonl(path: str | Path, types: Sequence[str] | None = ("prediction",)) -> list[dict]:
    """The messages of an `ia-live --dump-json` file, parsed, of the given `types` (None: all, in order).

    Readers of these files (the benchmarks, evaluation tools) want the predictions; the file also ends
    with an `end` message, which this skips unless asked for.
    """
    messages = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    return messages if types is None else [m for m in messages if m.get("type") in types]
