"""Procedural textured scenes and context objects (the appearance cues an RGB stream can latch onto).

Why procedural: every scene type has a consistent, learnable style (palette + texture layout) while each
clip's instance is re-randomised (offsets, colour jitter, clutter), like a Kinetics class's typical venue.
Images are BGR uint8, as OpenCV writes them.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _jit(rng: np.random.Generator, color, amount: int = 18) -> np.ndarray:
    return np.clip(np.asarray(color, np.float32) + rng.integers(-amount, amount + 1, 3), 0, 255)


def _vgrad(h: int, w: int, top, bottom) -> np.ndarray:
    a = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(np.asarray(top, np.float32) * (1 - a) + np.asarray(bottom, np.float32) * a, (h, w, 3)).copy()


def _noise(rng: np.random.Generator, h: int, w: int, cell: int, amp: float) -> np.ndarray:
    """Smooth value noise (upsampled random grid): grass, sand, carpet grain."""
    g = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)[..., None] * amp


def _fine(rng: np.random.Generator, h: int, w: int, amp: float) -> np.ndarray:
    return rng.standard_normal((h, w, 1)).astype(np.float32) * amp


def _stripes(h: int, w: int, period: float, axis: int, phase: float) -> np.ndarray:
    x = np.arange(w if axis == 1 else h, dtype=np.float32)
    s = (np.sin(2 * np.pi * (x / period + phase)) > 0).astype(np.float32)
    return s[None, :, None] if axis == 1 else s[:, None, None]


@dataclass
class Scene:
    """A background plate larger than the frame (the camera pans inside it) and its floor row."""

    image: np.ndarray
    horizon: int          # first floor row in plate coordinates


def _sky(rng, h, w, hz):
    return _vgrad(hz, w, _jit(rng, (235, 190, 120)), _jit(rng, (250, 230, 200)))


def make_scene(name: str, w: int, h: int, rng: np.random.Generator) -> Scene:
    """Render scene `name` as a (h, w) plate; the horizon sits at 35-55 %% of the height."""
    hz = int(h * rng.uniform(0.36, 0.52))
    img = np.zeros((h, w, 3), np.float32)
    fh = h - hz
    ph = float(rng.uniform(0, 1))
    if name == "harbor":
        img[:hz] = _sky(rng, h, w, hz)
        sea = _vgrad(fh, w, _jit(rng, (150, 110, 40)), _jit(rng, (110, 80, 20)))
        sea += _stripes(fh, w, rng.uniform(5, 8), 0, ph) * 25 + _noise(rng, fh, w, 6, 10)
        img[hz:] = sea
        pier = int(h * 0.85)
        img[pier:] = _jit(rng, (60, 100, 140)) + _stripes(h - pier, w, 9, 1, ph) * 25
        for _ in range(int(rng.integers(1, 3))):          # sailboats on the horizon
            x = int(rng.integers(0, w))
            cv2.fillConvexPoly(img, np.array([[x, hz - 2], [x + 10, hz - 2], [x + 5, hz - 16]]), (250, 250, 250))
        hz = pier
    elif name == "gym":
        img[:hz] = _jit(rng, (200, 205, 210)) + _fine(rng, hz, w, 4)
        cv2.rectangle(img, (0, int(hz * 0.45)), (w, int(hz * 0.6)), _jit(rng, (40, 40, 170)).tolist(), -1)
        floor = _jit(rng, (90, 150, 205)) + _stripes(fh, w, rng.uniform(7, 10), 1, ph)[:, :, :] * 22
        img[hz:] = floor + _noise(rng, fh, w, 3, 8)
        cv2.line(img, (0, hz + fh // 2), (w, hz + fh // 3), (240, 240, 240), 2)
    elif name == "weight_room":
        img[:hz] = _jit(rng, (120, 120, 125)) + _stripes(hz, w, rng.uniform(14, 22), 1, ph) * 18
        for x in range(int(ph * 25), w, 25):                 # racks
            cv2.rectangle(img, (x, int(hz * 0.2)), (x + 3, hz), (40, 40, 45), -1)
        tile = (_stripes(fh, w, 16, 1, ph) + _stripes(fh, w, 16, 0, ph)) % 2
        img[hz:] = _jit(rng, (45, 45, 50)) + tile * 20 + _fine(rng, fh, w, 6)
    elif name == "boxing_ring":
        img[:hz] = _jit(rng, (30, 25, 25)) + _noise(rng, hz, w, 3, 25)           # dark crowd
        img[hz:] = _vgrad(fh, w, _jit(rng, (170, 110, 50)), _jit(rng, (140, 80, 30))) + _fine(rng, fh, w, 4)
        for k in range(3):                                                       # ropes
            y = int(hz * (0.45 + 0.2 * k))
            cv2.line(img, (0, y), (w, y + int(rng.integers(-3, 4))), (40, 40, 210), 2)
        cv2.rectangle(img, (int(w * rng.uniform(0.02, 0.1)), int(hz * 0.35)),
                      (int(w * rng.uniform(0.02, 0.1)) + 5, hz + 8), (200, 200, 210), -1)
    elif name == "cafe":
        brick = _jit(rng, (70, 90, 160))
        img[:hz] = brick + _fine(rng, hz, w, 8)
        for r, y in enumerate(range(0, hz, 6)):
            img[y] = (200, 210, 220)
            for x in range((r % 2) * 7, w, 14):
                img[y:y + 6, x] = (200, 210, 220)
        win = int(rng.integers(0, w // 2))
        cv2.rectangle(img, (win, int(hz * 0.15)), (win + w // 4, int(hz * 0.7)), _jit(rng, (230, 210, 170)).tolist(), -1)
        cv2.rectangle(img, (win, int(hz * 0.15)), (win + w // 4, int(hz * 0.7)), (40, 50, 60), 2)
        chk = (_stripes(fh, w, 14, 1, ph) + _stripes(fh, w, 10, 0, ph)) % 2
        img[hz:] = 30 + chk * 190 + _fine(rng, fh, w, 5)
    elif name == "beach":
        img[:hz] = _sky(rng, h, w, hz)
        sea_h = max(fh // 4, 3)
        img[hz:hz + sea_h] = _jit(rng, (170, 140, 40)) + _stripes(sea_h, w, 4, 0, ph) * 25
        sand = _jit(rng, (150, 200, 225)) + _noise(rng, fh - sea_h, w, 5, 12) + _fine(rng, fh - sea_h, w, 6)
        img[hz + sea_h:] = sand
        cv2.circle(img, (int(w * rng.uniform(0.6, 0.95)), int(hz * 0.3)), max(h // 14, 3), (120, 230, 255), -1)
        hz = hz + sea_h
    elif name == "soccer_field":
        img[:hz] = _sky(rng, h, w, hz)
        img[int(hz * 0.7):hz] = _jit(rng, (120, 120, 120)) + _noise(rng, hz - int(hz * 0.7), w, 2, 30)   # stands
        img[hz:] = _jit(rng, (50, 150, 60)) + _stripes(fh, w, rng.uniform(18, 26), 1, ph) * 22 + _noise(rng, fh, w, 4, 6)
        cv2.line(img, (0, hz + fh // 3), (w, hz + fh // 3 + 4), (245, 245, 245), 2)
        cv2.rectangle(img, (int(w * 0.75), int(hz * 0.5)), (w - 2, hz + 6), (250, 250, 250), 1)   # goal
    elif name == "street":
        img[:hz] = _jit(rng, (150, 170, 190)) + _stripes(hz, w, rng.uniform(20, 30), 1, ph) * 25
        for x in range(int(ph * 12), w, 12):
            for y in range(4, hz - 6, 10):
                cv2.rectangle(img, (x, y), (x + 5, y + 5), _jit(rng, (90, 70, 50)).tolist(), -1)
        img[hz:] = _jit(rng, (75, 75, 80)) + _fine(rng, fh, w, 9)
        y = hz + fh // 2
        for x in range(int(ph * 30), w, 30):
            cv2.rectangle(img, (x, y), (x + 14, y + 2), (80, 220, 240), -1)
    elif name == "snow":
        img[:hz] = _vgrad(hz, w, _jit(rng, (215, 205, 200)), _jit(rng, (240, 235, 230)))
        for _ in range(int(rng.integers(3, 6))):                                 # pines
            x = int(rng.integers(0, w))
            s = int(rng.integers(10, 20))
            cv2.fillConvexPoly(img, np.array([[x - s // 2, hz], [x + s // 2, hz], [x, hz - 2 * s]]), (40, 80, 30))
        img[hz:] = _jit(rng, (245, 240, 235), 8) + _noise(rng, fh, w, 5, 8)
        img += (rng.random((h, w, 1)) < 0.01) * 60.0
    elif name == "dojo":
        img[:hz] = _jit(rng, (200, 225, 235)) + _fine(rng, hz, w, 3)
        for x in range(int(ph * 16), w, 16):
            img[:hz, x] = (40, 60, 80)
        for y in range(0, hz, 14):
            img[y, :] = (40, 60, 80)
        tat = _jit(rng, (110, 180, 190)) + _stripes(fh, w, 3, 1, ph) * 10
        img[hz:] = tat
        for x in range(int(ph * 36), w, 36):
            img[hz:, x] = (30, 60, 60)
    elif name == "tennis_court":
        img[:hz] = _jit(rng, (60, 110, 40)) + _noise(rng, hz, w, 4, 12)           # hedge
        img[hz:] = _jit(rng, (150, 100, 40)) + _fine(rng, fh, w, 4)
        cv2.line(img, (0, hz + fh // 4), (w, hz + fh // 4), (250, 250, 250), 1)
        cv2.line(img, (w // 2, hz + fh // 4), (w // 2 + 10, h), (250, 250, 250), 1)
        net = hz + fh // 6
        cv2.line(img, (0, net), (w, net), (30, 30, 30), 3)
    elif name == "ballpark":
        img[:hz] = _jit(rng, (170, 130, 60)) + _noise(rng, hz, w, 3, 30)          # stands
        img[hz:] = _jit(rng, (50, 140, 50)) + _noise(rng, fh, w, 5, 8)
        dirt = hz + fh // 3
        img[dirt:] = _jit(rng, (70, 120, 170)) + _fine(rng, h - dirt, w, 8)
        cv2.fillConvexPoly(img, np.array([[w // 2 - 5, h - 6], [w // 2 + 5, h - 6], [w // 2, h - 2]]), (250, 250, 250))
    else:
        raise ValueError(f"unknown scene {name!r}")
    return Scene(np.clip(img, 0, 255).astype(np.uint8), hz)


@dataclass(frozen=True)
class ObjectStyle:
    """How a context object is placed: in the active hand, on the floor beside the figure, or hanging."""

    placement: str     # "hand" | "ground" | "hang"
    size: float        # body heights


OBJECTS: dict[str, ObjectStyle] = {
    "flag": ObjectStyle("ground", 0.9), "mat": ObjectStyle("ground", 0.5), "barbell": ObjectStyle("ground", 0.55),
    "punching_bag": ObjectStyle("hang", 0.5), "cup": ObjectStyle("hand", 0.1), "ice_cream": ObjectStyle("hand", 0.15),
    "ball": ObjectStyle("ground", 0.14), "traffic_cone": ObjectStyle("ground", 0.3), "snowman": ObjectStyle("ground", 0.5),
    "lantern": ObjectStyle("hang", 0.2), "racket": ObjectStyle("hand", 0.38), "bat": ObjectStyle("hand", 0.45),
}


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_object(img: np.ndarray, name: str, anchor: np.ndarray, s: float, axis: np.ndarray | None = None) -> None:
    """Draw object `name` at `anchor` (pixels; the floor point, the hang point or the hand) with size s px/body.

    `axis` is the hand's pointing direction in the image, for hand-held objects.
    """
    L = OBJECTS[name].size * s
    x, y = float(anchor[0]), float(anchor[1])
    aa = cv2.LINE_AA
    if name == "flag":
        cv2.line(img, _pt((x, y)), _pt((x, y - L)), (200, 200, 200), max(1, int(s * 0.015)), aa)
        cv2.fillConvexPoly(img, np.array([_pt((x, y - L)), _pt((x + L * 0.45, y - L * 0.85)), _pt((x, y - L * 0.7))]),
                           (30, 30, 220), aa)
    elif name == "mat":
        cv2.fillConvexPoly(img, np.array([_pt((x - L / 2, y)), _pt((x + L / 2, y)), _pt((x + L * 0.4, y - L * 0.12)),
                                          _pt((x - L * 0.4, y - L * 0.12))]), (160, 60, 150), aa)
        cv2.ellipse(img, _pt((x + L * 0.5, y - L * 0.08)), (max(int(L * 0.06), 1), max(int(L * 0.09), 1)), 0, 0, 360,
                    (130, 40, 120), -1, aa)
    elif name == "barbell":
        cv2.line(img, _pt((x - L / 2, y - L * 0.18)), _pt((x + L / 2, y - L * 0.18)), (170, 170, 175), max(1, int(L * 0.04)), aa)
        for dx in (-L * 0.4, L * 0.4):
            cv2.ellipse(img, _pt((x + dx, y - L * 0.18)), (max(int(L * 0.06), 1), max(int(L * 0.18), 1)), 0, 0, 360,
                        (25, 25, 25), -1, aa)
    elif name == "punching_bag":
        cv2.line(img, _pt((x, 0)), _pt((x, y)), (50, 50, 50), 1, aa)
        cv2.rectangle(img, _pt((x - L * 0.17, y)), _pt((x + L * 0.17, y + L)), (30, 30, 150), -1, aa)
        cv2.rectangle(img, _pt((x - L * 0.17, y + L * 0.4)), _pt((x + L * 0.17, y + L * 0.5)), (20, 20, 20), -1, aa)
    elif name == "cup":
        cv2.rectangle(img, _pt((x - L * 0.4, y - L * 0.9)), _pt((x + L * 0.4, y + L * 0.2)), (245, 245, 245), -1, aa)
        cv2.rectangle(img, _pt((x - L * 0.4, y - L * 0.9)), _pt((x + L * 0.4, y - L * 0.6)), (40, 90, 150), -1, aa)
    elif name == "ice_cream":
        cv2.fillConvexPoly(img, np.array([_pt((x - L * 0.25, y - L * 0.3)), _pt((x + L * 0.25, y - L * 0.3)),
                                          _pt((x, y + L * 0.4))]), (60, 150, 210), aa)
        cv2.circle(img, _pt((x, y - L * 0.45)), max(int(L * 0.3), 1), (190, 170, 250), -1, aa)
    elif name == "ball":
        cv2.circle(img, _pt((x, y - L / 2)), max(int(L / 2), 1), (245, 245, 245), -1, aa)
        cv2.circle(img, _pt((x, y - L / 2)), max(int(L / 5), 1), (20, 20, 20), -1, aa)
    elif name == "traffic_cone":
        cv2.fillConvexPoly(img, np.array([_pt((x - L * 0.3, y)), _pt((x + L * 0.3, y)), _pt((x, y - L))]), (0, 120, 255), aa)
        cv2.line(img, _pt((x - L * 0.17, y - L * 0.45)), _pt((x + L * 0.17, y - L * 0.45)), (250, 250, 250), max(1, int(L * 0.1)), aa)
    elif name == "snowman":
        for k, rr in ((0.25, 0.25), (0.62, 0.18), (0.88, 0.12)):
            cv2.circle(img, _pt((x, y - L * k)), max(int(L * rr), 1), (250, 250, 250), -1, aa)
            cv2.circle(img, _pt((x, y - L * k)), max(int(L * rr), 1), (180, 170, 170), 1, aa)
        cv2.line(img, _pt((x, y - L * 0.88)), _pt((x + L * 0.15, y - L * 0.86)), (0, 120, 255), 2, aa)
    elif name == "lantern":
        cv2.line(img, _pt((x, 0)), _pt((x, y)), (30, 30, 30), 1, aa)
        cv2.ellipse(img, _pt((x, y + L * 0.5)), (max(int(L * 0.35), 1), max(int(L * 0.5), 1)), 0, 0, 360, (40, 40, 220), -1, aa)
        cv2.ellipse(img, _pt((x, y + L * 0.5)), (max(int(L * 0.2), 1), max(int(L * 0.3), 1)), 0, 0, 360, (90, 170, 250), -1, aa)
    elif name in ("racket", "bat"):
        d = np.asarray(axis if axis is not None else (0.0, -1.0), np.float64)
        d = d / max(float(np.hypot(*d)), 1e-6)
        tip = np.array([x, y]) + d * L
        if name == "bat":
            cv2.line(img, _pt((x, y)), _pt(tip), (60, 120, 170), max(1, int(L * 0.07)), aa)
            cv2.line(img, _pt(np.array([x, y]) + d * L * 0.5), _pt(tip), (60, 120, 170), max(2, int(L * 0.12)), aa)
        else:
            head = np.array([x, y]) + d * L * 0.7
            cv2.line(img, _pt((x, y)), _pt(head), (40, 40, 40), max(1, int(L * 0.05)), aa)
            ang = float(np.degrees(np.arctan2(d[1], d[0])))
            cv2.ellipse(img, _pt(head), (max(int(L * 0.3), 1), max(int(L * 0.2), 1)), ang, 0, 360, (30, 200, 230), -1, aa)
            cv2.ellipse(img, _pt(head), (max(int(L * 0.22), 1), max(int(L * 0.13), 1)), ang, 0, 360, (200, 200, 200), -1, aa)
    else:
        raise ValueError(f"unknown object {name!r}")
