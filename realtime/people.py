"""The `people` of a prediction message: each person of the window's latest pose frame, with a track id.

The pose stage hands the publisher that frame's keypoints in source-frame pixels, in the backend's own
skeleton (`realtime.items.TickDone.keypoints`). Here they become COCO-17 (the one layout messages use, so
a consumer never switches on the backend), each person gets a box and a score (`realtime.messages.
person_entry`) and the tracker (`realtime.tracker`) gives it the id it had in earlier predictions.
"""
from __future__ import annotations

import numpy as np

from core.skeletons import convert_keypoints, get_skeleton, openpose18_to_coco17
from realtime.messages import NUM_KEYPOINTS, person_entry
from realtime.tracker import Tracker

__all__ = ["to_coco17", "PeopleTracker"]


def to_coco17(coords: np.ndarray, scores: np.ndarray, skeleton: str) -> tuple[np.ndarray, np.ndarray]:
    """``(P, J, 2)``, ``(P, J)`` in ``skeleton`` -> ``(P, 17, 2)``, ``(P, 17)`` COCO-17."""
    j = get_skeleton(skeleton).num_joints
    coords = np.asarray(coords, np.float32).reshape(-1, j, 2)
    scores = np.asarray(scores, np.float32).reshape(-1, j)
    if skeleton == "openpose18":
        return openpose18_to_coco17(coords, scores)
    return convert_keypoints(coords, scores, skeleton, "coco17")


class PeopleTracker:
    """Turns one pose frame per prediction into `people` entries with persistent track ids."""

    def __init__(self, tracker: Tracker | None = None) -> None:
        self.tracker = tracker or Tracker()
        self.segment: int | None = None

    def people(self, keypoints: tuple[np.ndarray, np.ndarray, str] | None, segment: int = 0) -> list[dict]:
        """Entries for ``(coords, scores, skeleton)`` (None: nobody), in the estimator's order (best first).

        A new ``segment`` (a gap or reconnect of a live stream) resets the tracks: positions from before
        the jump say nothing about who is who after it.
        """
        if self.segment is not None and segment != self.segment:
            self.tracker.reset()
        self.segment = segment
        if keypoints is None:
            self.tracker.update(np.zeros((0, 4)))
            return []
        coords, scores = to_coco17(*keypoints)
        entries = [person_entry(0, c, s) for c, s in zip(coords.reshape(-1, NUM_KEYPOINTS, 2), scores)]
        ids = self.tracker.update(np.array([e["box"] for e in entries], np.float64).reshape(-1, 4))
        for entry, track_id in zip(entries, ids):
            entry["track_id"] = int(track_id)
        return entries
