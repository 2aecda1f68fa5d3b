"""Temporal sampling by time: clip indices, train/test starts, the streaming sampler, window counts."""
from __future__ import annotations

import numpy as np
import pytest

from core.sampling import (StreamSampler, clip_indices, frame_step, frames_needed,
                           test_clip_starts as clip_starts_for_test, train_clip_start, windows_for)


def test_clip_indices_by_time():
    np.testing.assert_array_equal(clip_indices(1000, 30, 8, 8, 0), np.arange(8) * 8)
    np.testing.assert_array_equal(clip_indices(1000, 60, 8, 8, 10), 10 + np.arange(8) * 16)
    # 25 fps: step 6.667 -> 0, 6.67, 13.33, 20, 26.67 ...
    np.testing.assert_array_equal(clip_indices(1000, 25, 5, 8, 0), [0, 7, 13, 20, 27])
    # the same seconds whatever the rate: last frame time is (T-1)*tau/30 s
    for fps in (10, 25, 29.97, 30, 60):
        idx = clip_indices(10_000, fps, 8, 8, 0)
        assert abs(idx[-1] / fps - 7 * 8 / 30) <= 0.5 / fps + 1e-9


def test_clip_indices_clamp_and_errors():
    np.testing.assert_array_equal(clip_indices(20, 30, 8, 8, 0), [0, 8, 16, 19, 19, 19, 19, 19])
    with pytest.raises(ValueError, match="num_frames"):
        clip_indices(0, 30, 8, 8, 0)
    with pytest.raises(ValueError, match="fps"):
        clip_indices(10, 0, 8, 8, 0)


def test_train_clip_start_fits():
    rng = np.random.default_rng(0)
    starts = [train_clip_start(100, 30, 8, 8, rng) for _ in range(300)]
    assert min(starts) == 0 and max(starts) == 100 - 1 - 56
    for s in starts[:20]:
        assert clip_indices(100, 30, 8, 8, s)[-1] <= 99
    assert train_clip_start(30, 30, 8, 8, rng) == 0  # too short: start at 0 (and clamp)
    a = [train_clip_start(500, 25, 8, 8, np.random.default_rng(4)) for _ in range(2)]
    assert a[0] == a[1]


def test_test_clip_starts_spread():
    starts = clip_starts_for_test(300, 30, 8, 8, n_clips=10)
    assert len(starts) == 10 and np.all(np.diff(starts) > 0)
    assert starts[0] >= 0 and starts[-1] + 56 <= 299
    room = 300 - 1 - 56
    assert starts[0] < room / 10 and starts[-1] > room * 0.85  # covers the whole video
    assert np.all(clip_starts_for_test(40, 30, 8, 8) == 0)


@pytest.mark.parametrize("fps", [10, 25, 29.97, 30, 60])
def test_stream_sampler_matches_clip_indices_on_files(fps):
    n = 2000
    sampler = StreamSampler(fps, tau=8)
    taken = [i for i in range(n) if sampler(i, i / fps)]
    T = len(taken)
    np.testing.assert_array_equal(taken, clip_indices(n, fps, T, 8, 0))
    assert clip_indices(2 * n, fps, T + 1, 8, 0)[-1] > n - 1  # the file really is covered to its end
    assert T == pytest.approx((n - 1) / frame_step(fps, 8) + 1, abs=1) and sampler.num_reanchors == 0
    # timestamps omitted: index / fps_hint
    other = StreamSampler(fps, tau=8)
    assert [i for i in range(n) if other(i)] == taken


def test_stream_sampler_irregular_live_source():
    rng = np.random.default_rng(1)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 3000))  # jittery ~30 fps
    ts = ts[rng.random(ts.size) > 0.2]  # 20% dropped frames
    sampler = StreamSampler(30, tau=8)
    picked = np.array([t for i, t in enumerate(ts) if sampler(i, t)])
    period = 8 / 30
    gaps = np.diff(picked)
    assert gaps.min() > period * 0.5  # never bunched
    assert abs(np.median(gaps) - period) < 0.05
    # each pick is the first frame at or after its target (minus half a nominal frame)
    anchor = picked[0]
    for k, t in enumerate(picked[1:50], start=1):
        target = anchor + k * period - 0.5 / 30
        assert t >= target - 1e-9
        assert not np.any((ts >= target - 1e-9) & (ts < t))


def test_stream_sampler_reanchors_after_stall_and_rewind():
    sampler = StreamSampler(30, tau=8)
    ts = [i / 30 for i in range(20)] + [10 + i / 30 for i in range(40)]  # a 10 s stall
    picked = [t for i, t in enumerate(ts) if sampler(i, t)]
    gaps = np.diff(picked)
    assert gaps.min() > 0.2 and sampler.num_reanchors == 1
    assert picked[picked.index(10.0) + 1] == pytest.approx(10 + 8 / 30)
    assert sampler(999, 1.0) is True and sampler.num_reanchors == 2  # timestamps went backwards
    assert sampler(1000, 1.0 + 1 / 30) is False


def test_windows_for():
    assert [windows_for(n, 8, 1) for n in (0, 7, 8, 9, 20)] == [0, 0, 1, 2, 13]
    assert [windows_for(n, 8, 4) for n in (7, 8, 11, 12, 16)] == [0, 1, 1, 2, 3]
    with pytest.raises(ValueError):
        windows_for(10, 8, 0)


@pytest.mark.parametrize("fps,T,tau", [(30, 8, 8), (25, 8, 8), (28.05, 4, 16), (60, 16, 2), (10, 8, 8), (30, 1, 8)])
def test_frames_needed_is_the_stream_samplers_first_window(fps, T, tau):
    """A file of `frames_needed` frames gives the sampler exactly T frames (one window), one frame less
    gives T - 1: the live pipeline's "too short for one prediction" check and its sampler agree."""
    need = frames_needed(fps, T, tau)

    def sampled(n: int) -> int:
        sampler = StreamSampler(fps, tau)
        return sum(sampler(i) for i in range(n))

    assert sampled(need) == T
    assert sampled(need - 1) == T - 1
