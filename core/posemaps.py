"""Keypoints -> pose maps (Gaussian joint heatmaps + part affinity fields), the pose stream's input.

This reproduces the released IntegralAction renderer (``main/model.py``, ``render_gaussian_heatmap``
and ``render_paf``) to within 1e-6 of its float32 output, at ~1 ms per frame on one loaded CPU core
(docs/posemaps.md) instead of materialising a (persons x bones x 56 x 56) tensor:

* heatmaps: ``exp(-a - b) = exp(-a) * exp(-b)``, so each joint's Gaussian is an outer product of a
  row and a column vector, and the sum over persons is a tiny batched matmul;
* PAFs: per (person, bone) and per row, only the few columns where the bone rectangle can cross the
  row are tested (exactly, in float32), then the hits are scattered with ufunc.at;
  cost grows with the rectangles' area, not with persons x bones x 56 x 56.

Membership is a hard threshold, so a pixel at the edge of a bone's rectangle must be decided exactly
as the released code decides it. The released arithmetic is float32 with the order
``v = (P_b - P_a) / sqrt(vx*vx + vy*vy)``, ``d = vx*(x - ax) + vy*(y - ay)`` (each product rounded,
then the sum) and ``d_perp = |vy*(x - ax) + (-vx)*(y - ay)|``; we compute the same roundings in the
same order (the x-only and y-only products are separable, which does not change any rounding).
Score thresholds are compared in float32, so a score of exactly float32(0.1) counts as 0.1.
"""
from __future__ import annotations

import threading

import numpy as np

from core.skeletons import Skeleton, get_skeleton

__all__ = ["render_pose_maps", "select_top_k", "THRESHOLD_MODES"]

THRESHOLD_MODES = ("released", "paper")


