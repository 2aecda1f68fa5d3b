"""Motion families: joint-angle (or wrist-target) trajectories as functions of the motion phase.

Why phase, not time: per-clip speed, start phase and a slow time warp are applied once by `animate`,
so every family gets the same kind of timing variation and two classes that share a family (e.g.
drinking / eating ice cream) are drawn from exactly the same motion distribution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tools.synth.figure import SEGMENTS, direction, rot_x

Pose = dict[str, np.ndarray]


def minjerk(u: np.ndarray) -> np.ndarray:
    """Minimum-jerk 0->1 easing: human point-to-point movements follow this velocity profile."""
    u = np.clip(u, 0.0, 1.0)
    return u ** 3 * (10 - 15 * u + 6 * u ** 2)


def keyframes(u: np.ndarray, times: list[float], values: list[float]) -> np.ndarray:
    """Piecewise minimum-jerk interpolation through (time, value) keys on the cycle u in [0, 1)."""
    u = np.asarray(u) % 1.0
    out = np.full(u.shape, float(values[-1]))
    for (t0, v0), (t1, v1) in zip(zip(times, values), zip(times[1:], values[1:])):
        m = (u >= t0) & (u < t1)
        out[m] = v0 + (v1 - v0) * minjerk((u[m] - t0) / max(t1 - t0, 1e-9))
    return out


def _norm(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _lerp_dir(a: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    return _norm(a + (b - a) * e[..., None])


def _rest(n: int) -> Pose:
    """Standing, arms hanging slightly away from the body."""
    z = np.zeros(n)
    pose: Pose = {}
    for s, side in (("l", 1.0), ("r", -1.0)):
        pose[f"{s}_upper"] = direction(z + 8, z + 4, side)
        pose[f"{s}_fore"] = direction(z + 5, z + 14, side)
        pose[f"{s}_thigh"] = direction(z + 3, z, side)
        pose[f"{s}_shin"] = direction(z + 3, z, side)
    return pose


def _sgn(s: str) -> float:
    return 1.0 if s == "l" else -1.0


def _other(s: str) -> str:
    return "r" if s == "l" else "l"


def wave(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    c = np.sin(2 * np.pi * ph)
    p[f"{side}_upper"] = direction(118 + 6 * c, np.full(n, 12.0), _sgn(side))
    p[f"{side}_fore"] = direction(182 + 30 * amp * c, np.full(n, 8.0), _sgn(side))
    p["lean"] = -_sgn(side) * 3 + 1.5 * c
    return p


def jumping_jack(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    u = minjerk(0.5 - 0.5 * np.cos(2 * np.pi * ph))
    for s in "lr":
        a = 12 + 150 * amp * u
        p[f"{s}_upper"] = direction(a, np.full(n, 6.0), _sgn(s))
        p[f"{s}_fore"] = direction(a + 12 * u, np.full(n, 8.0), _sgn(s))
        p[f"{s}_thigh"] = direction(3 + 16 * u, np.zeros(n), _sgn(s))
        p[f"{s}_shin"] = direction(3 + 16 * u, np.zeros(n), _sgn(s))
    p["jump"] = 0.07 * amp * np.abs(np.sin(2 * np.pi * ph)) ** 1.5
    return p


def squat(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    u = keyframes(ph, [0.0, 0.1, 0.45, 0.6, 0.95, 1.0], [0, 0, 1, 1, 0, 0]) * amp
    for s in "lr":
        p[f"{s}_thigh"] = direction(10 + 6 * u, 88 * u, _sgn(s))
        p[f"{s}_shin"] = direction(6 + 4 * u, -22 * u, _sgn(s))
        p[f"{s}_upper"] = direction(8 + 4 * u, 4 + 80 * u, _sgn(s))
        p[f"{s}_fore"] = direction(5 + 2 * u, 14 + 76 * u, _sgn(s))
    p["pitch"] = 38 * u
    p["nod"] = -25 * u
    return p


def punch(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    k = np.floor(ph).astype(int)
    e_local = keyframes(ph, [0.0, 0.22, 0.32, 0.62, 1.0], [0, 1, 1, 0, 0]) * min(amp, 1.0)
    ext = {}
    for i, s in enumerate((side, _other(side))):
        ext[s] = np.where(k % 2 == i, e_local, 0.0)
        sg = _sgn(s)
        p[f"{s}_upper"] = _lerp_dir(direction(np.full(n, 22.0), np.full(n, 35.0), sg),
                                    direction(np.full(n, -6.0), np.full(n, 88.0), sg), ext[s])
        p[f"{s}_fore"] = _lerp_dir(direction(np.full(n, -40.0), np.full(n, 145.0), sg),
                                   direction(np.full(n, -8.0), np.full(n, 90.0), sg), ext[s])
    p["twist"] = 24 * (ext["r"] - ext["l"])
    p["l_thigh"] = direction(np.full(n, 10.0), np.full(n, 10.0), 1.0)
    p["r_thigh"] = direction(np.full(n, 10.0), np.full(n, -8.0), -1.0)
    p["l_shin"] = direction(np.full(n, 8.0), np.full(n, -4.0), 1.0)
    p["r_shin"] = direction(np.full(n, 8.0), np.full(n, -10.0), -1.0)
    p["pitch"] = np.full(n, 8.0)
    return p


def hand_to_mouth(ph: np.ndarray, side: str, amp: float) -> Pose:
    """Bring the held thing to the mouth, hold, lower: drinking and eating share it on purpose."""
    n = len(ph)
    p = _rest(n)
    sg = _sgn(side)
    e = keyframes(ph, [0.0, 0.15, 0.42, 0.72, 0.95, 1.0], [0, 0, 1, 1, 0, 0])
    rest = np.array([sg * 0.14, -0.34, 0.17])
    mouth = np.array([sg * 0.025, 0.035, 0.12])
    p[f"{side}_target"] = rest + (mouth - rest) * e[:, None]
    p["nod"] = -14 * e * amp
    p["pitch"] = -3 * e
    return p


def kick(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    sg = _sgn(side)
    t = [0.0, 0.08, 0.32, 0.44, 0.56, 0.8, 1.0]
    thigh = keyframes(ph, t, [0, 0, 72, 84, 72, 0, 0]) * amp
    shin = keyframes(ph, t, [0, 0, -25, 82, -25, 0, 0]) * amp
    p[f"{side}_thigh"] = direction(np.full(n, 4.0), thigh, sg)
    p[f"{side}_shin"] = direction(np.full(n, 4.0), shin, sg)
    e = thigh / 84
    for s in "lr":
        p[f"{s}_upper"] = direction(25 + 15 * e, 20 + 10 * e, _sgn(s))
        p[f"{s}_fore"] = direction(-30 + 0 * e, 120 - 20 * e, _sgn(s))
    p["pitch"] = -12 * e
    return p


def march(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    c = np.sin(2 * np.pi * ph)
    for s, lift in (("l", np.clip(c, 0, None)), ("r", np.clip(-c, 0, None))):
        lift = minjerk(lift) * amp
        p[f"{s}_thigh"] = direction(np.full(n, 4.0), 62 * lift, _sgn(s))
        p[f"{s}_shin"] = direction(np.full(n, 4.0), 62 * lift - 95 * lift, _sgn(s))
    for s, sw in (("l", -c), ("r", c)):
        p[f"{s}_upper"] = direction(np.full(n, 9.0), 38 * sw * amp, _sgn(s))
        p[f"{s}_fore"] = direction(np.full(n, 6.0), 38 * sw * amp + 45, _sgn(s))
    p["jump"] = 0.012 * np.abs(c)
    return p


def arm_circles(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    th = 2 * np.pi * ph
    r = 0.5 * amp
    for s in "lr":
        sg = _sgn(s)
        d = _norm(np.stack([np.full(n, sg), r * np.sin(th) + 0.1, r * np.cos(th)], -1))
        p[f"{s}_upper"] = d
        p[f"{s}_fore"] = _norm(d + np.array([0.0, 0.08, 0.05]))
        p[f"{s}_thigh"] = direction(np.full(n, 9.0), np.zeros(n), sg)
        p[f"{s}_shin"] = direction(np.full(n, 9.0), np.zeros(n), sg)
    return p


def bow(ph: np.ndarray, side: str, amp: float) -> Pose:
    n = len(ph)
    p = _rest(n)
    pitch = keyframes(ph, [0.0, 0.1, 0.38, 0.6, 0.88, 1.0], [0, 0, 62, 62, 0, 0]) * amp
    r = rot_x(pitch)
    for s in "lr":
        p[f"{s}_upper"] = np.einsum("fij,fj->fi", r, direction(np.full(n, 3.0), np.zeros(n), _sgn(s)))
        p[f"{s}_fore"] = np.einsum("fij,fj->fi", r, direction(np.full(n, 1.0), np.full(n, 6.0), _sgn(s)))
    p["pitch"] = pitch
    p["nod"] = 0.25 * pitch
    return p


def swing(ph: np.ndarray, side: str, amp: float) -> Pose:
    """Two-handed horizontal swing (bat / two-handed tennis stroke): same family for both classes."""
    n = len(ph)
    p = _rest(n)
    t = [0.0, 0.1, 0.4, 0.52, 0.7, 1.0]
    ang = keyframes(ph, t, [-20, -20, -115, 100, 100, -20]) * amp * _sgn(side)
    twist = 0.45 * ang
    rel = np.radians(ang - twist)
    target = np.stack([0.3 * np.sin(rel), np.full(n, -0.22), 0.3 * np.cos(rel)], -1)
    p["l_target"] = target + [0.025, 0.02, 0.0]
    p["r_target"] = target - [0.025, 0.02, 0.0]
    p["twist"] = twist
    p["pitch"] = np.full(n, 12.0)
    for s in "lr":
        p[f"{s}_thigh"] = direction(np.full(n, 12.0), np.zeros(n), _sgn(s))
        p[f"{s}_shin"] = direction(np.full(n, 12.0), np.zeros(n), _sgn(s))
    return p


@dataclass(frozen=True)
class Family:
    """A motion family: its phase function and its natural rate (cycles per second)."""

    fn: Callable[[np.ndarray, str, float], Pose]
    hz: float


FAMILIES: dict[str, Family] = {
    "wave": Family(wave, 1.9), "jumping_jack": Family(jumping_jack, 1.0), "squat": Family(squat, 0.55),
    "punch": Family(punch, 1.5), "hand_to_mouth": Family(hand_to_mouth, 0.55), "kick": Family(kick, 0.7),
    "march": Family(march, 0.9), "arm_circles": Family(arm_circles, 1.2), "bow": Family(bow, 0.5),
    "swing": Family(swing, 0.6),
}


@dataclass(frozen=True)
class Timing:
    """Per-clip timing: speed factor, start phase, amplitude and a slow time warp (s, cycles, -, s, rad)."""

    speed: float
    phase: float
    amp: float
    warp: float
    warp_phase: float


def random_timing(rng: np.random.Generator) -> Timing:
    return Timing(speed=float(rng.uniform(0.8, 1.25)), phase=float(rng.uniform(0, 1)),
                  amp=float(rng.uniform(0.82, 1.1)), warp=float(rng.uniform(0.0, 0.08)),
                  warp_phase=float(rng.uniform(0, 2 * np.pi)))


def animate(family: str, t: np.ndarray, timing: Timing, side: str) -> Pose:
    """Pose trajectory at times t (s): the family's phase function under this clip's timing."""
    fam = FAMILIES[family]
    warped = t + timing.warp * np.sin(2 * np.pi * t / 1.7 + timing.warp_phase)
    ph = fam.hz * timing.speed * warped + timing.phase
    pose = fam.fn(ph, side, timing.amp)
    n = len(t)
    sway = 1.5 * np.sin(2 * np.pi * 0.35 * t + timing.warp_phase)
    pose["lean"] = pose.get("lean", np.zeros(n)) + sway
    for k in SEGMENTS:
        pose.setdefault(k, _rest(n)[k])
    return pose
