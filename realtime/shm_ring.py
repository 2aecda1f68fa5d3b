"""Fixed-slot ring buffers in `multiprocessing.shared_memory`, for frames and pose maps.

Why a ring and not a queue: frames (224x224x3 crops, full source frames) and pose maps are large and
arrive at a steady rate; pickling them through a pipe costs more than the work done on them. Here the
producer writes in place and only a small integer (the item number) travels through a queue.

Why sequence numbers: a reader learns the item number `n` from metadata and reads slot `n % slots`.
By then the slot may hold a newer item (the writer lapped the reader: an *overwrite*) or the writer may be
rewriting it while the reader copies it (a *torn read*). Each slot carries two int64 words: `begin`,
written before the payload, and `end`, written after it; both hold `n + 1` (0 = never written). A reader
reads `end`, copies the payload, then reads `begin`: the copy is good only if both equal `n + 1`.
This is a seqlock; it relies on stores becoming visible in program order (true on x86-64; on weakly
ordered CPUs a reader could in theory accept a torn copy).

Segment names carry a prefix (`ia_live_<pid>_`) so leftovers in /dev/shm are attributable, and the
creating process owns `unlink()`; attaching processes only `close()`. When the owner could not unlink
(its whole process group was killed), `reclaim_stale` removes what it left at the next start.
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from multiprocessing import shared_memory

import numpy as np

_HEADER_WORDS = 2  # begin, end
_ALIGN = 64


class RingError(RuntimeError):
    """Base class: a read did not return the requested item."""


class RingOverrun(RingError):
    """The slot holds another item than the one asked for (overwritten, or not written yet)."""


class TornRead(RingError):
    """The writer changed the slot while it was being copied."""


@dataclass(frozen=True)
class RingSpec:
    """Everything another process needs to attach to a ring (picklable, small)."""

    name: str
    slots: int
    shape: tuple[int, ...]
    dtype: str

    @property
    def item_bytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def stride(self) -> int:
        """Bytes from one slot's payload to the next, cache-line aligned."""
        return -(-self.item_bytes // _ALIGN) * _ALIGN

    @property
    def header_bytes(self) -> int:
        return -(-(self.slots * _HEADER_WORDS * 8) // _ALIGN) * _ALIGN

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + self.slots * self.stride


def segment_prefix(pid: int | None = None) -> str:
    """Prefix for every segment of one pipeline run, so /dev/shm leftovers name their owner."""
    return f"ia_live_{os.getpid() if pid is None else pid}_"


def unique_name(prefix: str, label: str) -> str:
    return f"{prefix}{label}_{secrets.token_hex(4)}"


SHM_ROOT = Path("/dev/shm")
#: ring segments (``ia_live_<pid>_...``) and the pipeline's named semaphores (``sem.ia_live_<pid>_sem-...``)
_OWNED = re.compile(r"^(?:sem\.)?ia_live_(\d+)_")


def owner_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reclaim_stale(root: Path = SHM_ROOT) -> list[str]:
    """Unlink the segments and semaphores of `ia-live` runs whose owner process no longer exists; returns
    their names. A run's own and any living run's names are left alone. (A new process that happens to
    reuse a dead owner's pid keeps its leftovers for one more start: the check errs on the safe side.)"""
    removed: list[str] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    me = os.getpid()
    for entry in entries:
        match = _OWNED.match(entry.name)
        if match is None or int(match.group(1)) == me or owner_alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            pass
    return removed


class ShmRing:
    """A ring of `slots` arrays of one shape/dtype in one shared-memory segment."""

    def __init__(self, spec: RingSpec, shm: shared_memory.SharedMemory, owner: bool):
        self.spec = spec
        self._shm = shm
        self.owner = owner
        buf = shm.buf
        self._header = np.ndarray((spec.slots, _HEADER_WORDS), dtype=np.int64, buffer=buf, offset=0)
        self._slots = [
            np.ndarray(spec.shape, dtype=spec.dtype, buffer=buf, offset=spec.header_bytes + i * spec.stride)
            for i in range(spec.slots)
        ]

    # -- life cycle -------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, slots: int, shape: tuple[int, ...], dtype: str | np.dtype) -> "ShmRing":
        if slots < 1:
            raise ValueError(f"a ring needs at least one slot, got {slots}")
        spec = RingSpec(name=name, slots=int(slots), shape=tuple(int(s) for s in shape), dtype=np.dtype(dtype).str)
        shm = shared_memory.SharedMemory(name=name, create=True, size=spec.total_bytes)
        ring = cls(spec, shm, owner=True)
        ring._header[:] = 0
        return ring

    @classmethod
    def attach(cls, spec: RingSpec) -> "ShmRing":
        shm = shared_memory.SharedMemory(name=spec.name, create=False)
        if shm.size < spec.total_bytes:
            shm.close()
            raise ValueError(f"shared memory {spec.name} is {shm.size} bytes, expected {spec.total_bytes}")
        return cls(spec, shm, owner=False)

    def close(self) -> None:
        """Drop this process's mapping (views into it must not be used afterwards)."""
        self._header = None  # type: ignore[assignment]
        self._slots = []
        try:
            self._shm.close()
        except BufferError:
            pass  # a caller still holds a view; the mapping goes away with the process

    def unlink(self) -> None:
        """Remove the segment name (creator only); idempotent."""
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> "ShmRing":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self.owner:
            self.unlink()

    # -- access -----------------------------------------------------------------------------------
    @property
    def slots(self) -> int:
        return self.spec.slots

    def slot_of(self, n: int) -> int:
        return n % self.spec.slots

    def begin_write(self, n: int, slot: int | None = None) -> np.ndarray:
        """Mark a slot as being rewritten for item `n`; returns its payload view to fill.

        The slot is `n % slots` unless given (rings whose slots are handed out by a free list)."""
        slot = self.slot_of(n) if slot is None else slot
        self._header[slot, 0] = n + 1
        return self._slots[slot]

    def end_write(self, n: int, slot: int | None = None) -> None:
        """Publish item `n` (call after the payload is complete)."""
        self._header[self.slot_of(n) if slot is None else slot, 1] = n + 1

    def write(self, n: int, value: np.ndarray, slot: int | None = None) -> None:
        view = self.begin_write(n, slot)
        view[...] = value
        self.end_write(n, slot)

    def item_in_slot(self, slot: int) -> int | None:
        """Item number held by a slot (None if never written or mid-write)."""
        begin, end = (int(v) for v in self._header[slot])
        return end - 1 if begin == end and end > 0 else None

    def read(self, n: int, out: np.ndarray | None = None, slot: int | None = None) -> np.ndarray:
        """Copy item `n` out of the ring; raises RingOverrun / TornRead if it is not intact there."""
        slot = self.slot_of(n) if slot is None else slot
        want = n + 1
        end = int(self._header[slot, 1])
        if end != want:
            held = end - 1
            raise RingOverrun(f"ring {self.spec.name}: item {n} wanted, slot {slot} holds item {held}")
        if out is None:
            out = np.empty(self.spec.shape, dtype=self.spec.dtype)
        np.copyto(out, self._slots[slot])
        if int(self._header[slot, 0]) != want:
            raise TornRead(f"ring {self.spec.name}: item {n} was overwritten while being read")
        return out