def select_top_k(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Indices ``(T, min(P, top_k))`` of the persons with the highest mean joint score per frame,
    descending, ties kept in input order (the released loaders' person selection)."""
    t, p = scores.shape[:2]
    if p == 0:
        return np.zeros((t, 0), dtype=np.int64)
    mean = scores.astype(np.float64).mean(axis=2)
    order = np.argsort(-mean, axis=1, kind="stable")
    return order[:, :top_k]


def _validate(coords: np.ndarray, scores: np.ndarray, sk: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    coords = np.asarray(coords, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    j = sk.num_joints
    if coords.ndim != 4 or coords.shape[2:] != (j, 2):
        raise ValueError(f"coords must have shape (T, P, {j}, 2) for {sk.name}, got {coords.shape}")
    if scores.shape != coords.shape[:3]:
        raise ValueError(f"scores must have shape {coords.shape[:3]}, got {scores.shape}")
    return coords, scores


def render_pose_maps(coords: np.ndarray, scores: np.ndarray, skeleton: Skeleton | str, size: int = 56, *,
                     sigma: float = 0.5, paf_width: float = 1.0, top_k: int = 5, score_thr: float = 0.1,
                     threshold_mode: str = "released", out: np.ndarray | None = None) -> np.ndarray:
    """Render ``(T, J + 2B, size, size)`` float32 pose maps from ``coords (T, P, J, 2)`` (x, y in map
    pixels, pixel (row i, col j) is the point x=j, y=i) and ``scores (T, P, J)``.

    Channels: J heatmaps, then per bone its PAF x and y channels. ``threshold_mode="released"``: heatmap
    needs score > thr, PAF needs both scores >= thr (the released code); ``"paper"``: >= for both.
    Only the ``top_k`` persons by mean joint score are drawn. ``out`` (C-contiguous float32 of the
    output shape) is filled in place and returned, to avoid an allocation per frame live.
    """
    sk = get_skeleton(skeleton)
    if threshold_mode not in THRESHOLD_MODES:
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {threshold_mode!r}")
    coords, scores = _validate(coords, scores, sk)
    t, p, j = coords.shape[:3]
    nb = sk.num_bones
    shape = (t, j + 2 * nb, size, size)
    if out is None:
        out = np.zeros(shape, dtype=np.float32)
    else:
        if out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {shape}")
        out.fill(0.0)
    if t == 0 or p == 0 or top_k <= 0:
        return out

    if p > top_k:
        keep = select_top_k(scores, top_k)
        coords = np.take_along_axis(coords, keep[:, :, None, None], axis=1)
        scores = np.take_along_axis(scores, keep[:, :, None], axis=1)
        p = top_k

    finite = np.isfinite(coords).all(axis=-1)
    if not finite.all():  # the released code would write NaN; a lost joint is simply not drawn here
        coords = np.where(finite[..., None], coords, np.float32(0))
        scores = np.where(finite, scores, np.float32(0))
    thr = np.float32(score_thr)
    hm_valid = scores > thr if threshold_mode == "released" else scores >= thr
    _render_heatmaps(coords, hm_valid, size, np.float32(sigma), out[:, :j])
    if nb:
        _render_pafs(coords, scores >= thr, sk, size, np.float32(paf_width), out, j)
    return out


def _render_heatmaps(coords: np.ndarray, valid: np.ndarray, size: int, sigma: np.float32,
                     out: np.ndarray) -> None:
    """Sum over persons of unnormalised Gaussians (clamped at 1), as an outer product per joint."""
    t, p, j = valid.shape
    grid = np.arange(size, dtype=np.float32)
    # (2, T, J, P, size) for x and y at once: same float32 steps as the released ((grid - c) / sigma) ** 2 / 2
    c = coords.transpose(3, 0, 2, 1)[..., None]
    g = np.square((grid - c) / sigma)
    g /= np.float32(-2)
    np.exp(g, out=g)
    gx, gy = g[0], g[1]
    gy *= valid.transpose(0, 2, 1)[..., None]
    # heat[t, j, y, x] = sum_p gy[t, j, p, y] * gx[t, j, p, x]
    heat = np.matmul(gy.reshape(t * j, p, size).transpose(0, 2, 1), gx.reshape(t * j, p, size))
    np.minimum(heat, np.float32(1), out=heat)
    out[...] = heat.reshape(t, j, size, size)


def _render_pafs(coords: np.ndarray, valid: np.ndarray, sk: Skeleton, size: int, width: np.float32,
                 out: np.ndarray, ch0: int) -> None:
    """Mean over contributing persons of each bone's unit vector on its rectangle (|d_perp| <= width,
    0 <= d <= |bone|). Only candidate pixels near each bone are tested (per row, where the rectangle
    can cross it), then scattered with ufunc.at and divided by the per-pixel person count."""
    t, p, j = valid.shape
    nb = sk.num_bones
    bones = np.asarray(sk.bones, dtype=np.int64)
    a = coords[:, :, bones[:, 0], :]  # (T, P, B, 2)
    b = coords[:, :, bones[:, 1], :]
    vec = b - a
    norm = np.sqrt(vec[..., 0] * vec[..., 0] + vec[..., 1] * vec[..., 1])  # float32, released order
    ok = valid[:, :, bones[:, 0]] & valid[:, :, bones[:, 1]] & (norm > 0) & np.isfinite(norm)
    if not ok.any():
        return
    # rows the bone's rectangle can touch: its bounding box grown by the half-width (+1 px of slack)
    lo = np.minimum(a, b) - (float(width) + 1.0)
    hi = np.maximum(a, b) + (float(width) + 1.0)
    ok &= np.all((hi >= 0) & (lo <= size - 1), axis=-1)
    ti, pi, li = np.nonzero(ok)
    if ti.size == 0:
        return
    a, vec, norm = a[ti, pi, li], vec[ti, pi, li], norm[ti, pi, li]  # (K, 2), (K, 2), (K,)
    v = vec / norm[:, None]  # float32 division, as the released code
    ylo = np.clip(np.floor(lo[ti, pi, li, 1]), 0, size - 1).astype(np.int64)
    yhi = np.clip(np.ceil(hi[ti, pi, li, 1]), 0, size - 1).astype(np.int64)

    # one entry per (bone, row)
    rk, y = _ragged(ylo, yhi - ylo + 1)
    # Candidate columns per row: where the rectangle's two slabs (0 <= d <= L, |d_perp| <= w) cross
    # the row, in float64 with a tolerance well above float32 rounding, plus one pixel each side.
    # The exact float32 test below then decides; the candidates are only a superset.
    v64, a64, n64 = v.astype(np.float64), a.astype(np.float64), norm.astype(np.float64)
    tol = 4e-6 * (np.abs(a64).sum(axis=1) + n64 + 2 * size + 1.0)
    vx, vy = v64[rk, 0], v64[rk, 1]
    dy = y - a64[rk, 1]
    e = tol[rk]
    lo1, hi1 = _slab(vx, -vy * dy - e, n64[rk] - vy * dy + e)         # vx*dx + vy*dy in [0, L]
    lo2, hi2 = _slab(vy, vx * dy - float(width) - e, vx * dy + float(width) + e)  # |vy*dx - vx*dy| <= w
    xlo = np.maximum(lo1, lo2) + a64[rk, 0]
    xhi = np.minimum(hi1, hi2) + a64[rk, 0]
    with np.errstate(invalid="ignore"):
        clo = np.ceil(np.clip(xlo, -2.0, size + 1.0)) - 1
        chi = np.floor(np.clip(xhi, -2.0, size + 1.0)) + 1
    clo = np.maximum(clo, 0).astype(np.int64)
    chi = np.minimum(chi, size - 1).astype(np.int64)
    rr, x = _ragged(clo, np.maximum(chi - clo + 1, 0))
    k = rk[rr]
    y = y[rr]

    # the released membership test, same float32 roundings in the same order
    vxf, vyf = v[k, 0], v[k, 1]
    dxf = x.astype(np.float32) - a[k, 0]
    dyf = y.astype(np.float32) - a[k, 1]
    d = vxf * dxf + vyf * dyf
    dp = np.abs(vyf * dxf + (-vxf) * dyf)
    hit = np.flatnonzero((d >= 0) & (d <= norm[k]) & (dp <= width))
    k, pix = k[hit], y[hit] * size + x[hit]

    # scatter: sums and person counts per (frame, bone, pixel), then divide at the touched pixels only
    npix = size * size
    cell = (ti[k] * nb + li[k]) * npix + pix
    count = _scratch(t * nb * npix)  # zeros; reused so its pages are not faulted in on every call
    np.add.at(count, cell, np.ones(cell.size, dtype=np.float32))  # array operand: ufunc.at fast path
    flat = out.reshape(-1)  # out is the C-contiguous (T, C, size, size) stack
    assert np.may_share_memory(flat, out), "output stack was copied"
    bx = (ti[k] * out.shape[1] + ch0 + 2 * li[k]) * npix + pix  # bone l: x at ch0+2l, y at ch0+2l+1
    by = bx + npix
    np.add.at(flat, bx, v[k, 0])
    np.add.at(flat, by, v[k, 1])
    c = count[cell]
    count[cell] = 0  # hand the scratch back all-zero
    flat[bx] = flat[bx] / c
    flat[by] = flat[by] / c


_LOCAL = threading.local()


def _scratch(n: int) -> np.ndarray:
    """A per-thread all-zero float32 buffer of at least ``n`` elements (callers re-zero what they touch)."""
    buf = getattr(_LOCAL, "count", None)
    if buf is None or buf.size < n:
        buf = np.zeros(max(n, 64 * 1024), dtype=np.float32)
        _LOCAL.count = buf
    return buf[:n]


def _ragged(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten the integer ranges ``[start[i], start[i] + length[i])``: returns (owner i, value)."""
    owner = np.repeat(np.arange(start.size), length)
    first = np.cumsum(length) - length
    return owner, start[owner] + (np.arange(owner.size) - first[owner])


def _slab(c: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval of dx with ``lo <= c * dx <= hi`` (all of R if c == 0 and 0 is inside, else empty)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p, q = lo / c, hi / c
    pos = c > 0
    neg = c < 0
    inside = (lo <= 0) & (hi >= 0)
    out_lo = np.where(pos, p, np.where(neg, q, np.where(inside, -np.inf, np.inf)))
    out_hi = np.where(pos, q, np.where(neg, p, np.where(inside, np.inf, -np.inf)))
    return out_lo, out_hi
