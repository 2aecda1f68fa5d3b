"""Shared-memory ring: round trips, overwrite and torn-read detection, cleanup, cross-process use."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from realtime.shm_ring import RingOverrun, RingSpec, ShmRing, TornRead, segment_prefix, unique_name


@pytest.fixture
def ring():
    r = ShmRing.create(unique_name(segment_prefix(), "test"), slots=4, shape=(3, 5), dtype="float32")
    yield r
    r.close()
    r.unlink()


def test_round_trip_and_slot_reuse(ring):
    for n in range(10):
        ring.write(n, np.full((3, 5), n, np.float32))
        got = ring.read(n)
        assert got.dtype == np.float32 and got.shape == (3, 5)
        assert np.all(got == n)
    # the last `slots` items are readable, older ones were overwritten
    for n in range(6, 10):
        assert ring.read(n)[0, 0] == n


def test_overwrite_detected_by_sequence(ring):
    ring.write(1, np.ones((3, 5), np.float32))
    ring.write(5, np.full((3, 5), 5, np.float32))  # same slot (5 % 4 == 1)
    with pytest.raises(RingOverrun, match="item 1 wanted"):
        ring.read(1)
    with pytest.raises(RingOverrun):
        ring.read(9)  # not written yet
    with pytest.raises(RingOverrun):
        ring.read(2)  # never written


def test_torn_read_detected(ring, monkeypatch):
    """A writer that starts rewriting the slot while a reader copies it invalidates the copy."""
    ring.write(2, np.full((3, 5), 2, np.float32))
    real_copyto = np.copyto

    def copy_then_overwrite(dst, src, *a, **k):
        real_copyto(dst, src, *a, **k)
        ring.begin_write(6)  # the writer laps the reader mid-copy (same slot)

    monkeypatch.setattr(np, "copyto", copy_then_overwrite)
    with pytest.raises(TornRead):
        ring.read(2)
    monkeypatch.setattr(np, "copyto", real_copyto)
    # half-written state: begin says 6, end still says 2 -> neither is readable as complete
    assert ring.item_in_slot(ring.slot_of(6)) is None
    with pytest.raises(RingOverrun):
        ring.read(6)
    with pytest.raises(TornRead):
        ring.read(2)  # the old item is no longer intact either
    ring.end_write(6)
    assert ring.item_in_slot(ring.slot_of(6)) == 6


def test_unlink_removes_segment():
    name = unique_name(segment_prefix(), "unlink")
    r = ShmRing.create(name, slots=2, shape=(4,), dtype="uint8")
    assert Path("/dev/shm", name).exists()
    r.close()
    r.unlink()
    r.unlink()  # idempotent
    assert not Path("/dev/shm", name).exists()


def _child_writer(spec: RingSpec, count: int) -> None:
    ring = ShmRing.attach(spec)
    try:
        for n in range(count):
            view = ring.begin_write(n)
            view[...] = n
            ring.end_write(n)
    finally:
        ring.close()


def test_cross_process_and_lapping_reader():
    """A spawned writer laps a reader; every read is intact or reported, never a mixture of items."""
    ctx = mp.get_context("spawn")
    ring = ShmRing.create(unique_name(segment_prefix(), "xproc"), slots=3, shape=(256, 256), dtype="int64")
    try:
        proc = ctx.Process(target=_child_writer, args=(ring.spec, 3000))
        proc.start()
        good = 0
        while proc.is_alive():
            for slot in range(ring.slots):
                n = ring.item_in_slot(slot)
                if n is None:
                    continue
                try:
                    arr = ring.read(n)
                except (RingOverrun, TornRead):
                    continue
                assert np.all(arr == n), "a read returned a mixture of two items"
                good += 1
        proc.join(10)
        assert proc.exitcode == 0
        assert ring.read(2999)[0, 0] == 2999
    finally:
        ring.close()
        ring.unlink()
    assert not Path("/dev/shm", ring.spec.name).exists()


def test_segment_prefix_names_owner():
    assert segment_prefix().startswith(f"ia_live_{os.getpid()}_")


def test_reclaim_removes_only_what_dead_owners_left():
    """`reclaim_stale` unlinks segments and semaphores named after a process that no longer exists, and
    leaves those of living processes (another ia-live running) alone."""
    import subprocess

    from realtime.shm_ring import SHM_ROOT, reclaim_stale

    if not SHM_ROOT.is_dir():
        pytest.skip("no /dev/shm on this system")
    gone = subprocess.Popen(["true"])
    gone.wait()
    living = subprocess.Popen(["sleep", "60"])
    rings = [ShmRing.create(unique_name(segment_prefix(pid), "raw"), 1, (4,), "uint8") for pid in (gone.pid, living.pid)]
    fake_sem = SHM_ROOT / f"sem.ia_live_{gone.pid}_sem-test"
    fake_sem.write_bytes(b"\0" * 32)
    try:
        removed = reclaim_stale()
        assert rings[0].spec.name in removed and fake_sem.name in removed
        assert not (SHM_ROOT / rings[0].spec.name).exists() and not fake_sem.exists()
        assert (SHM_ROOT / rings[1].spec.name).exists()
    finally:
        living.kill()
        living.wait()
        for ring in rings:
            ring.close()
            ring.unlink()
        fake_sem.unlink(missing_ok=True)
