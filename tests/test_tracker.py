"""The people tracker (`realtime.tracker`): ids persist while people move, cross, vanish briefly and leave;
new people get new ids, never a reused one."""
from __future__ import annotations

import numpy as np
import pytest

from realtime.tracker import Tracker, iou_matrix


def box(cx: float, cy: float, w: float = 40.0, h: float = 100.0) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    iou = iou_matrix(a, b)
    assert iou.shape == (2, 3)
    assert iou[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0]   # a degenerate box overlaps nothing


def test_two_people_moving_keep_their_ids():
    tracker = Tracker()
    first = tracker.update([box(100, 200), box(400, 200)])
    assert first == [0, 1]
    for step in range(1, 15):   # both walk right, 25 px per update (more than half a box width)
        ids = tracker.update([box(100 + 25 * step, 200), box(400 + 25 * step, 210)])
        assert ids == first
    # the detector's order is not the tracker's: swapped input order, same people
    ids = tracker.update([box(400 + 25 * 15, 210), box(100 + 25 * 15, 200)])
    assert ids == [1, 0]


def test_crossing_people_keep_their_ids():
    """Two people walk towards each other and cross: while they overlap, IoU alone would swap them; the
    tracks' velocities carry each id through."""
    tracker = Tracker()
    left, right = 100.0, 400.0
    expected = tracker.update([box(left, 200), box(right, 200)])
    for _ in range(15):
        left += 20.0
        right -= 20.0
        ids = tracker.update([box(right, 200), box(left, 200)])   # detector order changes too
        assert ids == expected[::-1], f"ids swapped at left={left}, right={right}"
    assert left > right, "the two people did cross"


def test_new_person_gets_a_new_id_and_lost_ids_are_not_reused():
    tracker = Tracker(max_age=2)
    assert tracker.update([box(100, 200)]) == [0]
    assert tracker.update([box(105, 200), box(500, 200)]) == [0, 1]
    # person 0 leaves; person 1 stays
    for _ in range(3):
        assert tracker.update([box(500, 200)]) == [1]
    # someone appears where person 0 was, after person 0's track expired: a new id
    assert tracker.update([box(500, 200), box(105, 200)]) == [1, 2]


def test_briefly_hidden_person_keeps_their_id():
    tracker = Tracker(max_age=3)
    assert tracker.update([box(100, 200), box(400, 200)]) == [0, 1]
    assert tracker.update([box(110, 200), box(410, 200)]) == [0, 1]
    assert tracker.update([box(420, 200)]) == [1]          # person 0 hidden for two updates
    assert tracker.update([box(430, 200)]) == [1]
    assert tracker.update([box(140, 200), box(440, 200)]) == [0, 1]   # back, where its velocity said


def test_far_jump_is_a_new_person_and_empty_frames_are_fine():
    tracker = Tracker()
    assert tracker.update(np.zeros((0, 4))) == []
    assert tracker.update([box(100, 200)]) == [0]
    assert tracker.update([box(900, 200)]) == [1]     # 8 box widths away: not the same person
    tracker.reset()
    assert tracker.update([box(900, 200)]) == [2]     # after a reset ids keep counting up


def test_bad_max_age():
    with pytest.raises(ValueError, match="max_age"):
        Tracker(max_age=-1)
