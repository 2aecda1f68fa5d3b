"""What the training command lines share: flags, the dataset they open, and one-line errors.

`train.stage1`, `train.stage2`, `train.evaluate` and `train.experiment` are thin `main`s over these helpers, so
a flag means the same in each, each opens its data through the same `ClipDataset` configuration (the model's
own sampling and pre-processing), and each ends with one line on stderr for a user error (`core.errors`).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from core.devices import device_arg
from core.errors import run_main
from core.model import ModelConfig
from train.loop import TrainConfig

__all__ = ["add_training_args", "train_config_from_args", "open_dataset", "class_names_for", "command_line",
           "run_cli"]


def out_folder(text: str) -> Path:
    """``--out``: a folder that may not exist yet, never an existing file (found at parse time, not after
    the data has been opened and the model built)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a folder")
    return path


def add_training_args(ap: argparse.ArgumentParser, epochs: int, lr: float, milestones: Sequence[int]) -> None:
    ap.add_argument("--out", type=out_folder, required=True,
                    help="run folder (checkpoint.pt, resume.pt, metrics.jsonl, tb/)")
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
    ap.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N")
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
    from core.clipindex import ClipIndexError, classes_path_for, read_classes

    if not Path(index).is_file():   # say so before looking for the classes.txt beside it
        raise ClipIndexError(f"clip index not found: {index}")
    return read_classes(classes_path_for(index))


def command_line(module: str, argv: Sequence[str] | None) -> str:
    return f"python -m {module} " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def run_cli(body: Callable[[], int], prog: str | None = None) -> int:
    """Known user errors (`core.errors.UserError`, and ValueError/FileNotFoundError from argument checks)
    become one line on stderr, prefixed with ``prog``, and exit status 2, never a traceback; Ctrl-C exits 130."""
    return run_main(body, prog, also=(ValueError, FileNotFoundError), interrupted="interrupted; continue with --resume")
