"""Stage 1 (paper section 3.4): train an appearance-only or a pose-only model with L_cls.

    python -m train.stage1 --stream appearance --index data/synth/train.jsonl \
        --val-index data/synth/val.jsonl --preset fast --out runs/appearance

Multi-GPU / multi-node: launch the same command with ``torchrun --nproc-per-node N -m train.stage1 ...``
(``--batch-size`` is per process). ``--resume`` continues an interrupted run from ``OUT/resume.pt`` with the
same result as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from core.model import ModelConfig, PRESETS, build_model
from train.loop import TrainConfig, TrainingError, fit

STREAMS = ("appearance", "pose")


# -- shared by the stage CLIs ---------------------------------------------------------------------
def add_training_args(ap: argparse.ArgumentParser, epochs: int, lr: float, milestones: Sequence[int]) -> None:
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, resume.pt, metrics.jsonl, tb/)")
    ap.add_argument("--epochs", type=int, default=epochs)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--milestones", type=int, nargs="*", default=list(milestones), help="epochs where lr *= --gamma")
    ap.add_argument("--gamma", type=float, default=0.1)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32, help="per process")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers per process")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clip-grad", type=float, default=None, help="max gradient norm (off by default)")
    ap.add_argument("--val-every", type=int, default=1, help="validate every N epochs (and after the last)")
    ap.add_argument("--no-amp", action="store_true", help="disable float16 autocast on CUDA")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/resume.pt")
    ap.add_argument("--frame-cache-mb", type=int, default=0, help="keep decoded frames in memory (small datasets)")
    ap.add_argument("--quiet", action="store_true")


def train_config_from_args(args: argparse.Namespace, **extra: Any) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, lr=args.lr, milestones=tuple(args.milestones), gamma=args.gamma,
                       momentum=args.momentum, weight_decay=args.weight_decay, batch_size=args.batch_size,
                       workers=args.workers, seed=args.seed, amp=not args.no_amp, clip_grad=args.clip_grad,
                       val_every=args.val_every, device=args.device, **extra)


def open_dataset(index: str | Path, config: ModelConfig, mode: str, seed: int = 0, frame_cache_mb: int = 0,
                 n_clips: int = 10):
    """The project's ClipDataset with the model's own sampling/pre-processing (they cannot diverge)."""
    from train.data.dataset import ClipDataset, ClipDatasetConfig

    data_cfg = ClipDatasetConfig.from_model(config, mode=mode, use_rgb=config.uses_appearance,
                                            use_pose=config.uses_pose, seed=seed, frame_cache_mb=frame_cache_mb,
                                            n_clips=n_clips)
    return ClipDataset(index, data_cfg)


def class_names_for(index: str | Path) -> list[str]:
    from core.clipindex import classes_path_for, read_classes

    return read_classes(classes_path_for(index))


def command_line(module: str, argv: Sequence[str] | None) -> str:
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def run_cli(body: Callable[[], int]) -> int:
    """Known user errors become one line on stderr and exit status 2, never a traceback."""
    from core.checkpoint import CheckpointError
    from core.clipindex import ClipIndexError

    try:
        from train.data import DatasetFormatError
    except ImportError:  # pragma: no cover
        DatasetFormatError = ValueError  # type: ignore[misc,assignment]
    try:
        return body()
    except (TrainingError, CheckpointError, ClipIndexError, DatasetFormatError, ValueError, FileNotFoundError) as exc:
        print(f"error: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with --resume", file=sys.stderr)
        return 130


# -- stage 1 --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m train.stage1", description=__doc__.splitlines()[0])
    ap.add_argument("--stream", choices=STREAMS, required=True)
    ap.add_argument("--index", type=Path, required=True, help="training clip index (JSON Lines)")
    ap.add_argument("--val-index", type=Path, help="validation clip index (10-clip test mode)")
    ap.add_argument("--val-clips", type=int, default=10, help="clips per validation video")
    ap.add_argument("--preset", default="table14", help=f"model preset: {', '.join(PRESETS)}")
    add_training_args(ap, epochs=40, lr=1e-2, milestones=(20, 30))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

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

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
