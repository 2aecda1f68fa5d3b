"""Stage 1 (paper section 3.4): train an appearance-only or a pose-only model with L_cls.

    python -m train.stage1 --stream appearance --index data/synth/train.jsonl \
        --val-index data/synth/val.jsonl --preset fast --out runs/appearance

Multi-GPU / multi-node: launch the same command with ``torchrun --nproc-per-node N -m train.stage1 ...``
(``--batch-size`` is per process). ``--resume`` continues an interrupted run from ``OUT/resume.pt`` with the
same result as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cliflags import make_parser, parse_or_exit
from core.model import PRESETS, build_model
# the shared helpers live in train.cli; importing them here keeps `from train.stage1 import ...` working
from train.cli import (add_training_args, class_names_for, command_line, open_dataset, run_cli,  # noqa: F401
                       train_config_from_args)
from train.loop import fit

STREAMS = ("appearance", "pose")


# -- stage 1 --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(prog="python -m train.stage1", description=__doc__.splitlines()[0])
    ap.add_argument("--stream", choices=STREAMS, required=True)
    ap.add_argument("--index", type=Path, required=True, help="training clip index (JSON Lines)")
    ap.add_argument("--val-index", type=Path, help="validation clip index (10-clip test mode)")
    ap.add_argument("--val-clips", type=int, default=10, help="clips per validation video")
    ap.add_argument("--preset", default="table14", help=f"model preset: {', '.join(PRESETS)}")
    add_training_args(ap, epochs=40, lr=1e-2, milestones=(20, 30))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)

    def body() -> int:
        from train.distributed import setup, teardown
        from train.loop import seed_everything

        if args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        names = class_names_for(args.index)
        ctx = setup(args.device)
        try:
            seed_everything(args.seed)  # the initial weights
            model = build_model(args.preset, class_names=names, variant=args.stream)
            cfg = train_config_from_args(args)
            train_set = open_dataset(args.index, model.config, "train", args.seed, args.frame_cache_mb)
            val_set = (open_dataset(args.val_index, model.config, "test", args.seed, args.frame_cache_mb, args.val_clips)
                       if args.val_index else None)
            extra = {"stage": 1, "stream": args.stream, "command": command_line("train.stage1", argv),
                     "train_index": str(args.index)}
            result = fit(model, train_set, val_set, cfg, args.out, class_names=names, ctx=ctx, extra=extra,
                         resume=args.resume, quiet=args.quiet)
            if ctx.is_main and not args.quiet:
                print(result.checkpoint)
        finally:
            teardown()
        return 0

    return run_cli(body, "python -m train.stage1")


if __name__ == "__main__":
    sys.exit(main())
