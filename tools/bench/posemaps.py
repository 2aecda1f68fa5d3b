"""Pose-map rendering speed: core.posemaps vs a naive per-person, per-bone loop (one core).

Run ``taskset -c 0 python -m tools.bench posemaps``. Poses are synthetic OpenPose-18 people (a
standing template, random limb angles, 20-50 map pixels tall, random positions), all joints scored
above the threshold, so every bone of every person is drawn (the worst realistic case for 5 people).
The naive baseline lives here only: it is the released renderer's arithmetic written as plain loops,
used as the speed yardstick and as an independent cross-check in tests/test_posemaps.py.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from core.skeletons import Skeleton, get_skeleton

# OpenPose-18 template for a 1-unit-tall person, origin at the neck, y down.
_TEMPLATE = np.array([
    [0.0, -0.12], [0.0, 0.0], [-0.11, 0.0], [-0.14, 0.18], [-0.15, 0.33], [0.11, 0.0], [0.14, 0.18],
    [0.15, 0.33], [-0.07, 0.38], [-0.08, 0.62], [-0.08, 0.86], [0.07, 0.38], [0.08, 0.62], [0.08, 0.86],
    [-0.03, -0.15], [0.03, -0.15], [-0.06, -0.13], [0.06, -0.13],
], dtype=np.float64)


def synthetic_people(rng: np.random.Generator, frames: int, persons: int, size: int = 56,
                     height: tuple[float, float] = (20.0, 50.0)) -> tuple[np.ndarray, np.ndarray]:
    """OpenPose-18 ``coords (T, P, 18, 2)`` in map pixels and ``scores (T, P, 18)`` in [0.3, 1)."""
    h = rng.uniform(*height, size=(frames, persons, 1, 1))
    tilt = rng.uniform(-0.4, 0.4, size=(frames, persons, 1))
    c, s = np.cos(tilt), np.sin(tilt)
    pts = _TEMPLATE[None, None] + rng.normal(0, 0.04, size=(frames, persons, 18, 2))
    rot = np.stack([c * pts[..., 0] - s * pts[..., 1], s * pts[..., 0] + c * pts[..., 1]], axis=-1)
    centre = rng.uniform(0.2 * size, 0.8 * size, size=(frames, persons, 1, 2))
    coords = (rot * h + centre - np.array([0.0, 0.35]) * h).astype(np.float32)
    scores = rng.uniform(0.3, 1.0, size=(frames, persons, 18)).astype(np.float32)
    return coords, scores


def naive_render(coords: np.ndarray, scores: np.ndarray, skeleton: Skeleton | str, size: int = 56,
                 sigma: float = 0.5, paf_width: float = 1.0, score_thr: float = 0.1) -> np.ndarray:
    """Straightforward released-code rendering: full-grid float32 maps, one person and bone at a time."""
    sk = get_skeleton(skeleton)
    coords = np.asarray(coords, np.float32)
    scores = np.asarray(scores, np.float32)
    t, p, j = scores.shape
    thr, sig, w = np.float32(score_thr), np.float32(sigma), np.float32(paf_width)
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32), indexing="ij")
    out = np.zeros((t, sk.num_channels, size, size), np.float32)
    for f in range(t):
        for q in range(p):
            for k in range(j):
                if scores[f, q, k] > thr:
                    x, y = coords[f, q, k]
                    out[f, k] += np.exp(-(((xx - x) / sig) ** 2) / 2 - (((yy - y) / sig) ** 2) / 2)
        np.minimum(out[f, :j], 1, out=out[f, :j])
        for l, (a, b) in enumerate(sk.bones):
            acc = np.zeros((2, size, size), np.float32)
            cnt = np.zeros((size, size), np.float32)
            for q in range(p):
                if not (scores[f, q, a] >= thr and scores[f, q, b] >= thr):
                    continue
                pa, pb = coords[f, q, a], coords[f, q, b]
                vec = pb - pa
                norm = np.sqrt(vec[0] * vec[0] + vec[1] * vec[1])
                if norm == 0:
                    continue
                v = vec / norm
                d = v[0] * (xx - pa[0]) + v[1] * (yy - pa[1])
                dp = np.abs(v[1] * (xx - pa[0]) + (-v[0]) * (yy - pa[1]))
                m = ((d >= 0) & (d <= norm) & (dp <= w)).astype(np.float32)
                acc += m * v[:, None, None]
                cnt += m
            cnt[cnt == 0] = 1
            out[f, j + 2 * l: j + 2 * l + 2] = acc / cnt
    return out


def _median_ms(fn, repeats: int) -> tuple[float, float]:
    """Median wall and median CPU (this thread) milliseconds per call. On a shared, loaded machine
    the wall time includes waiting for the core; the CPU time is what the call itself costs."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3)


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persons", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8, help="frames per batched call (a clip)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per configuration")
    parser.add_argument("--naive-repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (1 = one core)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from core.posemaps import render_pose_maps

    if args.persons < 0 or args.frames <= 0 or args.repeats <= 0 or args.naive_repeats <= 0:
        Console(stderr=True).print("[red]error:[/] persons >= 0, frames/repeats/naive-repeats > 0 required")
        return 2
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    console = Console()
    clip_c, clip_s = synthetic_people(rng, args.frames, args.persons)
    one_c, one_s = clip_c[:1], clip_s[:1]
    out1 = np.zeros((1, 52, 56, 56), np.float32)

    table = Table(title=f"pose maps, {args.persons} persons, OpenPose-18 (18 joints, 17 bones), 56x56, "
                        f"median of repeats, {args.threads} thread(s)")
    for col in ("case", "wall ms / call", "wall ms / frame", "CPU ms / frame", "vs naive (CPU)"):
        table.add_column(col, justify="right" if col != "case" else "left")
    with console.status("timing naive baseline"):
        render_pose_maps(one_c, one_s, "openpose18")  # warm-up
        naive = _median_ms(lambda: naive_render(one_c, one_s, "openpose18"), args.naive_repeats)
    with console.status("timing core.posemaps"):
        single = _median_ms(lambda: render_pose_maps(one_c, one_s, "openpose18", out=out1), args.repeats)
        clip = _median_ms(lambda: render_pose_maps(clip_c, clip_s, "openpose18"), max(args.repeats // 4, 1))
    n = args.frames
    table.add_row("naive loop, 1 frame", f"{naive[0]:.3f}", f"{naive[0]:.3f}", f"{naive[1]:.3f}", "1.0x")
    table.add_row("core.posemaps, 1 frame (live)", f"{single[0]:.3f}", f"{single[0]:.3f}", f"{single[1]:.3f}",
                  f"{naive[1] / single[1]:.1f}x")
    table.add_row(f"core.posemaps, {n} frames", f"{clip[0]:.3f}", f"{clip[0] / n:.3f}", f"{clip[1] / n:.3f}",
                  f"{naive[1] * n / clip[1]:.1f}x")
    console.print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"1-min load average during the run: {load:.2f} on {os.cpu_count()} CPUs")
    err = np.abs(render_pose_maps(clip_c, clip_s, "openpose18") - naive_render(clip_c, clip_s, "openpose18")).max()
    console.print(f"max |fast - naive| on the benchmark poses: {err:.2e}")
    return 0
