"""`python -m tools.synth`: write the synthetic in-context / out-of-context action benchmark.

Presets set sizes; explicit flags override them. Same arguments -> identical pose caches (bytes) and
identical decoded video frames, whatever `--workers` is.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core.cliflags import make_parser, parse_or_exit
from tools.synth.dataset import CATALOGUE, SPLITS, SynthConfig, generate, plan
from tools.synth.motions import STYLE_SETS

PRESETS: dict[str, SynthConfig] = {
    # tiny: a pipeline check that generates in well under 30 s on one core
    "smoke": SynthConfig(classes=10, train_per_class=2, val_per_class=1, test_per_class=1, frames=48),
    # enough for a ~60-minute CPU training experiment
    "small": SynthConfig(classes=10, train_per_class=60, val_per_class=10, test_per_class=20),
    # what the default checkpoint is trained on: 2.5x the training clips of `small`, same test splits; a
    # 60-per-class val_out (690 videos): at 15 per class its top-1 had a ~2.8-point standard error, more than
    # the stage-2 rows it chooses between differ by (docs/results.md)
    "default": SynthConfig(classes=10, train_per_class=150, val_per_class=15, test_per_class=20, val_out_per_class=60),
    "full": SynthConfig(classes=10, train_per_class=200, val_per_class=30, test_per_class=50),
}


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 160x120, got {text!r}") from None
    if not (32 <= w <= 1920 and 32 <= h <= 1080):
        raise argparse.ArgumentTypeError(f"size {w}x{h} out of range (32x32 .. 1920x1080)")
    if w % 2 or h % 2:   # the mp4v encoder silently drops an odd last column/row: cache and video would disagree
        raise argparse.ArgumentTypeError(f"size {w}x{h}: width and height must be even for mp4v (e.g. 170x128)")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(prog="python -m tools.synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="output folder (indexes, classes.txt, videos/, poses/)")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, help=f"number of classes, 2..{len(CATALOGUE)} (first N of the catalogue)")
    ap.add_argument("--train-per-class", type=int)
    ap.add_argument("--val-per-class", type=int, help="val clips per class")
    ap.add_argument("--val-out-per-class", type=int,
                    help="val_out clips per class (the out-of-context validation split; default: as val)")
    ap.add_argument("--test-per-class", type=int, help="test_in clips per class (and test_out unless given)")
    ap.add_argument("--test-out-per-class", type=int)
    ap.add_argument("--size", type=_size, help="frame size WxH, e.g. 160x120")
    ap.add_argument("--frames", type=int, help="frames per clip")
    ap.add_argument("--fps", type=float)
    ap.add_argument("--context-prob", type=float, help="P(own scene), P(own object) in train/val/test_in (0.9)")
    ap.add_argument("--failure-prob", type=float, help="P(a clip has a pose failure) (0.2)")
    ap.add_argument("--bystander-prob", type=float, help="P(a second, idle person in the scene) (0.2)")
    ap.add_argument("--no-action", action=argparse.BooleanOptionalAction, default=None,
                    help="add the no_action class (idle, walking, gestures...) as the last label (default: on)")
    ap.add_argument("--styles", choices=STYLE_SETS,
                    help="motion style set: base; wide (adds kicks with the arms down and drinking from a table; "
                         "the previous default's data); kicks (wide with every kick at least knee-high and its "
                         "peak inside the clip; the default checkpoint's data); docs/synth.md (default: base)")
    ap.add_argument("--workers", type=int, default=1)
    return ap


def config_from_args(args: argparse.Namespace) -> SynthConfig:
    cfg = replace(PRESETS[args.preset], out=args.out, seed=args.seed, workers=args.workers)
    for key in ("classes", "train_per_class", "val_per_class", "val_out_per_class", "test_per_class", "test_out_per_class", "frames",
                "fps", "context_prob", "failure_prob", "bystander_prob", "no_action", "styles"):
        if getattr(args, key) is not None:
            cfg = replace(cfg, **{key: getattr(args, key)})
    if args.size is not None:
        cfg = replace(cfg, width=args.size[0], height=args.size[1])
    return cfg


def check_config(cfg: SynthConfig) -> str | None:
    """The first problem with a config, as one line, or None."""
    if not 2 <= cfg.classes <= len(CATALOGUE):
        return f"--classes must be between 2 and {len(CATALOGUE)}, got {cfg.classes}"
    for split in SPLITS:
        if cfg.per_class(split) < 0:
            return f"clips per class must be >= 0, got {cfg.per_class(split)} for {split}"
    if cfg.frames < 8:
        return f"--frames must be >= 8, got {cfg.frames}"
    if not 1 <= cfg.fps <= 240:
        return f"--fps must be in 1..240, got {cfg.fps}"
    if not all(0 <= v <= 1 for v in (cfg.context_prob, cfg.failure_prob, cfg.bystander_prob)):
        return "--context-prob, --failure-prob and --bystander-prob must be in [0, 1]"
    if cfg.workers < 1:
        return f"--workers must be >= 1, got {cfg.workers}"
    if cfg.out.exists() and not cfg.out.is_dir():
        return f"--out {cfg.out} exists and is not a folder"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)
    cfg = config_from_args(args)
    problem = check_config(cfg)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    total = len(plan(cfg))
    columns = (TextColumn("[bold]synth"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task("", total=total)
            paths = generate(cfg, lambda clip: progress.update(task, advance=1, description=clip.video.name))
    except OSError as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 1
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
