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
Style = dict[str, float]


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


def wave(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """One hand (or both) raised and waved side to side: overhead (KARD 'high arm wave') or at head height."""
    n = len(ph)
    p = _rest(n)
    c = np.sin(2 * np.pi * ph)
    raise_ = style["raise"]                      # upper-arm abduction: ~80 (hand by the head) .. 150 (overhead)
    for s in ((side, _other(side)) if style["both"] else (side,)):
        sg = _sgn(s)
        cc = c if s == side else -c              # both hands: mirrored, as people wave two arms
        p[f"{s}_upper"] = direction(raise_ + 6 * cc, np.full(n, style["flex"]), sg)
        p[f"{s}_fore"] = direction(raise_ + 64 + 30 * amp * cc, np.full(n, 8.0), sg)
    p["lean"] = -_sgn(side) * 3 * (not style["both"]) + 1.5 * c
    return p


def jumping_jack(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    n = len(ph)
    p = _rest(n)
    u = minjerk(0.5 - 0.5 * np.cos(2 * np.pi * ph))
    for s in "lr":
        a = 12 + style["reach"] * amp * u
        p[f"{s}_upper"] = direction(a, np.full(n, 6.0), _sgn(s))
        p[f"{s}_fore"] = direction(a + 12 * u, np.full(n, 8.0), _sgn(s))
        p[f"{s}_thigh"] = direction(3 + 16 * u, np.zeros(n), _sgn(s))
        p[f"{s}_shin"] = direction(3 + 16 * u, np.zeros(n), _sgn(s))
    p["jump"] = 0.07 * amp * np.abs(np.sin(2 * np.pi * ph)) ** 1.5
    return p


def squat(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """Arms raised forward as the hips go down, hands clasped at the chest, on the hips, or hanging."""
    n = len(ph)
    p = _rest(n)
    u = keyframes(ph, [0.0, 0.1, 0.45, 0.6, 0.95, 1.0], [0, 0, 1, 1, 0, 0]) * amp
    arms = style["arms"]
    for s in "lr":
        sg = _sgn(s)
        p[f"{s}_thigh"] = direction(10 + 6 * u, 88 * u, sg)
        p[f"{s}_shin"] = direction(6 + 4 * u, -22 * u, sg)
        if arms < 0.45:                          # arms forward (the usual form cue)
            p[f"{s}_upper"] = direction(8 + 4 * u, 4 + 80 * u, sg)
            p[f"{s}_fore"] = direction(5 + 2 * u, 14 + 76 * u, sg)
        elif arms < 0.75:                        # hands clasped in front of the chest
            p[f"{s}_target"] = np.tile([sg * 0.02, -0.12, 0.16], (n, 1))
        elif arms < 0.9:                         # hands on the hips
            p[f"{s}_target"] = np.tile([sg * 0.2, -0.3, 0.02], (n, 1))
    p["pitch"] = 38 * u
    p["nod"] = -25 * u
    return p


def punch(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """Punches into the air from a guard: alternating arms (or repeated jabs of one), at a random height."""
    n = len(ph)
    p = _rest(n)
    k = np.floor(ph).astype(int)
    e_local = keyframes(ph, [0.0, 0.22, 0.32, 0.62, 1.0], [0, 1, 1, 0, 0]) * min(amp, 1.0)
    ext = {}
    height = style["height"]                     # flexion of the extended arm: 70 (low) .. 100 (face height)
    for i, s in enumerate((side, _other(side))):
        ext[s] = np.where(k % 2 == i, e_local, 0.0) if not style["jabs"] else (e_local if i == 0 else 0 * e_local)
        sg = _sgn(s)
        p[f"{s}_upper"] = _lerp_dir(direction(np.full(n, 22.0), np.full(n, 35.0), sg),
                                    direction(np.full(n, -6.0), np.full(n, height), sg), ext[s])
        p[f"{s}_fore"] = _lerp_dir(direction(np.full(n, -40.0), np.full(n, 145.0), sg),
                                   direction(np.full(n, -8.0), np.full(n, height + 2.0), sg), ext[s])
    p["twist"] = 24 * (ext["r"] - ext["l"])
    p["l_thigh"] = direction(np.full(n, 10.0), np.full(n, 10.0), 1.0)
    p["r_thigh"] = direction(np.full(n, 10.0), np.full(n, -8.0), -1.0)
    p["l_shin"] = direction(np.full(n, 8.0), np.full(n, -4.0), 1.0)
    p["r_shin"] = direction(np.full(n, 8.0), np.full(n, -10.0), -1.0)
    p["pitch"] = np.full(n, 8.0)
    return p


def hand_to_mouth(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """Bring the held thing to the mouth, hold, lower: drinking and eating share it on purpose.

    The hand starts low (by the hip), at table height close to the body, or reaching for a cup on a table in
    front or to the side (a seated drinker's biggest movement); the head tilts back (a bottle) or stays level."""
    n = len(ph)
    p = _rest(n)
    sg = _sgn(side)
    e = keyframes(ph, [0.0, 0.15, 0.42, 0.72, 0.95, 1.0], [0, 0, 1, 1, 0, 0])
    rest = np.array([sg * 0.14, -0.34 + style["rest_up"], 0.17 + 0.5 * style["rest_up"]])
    reach = style.get("reach", 0.0)
    if reach:   # the cup stands on a table at arm's length: in front (reach > 0) or to the side (< 0)
        ahead = [sg * 0.17, -0.21, 0.27]
        beside = [sg * 0.33, -0.2, 0.1]
        rest = np.array(ahead if reach > 0 else beside) + np.array([sg * 0.03, 0.03, 0.0]) * abs(reach)
    # the held cup/bottle puts the wrist beside and below the mouth, not on it
    mouth = np.array([sg * (0.025 + style["offset"]), 0.035 - 0.5 * style["offset"], 0.12])
    p[f"{side}_target"] = rest + (mouth - rest) * e[:, None]
    if style["elbow_up"]:   # a bottle tipped up: the elbow rises sideways to shoulder height (as measured)
        p[f"{side}_pole"] = np.tile([sg * 0.9, style["elbow_up"], -0.2], (n, 1))
    p["nod"] = -style["tilt"] * e * amp
    p["pitch"] = -3 * e
    return p


def kick(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """A front kick (the leg swings forward) or a side kick (it swings out sideways), then back to standing."""
    n = len(ph)
    p = _rest(n)
    sg = _sgn(side)
    t = [0.0, 0.08, 0.32, 0.44, 0.56, 0.8, 1.0]
    hi = style["height"]                          # peak thigh angle: 50 (knee height) .. 90 (hip height)
    thigh = keyframes(ph, t, [0, 0, hi - 12, hi, hi - 12, 0, 0]) * amp
    shin = keyframes(ph, t, [0, 0, -25, hi - 2, -25, 0, 0]) * amp
    if style["side_kick"]:
        p[f"{side}_thigh"] = direction(thigh, np.full(n, 4.0), sg)
        p[f"{side}_shin"] = direction(np.maximum(thigh, shin * 0.9), np.full(n, 4.0), sg)
        p["lean"] = sg * 0.25 * thigh
    else:
        p[f"{side}_thigh"] = direction(np.full(n, 4.0), thigh, sg)
        p[f"{side}_shin"] = direction(np.full(n, 4.0), shin, sg)
    e = thigh / max(hi, 1.0)
    arms = style.get("arms", 0.0)
    for s in "lr":
        sg_s = _sgn(s)
        if arms < 0.4:                            # fists up in a guard (a martial-arts kick)
            p[f"{s}_upper"] = direction(25 + 15 * e, 20 + 10 * e, sg_s)
            p[f"{s}_fore"] = direction(-30 + 0 * e, 120 - 20 * e, sg_s)
        elif arms < 0.8:                          # arms hanging, swinging a little against the leg (a ball kick)
            swing = -18 * e if s == side else 14 * e
            p[f"{s}_upper"] = direction(8 + 6 * e, swing, sg_s)
            p[f"{s}_fore"] = direction(6 + 4 * e, swing + 12, sg_s)
        else:                                     # arms out sideways for balance
            p[f"{s}_upper"] = direction(20 + 35 * e, 5 * e, sg_s)
            p[f"{s}_fore"] = direction(25 + 40 * e, 10 * e, sg_s)
    p["pitch"] = -12 * e
    return p


def march(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """Marching on the spot up to high knees; arms swinging, or held out in front (high-knee drills)."""
    n = len(ph)
    p = _rest(n)
    c = np.sin(2 * np.pi * ph)
    knee = style["knee"]                          # peak thigh flexion: 55 (march) .. 95 (high knees)
    for s, lift in (("l", np.clip(c, 0, None)), ("r", np.clip(-c, 0, None))):
        lift = minjerk(lift) * amp
        p[f"{s}_thigh"] = direction(np.full(n, 4.0), knee * lift, _sgn(s))
        p[f"{s}_shin"] = direction(np.full(n, 4.0), knee * lift - 95 * lift, _sgn(s))
    for s, sw in (("l", -c), ("r", c)):
        if style["hands_out"]:
            p[f"{s}_upper"] = direction(np.full(n, 12.0), 70 + 6 * sw, _sgn(s))
            p[f"{s}_fore"] = direction(np.full(n, 4.0), 88 + 6 * sw, _sgn(s))
        else:
            p[f"{s}_upper"] = direction(np.full(n, 9.0), 38 * sw * amp, _sgn(s))
            p[f"{s}_fore"] = direction(np.full(n, 6.0), 38 * sw * amp + 45, _sgn(s))
    p["jump"] = 0.012 * np.abs(c)
    return p


def arm_circles(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """Both arms circling: small circles held out to the side, or large sweeps up, out and down."""
    n = len(ph)
    p = _rest(n)
    th = 2 * np.pi * ph * style["direction"]
    r = style["radius"] * amp
    for s in "lr":
        sg = _sgn(s)
        d = _norm(np.stack([np.full(n, sg), r * np.sin(th) + 0.1, r * np.cos(th)], -1))
        p[f"{s}_upper"] = d
        p[f"{s}_fore"] = _norm(d + np.array([0.0, 0.08, 0.05]))
        p[f"{s}_thigh"] = direction(np.full(n, 9.0), np.zeros(n), sg)
        p[f"{s}_shin"] = direction(np.full(n, 9.0), np.zeros(n), sg)
    return p


def bow(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    n = len(ph)
    p = _rest(n)
    pitch = keyframes(ph, [0.0, 0.1, 0.38, 0.6, 0.88, 1.0], [0, 0, style["depth"], style["depth"], 0, 0]) * amp
    r = rot_x(pitch)
    for s in "lr":
        p[f"{s}_upper"] = np.einsum("fij,fj->fi", r, direction(np.full(n, 3.0), np.zeros(n), _sgn(s)))
        p[f"{s}_fore"] = np.einsum("fij,fj->fi", r, direction(np.full(n, 1.0), np.full(n, 6.0), _sgn(s)))
    p["pitch"] = pitch
    p["nod"] = 0.25 * pitch
    return p


def swing(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
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


NO_ACTION_KINDS = ("idle", "walk", "random_arms", "talk", "stretch", "phone", "look_around")


def no_action(ph: np.ndarray, side: str, amp: float, style: Style) -> Pose:
    """What a camera mostly sees: people standing, walking, gesturing, stretching, on the phone.

    The `no_action` class of the benchmark (the "none of these" a live recognizer needs). Each clip draws
    one kind; its coefficients `c0..c15` (uniform in [-1, 1]) make every clip's motion its own.
    """
    n = len(ph)
    p = _rest(n)
    kind = NO_ACTION_KINDS[int(style["kind"])]
    c = [style[f"c{i}"] for i in range(16)]
    tau = 2 * np.pi * ph
    if kind == "idle":
        arms = (c[0] + 1) / 2
        if arms < 0.2:                                      # arms crossed
            p["l_target"] = np.tile([-0.04, -0.14, 0.12], (n, 1))
            p["r_target"] = np.tile([0.04, -0.16, 0.11], (n, 1))
        elif arms < 0.4:                                    # hands on the hips
            for s_ in "lr":
                p[f"{s_}_target"] = np.tile([_sgn(s_) * 0.2, -0.3, 0.02], (n, 1))
        elif arms < 0.55:                                   # hands behind the back
            for s_ in "lr":
                p[f"{s_}_target"] = np.tile([_sgn(s_) * 0.05, -0.33, -0.1], (n, 1))
        elif arms < 0.7:                                    # one hand on the hip
            p[f"{side}_target"] = np.tile([_sgn(side) * 0.2, -0.3, 0.02], (n, 1))
        p["lean"] = 3 * c[1] * np.sin(0.3 * tau + 3 * c[2])
        p["twist"] = 8 * c[3] * np.sin(0.2 * tau + 3 * c[4])
        p["nod"] = 6 * c[5] * np.sin(0.4 * tau + 3 * c[6])
        w = 4 * np.sin(0.25 * tau + 3 * c[7])              # weight shift: one knee bends a little
        for s_, sgn in (("l", 1.0), ("r", -1.0)):
            p[f"{s_}_thigh"] = direction(np.full(n, 3.0), np.clip(sgn * w, 0, None) + 2, _sgn(s_))
            p[f"{s_}_shin"] = direction(np.full(n, 3.0), -np.clip(sgn * w, 0, None) * 2, _sgn(s_))
    elif kind == "walk":                                    # walking on the spot / across: small steps
        g = np.sin(1.8 * tau)
        step = 18 + 6 * c[0]
        for s_, sgn in (("l", 1.0), ("r", -1.0)):
            sw = sgn * g
            p[f"{s_}_thigh"] = direction(np.full(n, 3.0), step * sw, _sgn(s_))
            p[f"{s_}_shin"] = direction(np.full(n, 3.0), step * sw - 25 * np.clip(sw, 0, None), _sgn(s_))
            p[f"{s_}_upper"] = direction(np.full(n, 7.0), -(14 + 6 * c[1]) * sw, _sgn(s_))
            p[f"{s_}_fore"] = direction(np.full(n, 5.0), -(14 + 6 * c[1]) * sw + 20, _sgn(s_))
        p["jump"] = 0.008 * np.abs(g)
    elif kind == "random_arms":                             # aimless arm movements, two sines per angle
        for i, s_ in enumerate("lr"):
            k = 4 * i
            abd = 25 + 30 * c[k] + 35 * np.sin((0.6 + 0.4 * c[k + 1]) * tau + 3 * c[k + 2]) * amp
            flex = 30 + 30 * c[k + 3] + 40 * np.sin((0.5 + 0.3 * c[k + 2]) * tau + 3 * c[k + 1]) * amp
            p[f"{s_}_upper"] = direction(abd, flex, _sgn(s_))
            p[f"{s_}_fore"] = direction(abd + 10, flex + 40 + 30 * np.sin((0.7 + 0.3 * c[k]) * tau + 3 * c[k + 3]),
                                        _sgn(s_))
        p["twist"] = 10 * c[8] * np.sin(0.3 * tau)
    elif kind == "talk":                                    # hands gesturing in front of the chest
        for i, s_ in enumerate("lr"):
            k = 3 * i
            base = np.array([_sgn(s_) * (0.08 + 0.03 * c[k]), -0.18 + 0.05 * c[k + 1], 0.16])
            wob = np.stack([0.05 * np.sin((1.1 + 0.5 * c[k + 2]) * tau + 3 * c[k]),
                            0.05 * np.sin((1.4 + 0.5 * c[k + 1]) * tau + 3 * c[k + 2]),
                            0.03 * np.sin((0.9 + 0.3 * c[k]) * tau)], -1) * amp
            if i == 1 and c[9] > 0.3:                       # sometimes one hand hangs
                continue
            p[f"{s_}_target"] = base + wob
        p["nod"] = 5 * np.sin(1.3 * tau + 3 * c[10])
        p["twist"] = 6 * np.sin(0.4 * tau + 3 * c[11])
    elif kind == "stretch":                                 # slow reach overhead, side bends, twists
        u = 0.5 - 0.5 * np.cos(0.5 * tau)
        for s_ in "lr":
            p[f"{s_}_upper"] = direction(20 + (90 + 50 * c[0]) * u, 10 + 20 * c[1] * u, _sgn(s_))
            p[f"{s_}_fore"] = direction(25 + (100 + 50 * c[0]) * u, 10 + 20 * c[1] * u, _sgn(s_))
        p["lean"] = 14 * c[2] * np.sin(0.35 * tau + 3 * c[3])
        p["twist"] = 20 * c[4] * np.sin(0.3 * tau + 3 * c[5])
    elif kind == "phone":                                   # looking at a phone held in front of the chest
        p[f"{side}_target"] = np.array([_sgn(side) * 0.05, -0.12 + 0.04 * c[0], 0.2]) + \
            0.01 * np.stack([np.sin(tau + 3 * c[1]), np.sin(1.3 * tau), np.zeros(n)], -1)
        if c[2] > 0:                                        # both hands on it
            p[f"{_other(side)}_target"] = p[f"{side}_target"] + [-_sgn(side) * 0.06, 0.0, 0.0]
        p["nod"] = 18 + 6 * np.sin(0.3 * tau + 3 * c[3])
    else:                                                   # look_around: turning head and shoulders
        p["twist"] = (25 + 10 * c[0]) * np.sin(0.45 * tau + 3 * c[1])
        p["nod"] = 8 * np.sin(0.6 * tau + 3 * c[2])
        p["lean"] = 3 * np.sin(0.2 * tau)
    return p


@dataclass(frozen=True)
class Family:
    """A motion family: its phase function, its natural rate (cycles per second) and its style sampler.

    A style is drawn once per clip (which arm raises, how high a kick goes, ...): the variation real people
    show within one action. Two classes sharing a family share its style distribution too."""

    fn: Callable[[np.ndarray, str, float, Style], Pose]
    hz: float
    styles: Callable[[np.random.Generator], Style]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _no_styles(rng: np.random.Generator) -> Style:
    return {}


FAMILIES: dict[str, Family] = {
    "wave": Family(wave, 1.9, lambda r: {"raise": _u(r, 95, 150), "flex": _u(r, 0, 25),
                                         "both": float(r.random() < 0.35)}),
    "jumping_jack": Family(jumping_jack, 1.0, lambda r: {"reach": _u(r, 120, 165)}),
    "squat": Family(squat, 0.55, lambda r: {"arms": _u(r, 0, 1), "rest": _u(r, 0.0, 0.3)}),
    "punch": Family(punch, 1.5, lambda r: {"height": _u(r, 70, 100), "jabs": float(r.random() < 0.25)}),
    "hand_to_mouth": Family(hand_to_mouth, 0.55, lambda r: {
        "rest_up": _u(r, 0, 0.14), "tilt": _u(r, 5, 30), "offset": _u(r, 0.0, 0.07),
        "elbow_up": _u(r, -0.25, 0.25) if r.random() < 0.6 else 0.0, "rest": _u(r, 0.0, 0.5)}),
    "kick": Family(kick, 0.7, lambda r: {"height": _u(r, 30, 90), "side_kick": float(r.random() < 0.35),
                                         "rest": _u(r, 0.0, 0.6)}),
    "march": Family(march, 0.9, lambda r: {"knee": _u(r, 55, 95), "hands_out": float(r.random() < 0.4)}),
    "arm_circles": Family(arm_circles, 1.2, lambda r: {"radius": _u(r, 0.35, 2.5),
                                                       "direction": 1.0 if r.random() < 0.5 else -1.0}),
    "bow": Family(bow, 0.5, lambda r: {"depth": _u(r, 45, 85), "rest": _u(r, 0.0, 0.5)}),
    "swing": Family(swing, 0.6, _no_styles),
    "none": Family(no_action, 0.5, lambda r: {"kind": float(r.integers(len(NO_ACTION_KINDS))),
                                              **{f"c{i}": _u(r, -1, 1) for i in range(16)}}),
}


# Style sets (`tools.synth --styles`). `base` is the generator's original motions. `wide` (the default
# checkpoint's data until the `kicks` run) adds styles seen in real footage: kicks with the arms hanging or out for
# balance instead of a guard, and drinking/eating that picks the cup up from a table at arm's length. Drawn
# after the base style from the same generator, so `base` output stays byte-identical to what it was before
# `wide` existed.
#
# `kicks` (the default checkpoint's data since 2026-12-07) is `wide` with every kick a visible kick. In `base`/`wide` the peak thigh angle is drawn from 30-90
# degrees and scaled by the clip's amplitude (x0.65-1.12), so the lowest kicks lift the thigh ~20 degrees:
# no_action's walking steps swing it 12-24 degrees, so those clips carried a label their poses cannot
# support (measured: the pose-only stream read 3 of the 6 clean test kicks with an ankle lift under 0.2 leg
# lengths as something else, 2 of 20 with a higher lift). `kicks` draws 50-90 (knee to hip height, what the
# kick's docstring always said) and, for single-repetition kicks (`rest` > 0, up to 6 s a cycle), places the
# kick's peak inside the clip (4 % of `wide`'s kick clips never reached it). Drawn after `wide`'s styles.
WIDE_STYLES: dict[str, Callable[[np.random.Generator], Style]] = {
    "hand_to_mouth": lambda r: {"reach": (_u(r, -1, 1) or 1e-3) if r.random() < 0.4 else 0.0},
    "kick": lambda r: {"arms": _u(r, 0, 1)},
}
KICK_PEAK_PHASE = 0.44   # where in its cycle `kick` reaches its peak (its keyframes)
KICKS_STYLES: dict[str, Callable[[np.random.Generator], Style]] = {
    "kick": lambda r: {"height": _u(r, 50, 90), "peak_at": _u(r, 0.2, 0.8), "peak_phase": KICK_PEAK_PHASE},
}
# each set's layers over the base style, drawn in this order (so each set extends the one before unchanged)
STYLE_LAYERS: dict[str, tuple[dict[str, Callable[[np.random.Generator], Style]], ...]] = {
    "base": (), "wide": (WIDE_STYLES,), "kicks": (WIDE_STYLES, KICKS_STYLES)}
STYLE_SETS = tuple(STYLE_LAYERS)


def draw_style(family: str, rng: np.random.Generator, style_set: str = "base") -> Style:
    """One clip's style of `family` from the given style set."""
    if style_set not in STYLE_SETS:
        raise ValueError(f"unknown style set {style_set!r} (choose from {', '.join(STYLE_SETS)})")
    style = FAMILIES[family].styles(rng)
    for layer in STYLE_LAYERS[style_set]:
        if family in layer:
            style.update(layer[family](rng))
    return style


@dataclass(frozen=True)
class Timing:
    """Per-clip timing: speed factor, start phase, amplitude and a slow time warp (s, cycles, -, s, rad)."""

    speed: float
    phase: float
    amp: float
    warp: float
    warp_phase: float


def random_timing(rng: np.random.Generator) -> Timing:
    """Real people vary a lot: tempo x0.6-1.6 of the family's rate, amplitude x0.65-1.12."""
    return Timing(speed=float(rng.uniform(0.6, 1.6)), phase=float(rng.uniform(0, 1)),
                  amp=float(rng.uniform(0.65, 1.12)), warp=float(rng.uniform(0.0, 0.08)),
                  warp_phase=float(rng.uniform(0, 2 * np.pi)))


def animate(family: str, t: np.ndarray, timing: Timing, side: str, style: Style | None = None) -> Pose:
    """Pose trajectory at times t (s): the family's phase function under this clip's timing and style
    (default: the family's first style, drawn from a fixed seed)."""
    fam = FAMILIES[family]
    if style is None:
        style = fam.styles(np.random.default_rng(0))
    warped = t + timing.warp * np.sin(2 * np.pi * t / 1.7 + timing.warp_phase)
    rest = float(style.get("rest", 0.0))
    phase = timing.phase
    if "peak_at" in style:   # put the cycle's `peak_phase` at that fraction of the clip (one cycle lasts 1/(1-rest))
        tp = t[0] + style["peak_at"] * (t[-1] - t[0])
        tp_warped = tp + timing.warp * np.sin(2 * np.pi * tp / 1.7 + timing.warp_phase)
        phase = float((style["peak_phase"] - fam.hz * timing.speed * tp_warped) % (1.0 / (1.0 - rest)))
    ph = fam.hz * timing.speed * warped + phase
    if rest > 0:   # single repetitions: the movement at its own speed, then standing for a while
        cycles = ph * (1.0 - rest)
        u = np.minimum((cycles % 1.0) / (1.0 - rest), 1.0 - 1e-6)
        ph = np.floor(cycles) + u
    pose = fam.fn(ph, side, timing.amp, style)
    n = len(t)
    sway = 1.5 * np.sin(2 * np.pi * 0.35 * t + timing.warp_phase)
    pose["lean"] = pose.get("lean", np.zeros(n)) + sway
    for k in SEGMENTS:
        pose.setdefault(k, _rest(n)[k])
    return pose
