"""Calibrate a checkpoint's abstention threshold on held-out clips of your own (or measure another calibration).

Why: `ia-live` abstains (`no_action`) when the best action's probability is below the checkpoint's threshold
(`core.decision`). `train.experiment` sets it on the synthetic val split: the threshold that keeps 95 % of the
correctly recognised action windows. A deployment with its own labelled, held-out clips (never the clips it is
evaluated on) can re-run the same rule on them, through the same sampling and pre-processing as training:

    .venv/bin/python -m tools.calibrate --checkpoint checkpoints/default.pt --index runs/synth_default/val.jsonl
    .venv/bin/python -m tools.calibrate --index MY_VAL.jsonl --write runs/recalibrated.pt

It prints the windows' top-1, the threshold and what it costs on those windows; ``--write`` saves a copy of the
checkpoint whose ``decision`` is the new rule (weights unchanged). The index is a clip index with its
classes.txt beside it (`core.clipindex`, e.g. `tools.extract_poses --index ... --write-index ...` for poses from
the live path's estimator).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.cliflags import make_parser, parse_or_exit
from core.errors import UserError, run_main


def build_parser():
    ap = make_parser("python -m tools.calibrate", __doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints/default.pt"))
    ap.add_argument("--index", type=Path, required=True, help="held-out clip index (JSON Lines, classes.txt beside)")
    ap.add_argument("--clips", type=int, default=2, help="windows per video (train.experiment calibrates on 2)")
    ap.add_argument("--keep", type=float, default=0.95, help="share of correct action windows the threshold keeps")
    ap.add_argument("--write", type=Path, metavar="PT", help="save a copy of the checkpoint with the new threshold")
    ap.add_argument("--threads", type=int, default=2)
    return ap


@torch.no_grad()
def window_probs(model, index: Path, clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Single-window probabilities ``(N * clips, K)`` and labels of an index's videos (eval mode)."""
    from core.model import StreamFeatures
    from train.cli import class_names_for, open_dataset
    from train.stage2 import compute_features

    names = class_names_for(index)
    if list(names) != list(model.class_names):
        raise UserError(f"{index}'s classes.txt differs from the checkpoint's classes ({', '.join(model.class_names)})")
    model.eval()
    fa, fp, labels = compute_features(model, open_dataset(index, model.config, "test", 0, n_clips=clips), views=1,
                                      batch_size=4)
    flat = lambda x: None if x is None else x[0].flatten(0, 1)  # noqa: E731  (view 0; videos x windows)
    out = model.forward_head(StreamFeatures(flat(fa), flat(fp)))
    return out.probs.float().numpy(), labels.repeat_interleave(clips).numpy()


def main(argv: list[str] | None = None) -> int:
    from core.decision import NO_ACTION, calibrated_rule

    args = parse_or_exit(build_parser(), argv)
    if not 0.0 < args.keep <= 1.0:
        raise UserError(f"--keep must be in (0, 1], got {args.keep}")
    if args.clips < 1:
        raise UserError(f"--clips must be at least 1, got {args.clips}")
    if not args.index.is_file():
        raise UserError(f"clip index not found: {args.index}")
    torch.set_num_threads(max(1, args.threads))
    model = load_checkpoint(args.checkpoint)
    probs, labels = window_probs(model, args.index, args.clips)
    names = list(model.class_names)
    record = calibrated_rule(probs, labels, names, f"{args.index}", keep=args.keep)
    top1 = 100.0 * float((probs.argmax(1) == labels).mean())
    line = f"{args.index}: {len(labels)} windows, window top-1 {top1:.1f} %, threshold {record['threshold']:.4f}"
    if NO_ACTION in names:
        none = names.index(NO_ACTION)
        line += (f"; mean p(no_action) on action windows {probs[labels != none, none].mean():.3f}; abstaining: "
                 f"{100 * record['val_action_abstained']:.1f} % of action windows")
        if record.get("val_no_action_abstained") is not None:
            line += f", {100 * record['val_no_action_abstained']:.1f} % of no_action windows"
    print(line)
    if args.write:
        extra = dict(model.checkpoint_extra)
        extra["decision"] = {"threshold": record["threshold"], "calibration": record["calibration"]}
        save_checkpoint(args.write, model, extra=extra)
        print(f"written: {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "tools.calibrate", also=(OSError, ValueError)))
