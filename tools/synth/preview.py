"""`python -m tools.synth.preview --out grid.png`: a frame grid of every class, in and out of context.

For the docs and for eyeballing: each class's row shows three moments of an in-context clip, then one
frame of the same motion in another class's scene with that class's object (as in test_out).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from core.cliflags import make_parser, parse_or_exit
from tools.synth.dataset import CATALOGUE
from tools.synth.render import ClipSpec, render_clip


def grid(classes: int = 10, seed: int = 0, frames: int = 72) -> np.ndarray:
    """BGR grid: one row per class, columns at 1/6, 1/2, 5/6 of an in-context clip + one out-of-context frame."""
    rows = []
    cats = CATALOGUE[:classes]
    for i, cd in enumerate(cats):
        other = cats[(i + 3) % len(cats)]
        inside = render_clip(ClipSpec(cd.family, cd.scene, cd.obj, seed=seed * 1000 + i, frames=frames))
        outside = render_clip(ClipSpec(cd.family, other.scene, other.obj, seed=seed * 1000 + 500 + i, frames=frames))
        tiles = [inside.frames[int(frames * k)] for k in (1 / 6, 1 / 2, 5 / 6)] + [outside.frames[frames // 2]]
        sep = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
        row = np.concatenate([tiles[0], tiles[1], tiles[2], sep, sep * 0, sep, tiles[3]], 1)
        cv2.putText(row, cd.name, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 2, cv2.LINE_AA)
        cv2.putText(row, cd.name, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    return np.concatenate(rows, 0)


def main(argv: list[str] | None = None) -> int:
    ap = make_parser(prog="python -m tools.synth.preview", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="PNG path")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--colors", type=int, default=96, help="palette size of the PNG (keeps it small)")
    args = parse_or_exit(ap, argv)
    if not 2 <= args.classes <= len(CATALOGUE):
        print(f"error: --classes must be between 2 and {len(CATALOGUE)}, got {args.classes}", file=sys.stderr)
        return 2
    from PIL import Image          # Pillow comes with matplotlib (dev extra); only the preview needs it
    img = grid(args.classes, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img[..., ::-1]).quantize(colors=args.colors).save(args.out, optimize=True)
    print(f"{args.out}: {img.shape[1]}x{img.shape[0]}, {args.out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
