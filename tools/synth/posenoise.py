"""Turn ground-truth keypoints into what a 2D pose estimator would have reported.

Why: a model trained on perfect keypoints learns to trust them blindly; the paper's point is that the
pose stream is unreliable exactly when the person is cut off, occluded or missed, and the gate must
learn that from the scores. Noise is relative to the figure's size, temporally correlated (estimators
jitter smoothly, not white), larger at extremities, and scores drop where joints are hidden.
"""
from __future__ import annotations

import numpy as np

from tools.synth.render import OCCLUDED, OUTSIDE, VISIBLE, RenderedClip

# per-joint noise multipliers (COCO-17 order): face points are localised best, wrists/ankles worst
_JOINT_SIGMA = np.array([0.6, 0.5, 0.5, 0.7, 0.7, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.2, 1.2, 1.2, 1.2, 1.4, 1.4],
                        np.float32)
_FLIP = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
FAILURES = ("out_of_frame", "missing", "jitter", "occlusion")


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along axis 0."""
    e = rng.standard_normal(shape).astype(np.float32)
    out = np.empty_like(e)
    out[0] = e[0]
    k = np.sqrt(1 - rho ** 2)
    for i in range(1, shape[0]):
        out[i] = rho * out[i - 1] + k * e[i]
    return out


def observe(clip: RenderedClip, rng: np.random.Generator, failure: str | None, width: int, height: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Estimator-like `(coords (F,P,17,2), scores (F,P,17))` in frame pixels: the main person, then any
    bystanders (the clip's failure applies to the main person)."""
    people = [(clip.coords, clip.state, clip.scale, clip.yaw, failure)]
    people += [(b.coords, b.state, b.scale, b.yaw, None) for b in clip.bystanders]
    out = [_observe_person(c, st, sc, yaw, rng, f, width, height) for c, st, sc, yaw, f in people]
    return np.stack([o[0] for o in out], 1), np.stack([o[1] for o in out], 1)


def _observe_person(coords_gt: np.ndarray, state: np.ndarray, scale: np.ndarray, yaw: np.ndarray | None,
                    rng: np.random.Generator, failure: str | None, width: int, height: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """One person, as MoveNet reports real people (measured on ../shared/data/videos and real_actions_dev:
    visible joints score ~0.45-0.85 with a per-person level, cut-off legs ~0.1-0.3, small people lower).

    * positions: AR(1) noise of ~1.4 % of the body height, larger at wrists/ankles, x2.5 when occluded;
    * scores: a per-clip level U(0.5, 0.85), per-joint offsets, smooth per-frame wobble; occluded joints
      0.1-0.45, joints outside the frame 0-0.25 at a clamped position (estimators report points inside);
    * left/right confusion on whole frames, frequent in profile views (as MoveNet does);
    * fewer than 20 % of the joints visible: nobody detected (MoveNet still finds people in profile).
    """
    n = coords_gt.shape[0]
    size = scale[:, None, None]                       # pixels per body height
    sigma = 0.014 * size * _JOINT_SIGMA[None, :, None]
    if failure == "jitter":
        sigma = sigma * 3.5
    occluded = state == OCCLUDED
    outside = state == OUTSIDE
    sigma = np.where(occluded[..., None], sigma * 2.5, sigma)
    coords = coords_gt + _ar1(rng, (n, 17, 2), 0.6) * sigma
    level = rng.uniform(0.5, 0.85)
    if float(np.median(scale)) < 0.3 * height:        # small people are found less surely
        level *= rng.uniform(0.75, 0.95)
    wobble = _ar1(rng, (n, 17), 0.7) * 0.07
    scores = np.clip(level + wobble - 0.05 * (_JOINT_SIGMA - 1)[None], 0.2, 0.97)
    scores = np.where(occluded, rng.uniform(0.1, 0.45, (n, 17)), scores)
    scores = np.where(outside, rng.uniform(0.0, 0.25, (n, 17)), scores)
    swap_p = 0.02
    if yaw is not None and float(np.mean(np.abs(yaw))) > 55:
        swap_p = 0.08
    if failure == "jitter":
        jump = rng.random((n, 17)) < 0.06                    # gross outliers, like a mis-assigned part
        coords += jump[..., None] * rng.normal(0, 0.15, (n, 17, 2)) * size
        scores = np.where(jump, scores * rng.uniform(0.4, 0.9, (n, 17)), scores)
        swap_p = max(swap_p, 0.06)
    swap = rng.random(n) < swap_p                            # left/right confusion on a whole frame
    coords[swap] = coords[swap][:, _FLIP]
    scores[swap] = scores[swap][:, _FLIP]
    # estimators report points inside the image: clamp, the low score carries the uncertainty
    coords[..., 0] = np.clip(coords[..., 0], 0, width - 1)
    coords[..., 1] = np.clip(coords[..., 1], 0, height - 1)
    visible_frac = (state == VISIBLE).mean(1)
    lost = visible_frac < 0.2                                # too little of the person: nobody detected
    if failure == "missing":
        for _ in range(int(rng.integers(1, 4))):
            start = int(rng.integers(0, max(n - 4, 1)))
            lost[start:start + int(rng.integers(4, 16))] = True
    coords[lost] = 0.0
    scores[lost] = 0.0
    return coords.astype(np.float32), scores.astype(np.float32)
