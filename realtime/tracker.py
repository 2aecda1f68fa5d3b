"""Track ids for the people of successive predictions: a small IoU / centre-distance tracker.

Why: an integrator wants "person 3 is waving", not "somebody in this frame is": the id must survive from
one prediction to the next while people move, cross and leave. The publisher sees one pose frame per
prediction (the window's last), a few per second, so people move a fair way between updates; each track
therefore predicts its box with its last velocity, and detections are matched to the predictions with the
Hungarian algorithm (`scipy.optimize.linear_sum_assignment`) on a cost that prefers overlap (1 - IoU) and
falls back to the centre distance, relative to the box size, for boxes that no longer overlap. A track
not matched for more than `max_age` updates is forgotten; its id is never reused.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["Track", "Tracker", "iou_matrix"]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a (N, 4)`` with every box of ``b (M, 4)``, boxes x0 y0 x1 y1."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=-1)


def _scales(boxes: np.ndarray, min_scale: float) -> np.ndarray:
    """A box's size for distance gating: the diagonal, never below ``min_scale`` (a single keypoint)."""
    return np.maximum(np.hypot(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), min_scale)


@dataclass
class Track:
    """One person's track: its id, last box, per-update velocity of the box and updates since last seen."""

    id: int
    box: np.ndarray
    velocity: np.ndarray
    missed: int = 0
    hits: int = 1

    def predicted(self) -> np.ndarray:
        """Where the box should be now, moving on at its last velocity for every update since it was seen."""
        return self.box + self.velocity * (self.missed + 1)


class Tracker:
    """Assign persistent ids to per-frame person boxes (call `update` once per prediction, in order)."""

    def __init__(self, max_age: int = 5, min_iou: float = 0.05, max_distance: float = 1.0,
                 min_scale: float = 8.0) -> None:
        """``max_distance``: the farthest a detection's centre may lie from a track's predicted centre, in
        units of the larger box diagonal, for a match without overlap. ``max_age``: updates a lost track is
        kept for (a person hidden for a moment keeps their id)."""
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.max_age = int(max_age)
        self.min_iou = float(min_iou)
        self.max_distance = float(max_distance)
        self.min_scale = float(min_scale)
        self.tracks: list[Track] = []
        self._next_id = 0

    def _cost(self, predicted: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cost matrix (tracks x detections) and which pairs may match at all."""
        iou = iou_matrix(predicted, boxes)
        dist = np.linalg.norm(_centres(predicted)[:, None, :] - _centres(boxes)[None, :, :], axis=-1)
        scale = np.maximum(_scales(predicted, self.min_scale)[:, None], _scales(boxes, self.min_scale)[None, :])
        rel = dist / scale
        allowed = (iou >= self.min_iou) | (rel <= self.max_distance)
        # overlap first (cost in [0, 1)); without overlap the distance decides (cost in [1, 2])
        cost = np.where(iou >= self.min_iou, 1.0 - iou, 1.0 + np.minimum(rel, 1.0))
        return cost, allowed

    def update(self, boxes: np.ndarray) -> list[int]:
        """Match this frame's boxes ``(N, 4)`` (x0 y0 x1 y1) to the tracks; returns their ids, in input order."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        ids = [-1] * len(boxes)
        matched_tracks: set[int] = set()
        if self.tracks and len(boxes):
            predicted = np.stack([t.predicted() for t in self.tracks])
            cost, allowed = self._cost(predicted, boxes)
            rows, cols = linear_sum_assignment(np.where(allowed, cost, 1e6))
            for r, c in zip(rows, cols):
                if not allowed[r, c]:
                    continue
                track = self.tracks[r]
                track.velocity = (boxes[c] - track.box) / (track.missed + 1)
                track.box = boxes[c].copy()
                track.missed = 0
                track.hits += 1
                ids[c] = track.id
                matched_tracks.add(r)
        for r, track in enumerate(self.tracks):
            if r not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_age]
        for c, box in enumerate(boxes):
            if ids[c] < 0:
                track = Track(id=self._next_id, box=box.copy(), velocity=np.zeros(4))
                self._next_id += 1
                self.tracks.append(track)
                ids[c] = track.id
        return ids

    def reset(self) -> None:
        """Forget every track (a new segment of a live stream: positions before the jump mean nothing);
        ids keep counting up, so an old id is never given to a new person."""
        self.tracks = []
