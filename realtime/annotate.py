"""Draw what the recognizer saw and decided onto a BGR frame: skeletons, top labels with score bars,
and the appearance/pose gate.

Used by the annotated video writer (`realtime.stages.video`); kept free of I/O so it can also serve a preview
window or a notebook. Everything scales with the frame's short side so that a 340x256 clip and a 1080p
camera both stay legible.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from core.skeletons import get_skeleton

# Per-person colours (BGR), cycled; distinct enough to tell two overlapping people apart.
PERSON_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 200, 255), (255, 128, 0), (80, 220, 80), (220, 80, 220), (60, 60, 255), (255, 255, 0),
)
APPEARANCE_COLOUR = (235, 160, 40)   # blue-ish: the RGB stream
POSE_COLOUR = (60, 180, 255)         # orange: the pose stream
TEXT_COLOUR = (255, 255, 255)
BAR_COLOUR = (80, 200, 80)
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class AnnotateStyle:
    """Drawing knobs; defaults are tuned for 240p-1080p footage."""
    score_threshold: float = 0.2     # joints below this are not drawn (MoveNet's own threshold is ~0.2)
    max_labels: int = 3              # top labels drawn (the message may carry more)
    panel_alpha: float = 0.55        # darkening behind text, so labels stay readable on bright frames


@lru_cache(maxsize=None)
def skeleton_bones(skeleton: str) -> tuple[tuple[int, int], ...]:
    """Limb pairs of a named layout from `core.skeletons`, the one place layouts are defined.

    An unknown layout draws joints only rather than failing the video writer.
    """
    try:
        layout = get_skeleton(skeleton)
    except ValueError:
        return ()
    return tuple((int(a), int(b)) for a, b in layout.bones)


def _scale(frame: np.ndarray) -> float:
    return max(0.5, min(frame.shape[0], frame.shape[1]) / 360.0)


def _thickness(scale: float, base: float = 2.0) -> int:
    return max(1, int(round(base * scale)))


def _panel(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: float) -> None:
    """Darken a rectangle in place (clipped to the frame)."""
    h, w = frame.shape[:2]
    x0, x1 = max(0, x0), min(w, x1)
    y0, y1 = max(0, y0), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    roi = frame[y0:y1, x0:x1]
    roi[...] = (roi.astype(np.float32) * (1.0 - alpha)).astype(np.uint8)


def _fit_text(text: str, max_width: int, font_scale: float, thickness: int) -> str:
    """Shorten text with an ellipsis until it fits max_width pixels."""
    if cv2.getTextSize(text, FONT, font_scale, thickness)[0][0] <= max_width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + "..", FONT, font_scale, thickness)[0][0] > max_width:
        text = text[:-1]
    return text + ".."


def draw_skeletons(frame: np.ndarray, coords: np.ndarray, scores: np.ndarray, skeleton: str,
                   style: AnnotateStyle = AnnotateStyle()) -> np.ndarray:
    """Draw limbs (thick) and joints of every person, in place; coords (P, J, 2) in frame pixels."""
    coords = np.asarray(coords, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if coords.size == 0:
        return frame
    if coords.ndim != 3 or coords.shape[-1] != 2 or scores.shape != coords.shape[:2]:
        raise ValueError(f"keypoints must be coords (P, J, 2) and scores (P, J), got {coords.shape} and {scores.shape}")
    scale = _scale(frame)
    limb_t = _thickness(scale, 2.5)
    radius = _thickness(scale, 3.0)
    bones = skeleton_bones(skeleton)
    for p in range(coords.shape[0]):
        colour = PERSON_COLOURS[p % len(PERSON_COLOURS)]
        visible = np.isfinite(coords[p]).all(axis=1) & (scores[p] >= style.score_threshold)
        points = np.round(np.nan_to_num(coords[p])).astype(np.int32)
        for a, b in bones:
            if a < len(visible) and b < len(visible) and visible[a] and visible[b]:
                cv2.line(frame, tuple(map(int, points[a])), tuple(map(int, points[b])), colour, limb_t, cv2.LINE_AA)
        for j in np.flatnonzero(visible):
            cv2.circle(frame, tuple(map(int, points[j])), radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(frame, tuple(map(int, points[j])), radius, colour, max(1, radius // 2), cv2.LINE_AA)
    return frame


def draw_labels(frame: np.ndarray, topk: Sequence[Mapping], style: AnnotateStyle = AnnotateStyle()) -> np.ndarray:
    """Top labels with score bars in the top-left corner, in place."""
    entries = list(topk)[: style.max_labels]
    if not entries:
        return frame
    h, w = frame.shape[:2]
    scale = _scale(frame)
    font_scale = 0.45 * scale
    text_t = _thickness(scale, 1.0)
    line_h = int(22 * scale)
    pad = int(6 * scale)
    panel_w = int(min(w - 2 * pad, max(160 * scale, w * 0.45)))
    bar_h = max(2, int(5 * scale))
    _panel(frame, pad, pad, pad + panel_w, pad + len(entries) * (line_h + bar_h) + pad, style.panel_alpha)
    y = pad
    for entry in entries:
        score = float(entry.get("score", 0.0))
        text = _fit_text(f"{score:.2f} {entry.get('label', '?')}", panel_w - 2 * pad, font_scale, text_t)
        y += line_h
        cv2.putText(frame, text, (2 * pad, y - int(6 * scale)), FONT, font_scale, TEXT_COLOUR, text_t, cv2.LINE_AA)
        bar_w = int(round((panel_w - 2 * pad) * min(max(score, 0.0), 1.0)))
        cv2.rectangle(frame, (2 * pad, y - int(3 * scale)), (2 * pad + max(bar_w, 1), y - int(3 * scale) + bar_h),
                      BAR_COLOUR, -1)
        y += bar_h
    return frame


def draw_gate(frame: np.ndarray, appearance_weight: float | None,
              style: AnnotateStyle = AnnotateStyle()) -> np.ndarray:
    """The gate G as a bar along the bottom: appearance share from the left, pose share to the right.

    G is the mean appearance weight (0 = pose only, 1 = appearance only); seeing it move is the point
    of IntegralAction (pose takes over when the appearance is out of context).
    """
    h, w = frame.shape[:2]
    scale = _scale(frame)
    pad = int(6 * scale)
    bar_h = max(4, int(8 * scale))
    font_scale = 0.4 * scale
    text_t = _thickness(scale, 1.0)
    text_h = int(16 * scale)
    y1 = h - pad
    y0 = y1 - bar_h
    x0, x1 = pad, w - pad
    _panel(frame, 0, y0 - text_h - pad, w, h, style.panel_alpha)
    if appearance_weight is None or not np.isfinite(appearance_weight):
        cv2.putText(frame, "appearance <-> pose: no gate", (x0, y0 - pad), FONT, font_scale, TEXT_COLOUR, text_t,
                    cv2.LINE_AA)
        return frame
    g = float(min(max(appearance_weight, 0.0), 1.0))
    split = x0 + int(round((x1 - x0) * g))
    cv2.rectangle(frame, (x0, y0), (x1, y1), POSE_COLOUR, -1)
    if split > x0:
        cv2.rectangle(frame, (x0, y0), (split, y1), APPEARANCE_COLOUR, -1)
    cv2.line(frame, (split, y0 - int(3 * scale)), (split, y1 + int(2 * scale)), TEXT_COLOUR, _thickness(scale, 1.5))
    left = f"appearance {g:.2f}"
    right = f"pose {1.0 - g:.2f}"
    cv2.putText(frame, left, (x0, y0 - pad), FONT, font_scale, TEXT_COLOUR, text_t, cv2.LINE_AA)
    right_w = cv2.getTextSize(right, FONT, font_scale, text_t)[0][0]
    cv2.putText(frame, right, (x1 - right_w, y0 - pad), FONT, font_scale, TEXT_COLOUR, text_t, cv2.LINE_AA)
    return frame


def draw_status(frame: np.ndarray, message: Mapping) -> np.ndarray:
    """Frame index, persons and end-to-end latency in the top-right corner, in place."""
    h, w = frame.shape[:2]
    scale = _scale(frame)
    font_scale = 0.4 * scale
    text_t = _thickness(scale, 1.0)
    latency = (message.get("latency_ms") or {}).get("capture_to_publish")
    persons = message.get("persons", 0)
    persons = len(persons) if isinstance(persons, (list, tuple)) else persons   # a count or per-person entries
    parts = [f"#{message.get('frame_index', '?')}", f"{persons}p"]
    if isinstance(latency, (int, float)):
        parts.append(f"{latency:.0f}ms")
    text = "  ".join(parts)
    (tw, th), _ = cv2.getTextSize(text, FONT, font_scale, text_t)
    pad = int(6 * scale)
    _panel(frame, w - tw - 3 * pad, pad, w - pad, pad + th + 2 * pad, 0.55)
    cv2.putText(frame, text, (w - tw - 2 * pad, pad + th + pad), FONT, font_scale, TEXT_COLOUR, text_t, cv2.LINE_AA)
    return frame


def annotate_frame(frame_bgr: np.ndarray, message: Mapping | None,
                   keypoints: tuple[np.ndarray, np.ndarray, str] | None = None,
                   style: AnnotateStyle = AnnotateStyle()) -> np.ndarray:
    """A new annotated copy of a BGR uint8 frame (the input is left untouched)."""
    frame = np.asarray(frame_bgr)
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be BGR uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    out = np.ascontiguousarray(frame).copy()
    if keypoints is not None:
        coords, scores, skeleton = keypoints
        draw_skeletons(out, coords, scores, skeleton, style)
    if message is not None:
        draw_labels(out, message.get("topk") or [], style)
        draw_status(out, message)
        draw_gate(out, message.get("appearance_weight"), style)
    return out
