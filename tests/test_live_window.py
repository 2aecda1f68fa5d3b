"""Window layout (equal and k-times-denser pose streams), in-order assembly from out-of-order ticks."""
from __future__ import annotations

import random

import numpy as np
import pytest

from realtime.window import ProbAverager, WindowPlan, WindowPlanError, WindowTracker


def test_equal_streams_window_is_last_T_ticks():
    plan = WindowPlan(frames=8, pose_frames=8, stride=1)
    assert [t for t in range(20) if plan.is_window_end(t)] == list(range(7, 20))
    pose, rgb = plan.window(10)
    assert pose.tolist() == list(range(3, 11)) and rgb.tolist() == list(range(3, 11))
    assert plan.num_windows(7) == 0 and plan.num_windows(8) == 1 and plan.num_windows(20) == 13
    assert all(plan.needs_rgb(t) for t in range(10))


def test_dense_pose_stream_matches_training_clip_layout():
    """T=8, T_pose=32 (k=4): RGB frames are every 4th pose frame starting at the window's first."""
    plan = WindowPlan(frames=8, pose_frames=32, stride=1)
    ends = [t for t in range(60) if plan.is_window_end(t)]
    assert ends == list(range(31, 60, 4))
    pose, rgb = plan.window(35)
    assert pose.tolist() == list(range(4, 36))
    assert rgb.tolist() == list(range(4, 36, 4))
    assert all(plan.needs_rgb(t) for t in rgb) and not plan.needs_rgb(5)
    assert plan.num_windows(60) == len(ends)


@pytest.mark.parametrize("frames,pose_frames,stride", [(8, 8, 1), (8, 8, 3), (4, 16, 2), (2, 2, 5)])
def test_num_windows_agrees_with_enumeration(frames, pose_frames, stride):
    plan = WindowPlan(frames, pose_frames, stride)
    for n in range(0, 80):
        assert plan.num_windows(n) == sum(plan.is_window_end(t) for t in range(n))


def test_release_never_frees_a_tick_a_later_window_uses():
    plan = WindowPlan(frames=4, pose_frames=16, stride=2)
    ends = [t for t in range(200) if plan.is_window_end(t)]
    for a, b in zip(ends, ends[1:]):
        assert plan.release_after(a) == plan.window(b)[0][0]


def test_tracker_emits_windows_in_order_from_shuffled_ticks():
    plan = WindowPlan(frames=3, pose_frames=6, stride=1)
    ticks = list(range(40))
    random.Random(0).shuffle(ticks)
    tracker = WindowTracker(plan)
    ends = []
    for t in ticks:
        new = tracker.add(t)
        for e in new:
            assert tracker.complete_through >= e
            tracker.assembled(e)
        ends += new
    assert ends == [t for t in range(40) if plan.is_window_end(t)]
    assert tracker.release == plan.release_after(ends[-1])
    with pytest.raises(ValueError, match="twice"):
        tracker.add(3)


def test_plan_from_config_rejects_misaligned_streams():
    class Cfg:
        frames, tau, pose_frames, pose_tau = 8, 8, 32, 2

    assert WindowPlan.from_config(Cfg).k == 4
    Cfg.pose_tau = 3
    with pytest.raises(WindowPlanError, match="pose_tau"):
        WindowPlan.from_config(Cfg)
    Cfg.pose_frames = 12
    with pytest.raises(WindowPlanError, match="multiple"):
        WindowPlan.from_config(Cfg)


def test_prob_averager_keeps_last_n():
    avg = ProbAverager(2)
    np.testing.assert_allclose(avg.add(np.array([1.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(avg.add(np.array([0.0, 1.0])), [0.5, 0.5])
    np.testing.assert_allclose(avg.add(np.array([0.0, 1.0])), [0.0, 1.0])
    with pytest.raises(ValueError):
        ProbAverager(0)
