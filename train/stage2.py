"""Stage 2 (paper section 3.4): train integration + classifier on top of the two stage-1 streams.

    python -m train.stage2 --appearance-checkpoint runs/appearance/checkpoint.pt --pose-checkpoint runs/pose/checkpoint.pt \
        --index data/synth/train.jsonl --val-index data/synth/val.jsonl --variant integral --lambda 1.5 \
        --out runs/integral

L = L_cls + lambda * L_gate. Strategies (Table 8): ``frozen`` (the paper's: streams initialised from the
stage-1 checkpoints and frozen), ``finetune`` (initialised, not frozen), ``scratch`` (random streams, no
stage 1; needs ``--preset``). ``--variant score_average`` needs no training: its two classifiers are the
stage-1 classifiers, so it averages the appearance-only and pose-only models' probabilities (Table 4).

`FeatureBank` lets the experiment train many heads on one set of frozen streams without re-running them:
with frozen streams in eval mode the stream features are a fixed function of the (seeded, per-epoch)
augmented input, so pre-computing them per epoch gives the same training as the full forward pass
(`tests/test_training.py` checks the weights agree).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.checkpoint import CheckpointError, read_checkpoint
from core.cliflags import add_alias, make_parser, parse_or_exit, unit_interval
from core.model import PRESETS, IntegralAction, ModelConfig, build_model
from core.model.config import GATE_DRIVERS
from train.cli import (add_training_args, class_names_for, command_line, open_dataset, run_cli,
                       train_config_from_args)
from train.loop import TrainConfig, collate, fit

STAGE2_VARIANTS = ("integral", "no_gating", "feature_fuse", "score_average")
STRATEGIES = ("frozen", "finetune", "scratch")
# fields that define a stream's architecture and inputs: they must agree between checkpoint and combined model
_APPEARANCE_FIELDS = ("appearance_depth", "appearance_width", "frames", "tau", "rgb_size", "short_side",
                      "rgb_mean", "rgb_std", "convention", "shift_div")
_POSE_FIELDS = ("pose_depth", "pose_width", "pose_frames", "pose_tau", "skeleton", "pose_channels", "map_size",
                "top_k_persons", "score_thr", "threshold_mode")


def _stream_weights(payload: dict[str, Any], prefix: str, path: str) -> dict[str, torch.Tensor]:
    weights = {k: v for k, v in payload["state_dict"].items() if k.startswith(prefix + ".")}
    if not weights:
        raise CheckpointError(f"{path} has no {prefix} stream (is it a stage-1 {prefix}-only checkpoint?)")
    return weights


def assemble(appearance: str | Path | None, pose: str | Path | None, variant: str = "integral",
             gate_driver: str = "pose", gate_lambda: float = 1.5, strategy: str = "frozen",
             preset: str | None = None, class_names: list[str] | None = None,
             **overrides: Any) -> IntegralAction:
    """Build a stage-2 model whose streams (and, for score_average, classifiers) come from stage 1."""
    if variant not in STAGE2_VARIANTS:
        raise ValueError(f"variant {variant!r} not in {STAGE2_VARIANTS}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} not in {STRATEGIES}")
    fields = dict(variant=variant, gate_driver=gate_driver, gate_lambda=float(gate_lambda), **overrides)
    if strategy == "scratch":
        if preset is None or class_names is None:
            raise ValueError("--strategy scratch needs --preset and class names (from --index)")
        return build_model(preset, class_names=class_names, **fields)
    if appearance is None or pose is None:
        raise ValueError(f"--strategy {strategy} needs --appearance-checkpoint and --pose-checkpoint (stage 1)")
    pa, pp = read_checkpoint(appearance), read_checkpoint(pose)
    if pa["class_names"] != pp["class_names"]:
        raise CheckpointError(f"{appearance} and {pose} were trained on different class lists")
    ca, cp = ModelConfig.from_dict(pa["config"]), ModelConfig.from_dict(pp["config"])
    config = ca.replace(**{f: getattr(cp, f) for f in _POSE_FIELDS}, **fields)
    model = build_model(config, class_names=list(pa["class_names"]))
    state = model.state_dict()
    loaded = {**_stream_weights(pa, "appearance", str(appearance)), **_stream_weights(pp, "pose", str(pose))}
    if variant == "score_average":
        for src, dst in ((pa, "head_appearance"), (pp, "head_pose")):
            for k, v in src["state_dict"].items():
                if k.startswith("head."):
                    loaded[dst + k[len("head"):]] = v
    for key, value in loaded.items():
        if key not in state or state[key].shape != value.shape:
            raise CheckpointError(f"stage-1 tensor {key} {tuple(value.shape)} does not fit the stage-2 model")
    missing = [k for k in state if k.startswith(("appearance.", "pose.")) and k not in loaded]
    if missing:
        raise CheckpointError(f"stage-1 checkpoints lack {len(missing)} stream tensors (e.g. {missing[0]})")
    model.load_state_dict(loaded, strict=False)
    return model


# -- pre-computed stream features -----------------------------------------------------------------
@torch.no_grad()
def compute_features(model: IntegralAction, dataset: Dataset, views: int = 1, batch_size: int = 16,
                     workers: int = 0, device: torch.device | str = "cpu",
                     progress: Any = None) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
    """Stream features of ``views`` passes (pass v = the dataset's epoch v) with the streams in eval mode.

    Returns ``fa (V, N, [n_clips,] T, C_A)``, ``fp (V, N, [n_clips,] T_pose, C_P)`` and labels ``(N,)``."""
    device = torch.device(device)
    model.to(device).eval()
    fa_views, fp_views, labels = [], [], None
    for v in range(views):
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(v)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
        fa_parts, fp_parts, label_parts = [], [], []
        for batch in loader:
            lead = None
            inputs = []
            for key in ("rgb", "pose"):
                x = batch.get(key)
                if x is not None:
                    x = x.to(device)
                    if x.dim() == 6:  # test-mode stack (B, n_clips, T, C, H, W)
                        lead = x.shape[:2]
                        x = x.flatten(0, 1)
                inputs.append(x)
            feats = model.forward_features(*inputs)
            for part, f in ((fa_parts, feats.appearance), (fp_parts, feats.pose)):
                if f is not None:
                    part.append((f.reshape(*lead, *f.shape[1:]) if lead is not None else f).cpu())
            label_parts.append(batch["label"])
            if progress is not None:
                progress(batch["label"].shape[0])
        fa_views.append(torch.cat(fa_parts) if fa_parts else None)
        fp_views.append(torch.cat(fp_parts) if fp_parts else None)
        labels = torch.cat(label_parts)
    fa = torch.stack(fa_views) if fa_views[0] is not None else None
    fp = torch.stack(fp_views) if fp_views[0] is not None else None
    return fa, fp, labels


class FeatureBank(Dataset):
    """Items ``{"fa", "fp", "label"}`` of view ``epoch % views``: a dataset of pre-computed stream features."""

    def __init__(self, fa: torch.Tensor | None, fp: torch.Tensor | None, labels: torch.Tensor) -> None:
        self.fa, self.fp, self.labels = fa, fp, labels
        self.views = (fa if fa is not None else fp).shape[0]
        self.view = 0

    def set_epoch(self, epoch: int) -> None:
        self.view = int(epoch) % self.views

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"fa": None if self.fa is None else self.fa[self.view, i],
                "fp": None if self.fp is None else self.fp[self.view, i], "label": int(self.labels[i])}


# -- CLI ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(prog="python -m train.stage2", description=__doc__.splitlines()[0])
    ap.add_argument("--appearance-checkpoint", dest="appearance", type=Path, help="stage-1 appearance-only checkpoint")
    ap.add_argument("--pose-checkpoint", dest="pose", type=Path, help="stage-1 pose-only checkpoint")
    add_alias(ap, "--appearance", "--appearance-checkpoint")
    add_alias(ap, "--pose", "--pose-checkpoint")
    ap.add_argument("--index", type=Path, required=True, help="training clip index (JSON Lines)")
    ap.add_argument("--val-index", type=Path)
    ap.add_argument("--val-clips", type=int, default=10)
    ap.add_argument("--variant", choices=STAGE2_VARIANTS, default="integral")
    ap.add_argument("--gate-driver", choices=GATE_DRIVERS, default="pose")
    ap.add_argument("--lambda", dest="gate_lambda", type=float, default=1.5, help="weight of L_gate")
    ap.add_argument("--strategy", choices=STRATEGIES, default="frozen")
    ap.add_argument("--stream-bn", choices=("eval", "train"), default="eval",
                    help="frozen streams' BatchNorm: eval (default) or train (the released code)")
    ap.add_argument("--preset", help="model preset for --strategy scratch")
    ap.add_argument("--context-swap", type=unit_interval, default=0.0, metavar="P",
                    help="share of training clips given another class's appearance input (train.context_swap; "
                         "the default checkpoint's recipe, not the paper's)")
    add_training_args(ap, epochs=20, lr=1e-3, milestones=(10, 15))
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)

    def body() -> int:
        from train.distributed import setup, teardown
        from train.loop import seed_everything

        if args.preset is not None and args.preset not in PRESETS:
            raise ValueError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESETS)}")
        names = class_names_for(args.index)
        ctx = setup(args.device)
        try:
            seed_everything(args.seed)  # the integration part's initial weights
            model = assemble(args.appearance, args.pose, args.variant, args.gate_driver, args.gate_lambda,
                             args.strategy, args.preset, names)
            if model.class_names != names:
                raise CheckpointError(f"the stage-1 class list differs from {args.index}'s classes.txt")
            frozen = args.strategy == "frozen"
            epochs = 0 if args.variant == "score_average" else args.epochs
            cfg = train_config_from_args(args, gate_lambda=args.gate_lambda if args.variant == "integral" else 0.0,
                                         frozen_streams=frozen, stream_bn=args.stream_bn,
                                         context_swap=args.context_swap)
            cfg.epochs = epochs
            train_set = open_dataset(args.index, model.config, "train", args.seed, args.frame_cache_mb)
            val_set = (open_dataset(args.val_index, model.config, "test", args.seed, args.frame_cache_mb, args.val_clips)
                       if args.val_index else None)
            extra = {"stage": 2, "variant": args.variant, "gate_driver": args.gate_driver,
                     "gate_lambda": args.gate_lambda, "strategy": args.strategy, "stream_bn": args.stream_bn,
                     "context_swap": args.context_swap,
                     "appearance_checkpoint": str(args.appearance), "pose_checkpoint": str(args.pose),
                     "command": command_line("train.stage2", argv), "train_index": str(args.index)}
            result = fit(model, train_set, val_set, cfg, args.out, class_names=names, ctx=ctx, extra=extra,
                         resume=args.resume, quiet=args.quiet)
            if ctx.is_main and not args.quiet:
                print(result.checkpoint)
        finally:
            teardown()
        return 0

    return run_cli(body, "python -m train.stage2")


if __name__ == "__main__":
    sys.exit(main())
