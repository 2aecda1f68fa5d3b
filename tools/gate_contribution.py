"""How much each stream still steers an IntegralAction model's decision after the gate.

Why: the gate G scales the aligned appearance features before one linear head, and that head is trained
after the gate, so it can re-amplify whatever G shrinks: a small mean G does not by itself mean that the
appearance stream has little say. This splits the integrated frame logits exactly,
``W (G A(f_a)) + W ((1 - G) P(f_p)) + b``, and reports per split the top-1 of each half alone (with the bias),
of the whole, and each half's spread over classes (its say in the decision).

    .venv/bin/python -m tools.gate_contribution --checkpoint checkpoints/default.pt \\
        --data runs/synth_default --clips 120

Real clips (`<label>__*.mp4` as `tools.bench real` reads them), with poses cached by the live path's estimator:

    .venv/bin/python -m tools.extract_poses --videos ../shared/data/real_actions_dev --out runs/real_poses
    .venv/bin/python -m tools.gate_contribution --real ../shared/data/real_actions_dev --pose-cache runs/real_poses

Where a class ``no_action`` exists it also reports how often each half alone, and the whole, decide it: on
real clips that tells whether an abstention comes from the scene or from how the head reads the pose.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from core.checkpoint import load_checkpoint
from core.cliflags import make_parser, parse_or_exit
from core.errors import UserError, run_main


def build_parser():
    ap = make_parser("python -m tools.gate_contribution", __doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=Path("checkpoints/default.pt"), help="a gated IntegralAction checkpoint")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="benchmark folder with test_in.jsonl / test_out.jsonl")
    src.add_argument("--real", type=Path, metavar="DIR", help="folder of labelled clips <label>__*.mp4|avi")
    ap.add_argument("--pose-cache", type=Path, metavar="DIR",
                    help="with --real: <video stem>.npz pose caches (python -m tools.extract_poses --videos DIR)")
    ap.add_argument("--clips", type=int, default=120, help="videos per split, evenly spaced (one clip each)")
    ap.add_argument("--threads", type=int, default=1)
    return ap


def split_logits(model, rgb: torch.Tensor, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Video-level logits of the appearance half and of the pose half of the integrated head (bias excluded)."""
    fa, fp = model.forward_features(rgb, pose)
    fp = model.pose_per_rgb_frame(fp)
    b, t = fa.shape[:2]
    app, pose_part, _ = model.fusion.parts(fa.reshape(b * t, -1), fp.reshape(b * t, -1))
    app, pose_part = app @ model.head.weight.T, pose_part @ model.head.weight.T
    return app.view(b, t, -1).mean(1), pose_part.view(b, t, -1).mean(1)


def real_index(folder: Path, pose_cache: Path, names: list[str], out: Path) -> Path:
    """A clip index (and its classes.txt) of labelled real clips whose poses are cached in ``pose_cache``."""
    from tools.bench.real import _label_of, _videos

    lines = []
    for video in _videos(folder):
        label = _label_of(video, [])
        if label is None:
            continue
        if label not in names:
            raise UserError(f"{video.name}: label {label!r} is not one of the checkpoint's classes")
        cache = pose_cache / f"{video.stem}.npz"
        if not cache.is_file():
            raise UserError(f"no pose cache {cache} (python -m tools.extract_poses --videos {folder} --out {pose_cache})")
        lines.append(json.dumps({"video": str(video.resolve()), "label": names.index(label), "label_name": label,
                                 "poses": str(cache.resolve()), "split": "real"}))
    if not lines:
        raise UserError(f"no labelled clips (<label>__*.mp4|avi) in {folder}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(n + "\n" for n in names))
    index = out / "real.jsonl"
    index.write_text("".join(line + "\n" for line in lines))
    return index


def main(argv: list[str] | None = None) -> int:
    from train.cli import open_dataset

    args = parse_or_exit(build_parser(), argv)
    if args.real is not None and args.pose_cache is None:
        raise UserError("--real needs --pose-cache DIR (python -m tools.extract_poses --videos DIR --out CACHE)")
    torch.set_num_threads(args.threads)
    try:
        model = load_checkpoint(args.checkpoint)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load {args.checkpoint}: {exc}") from None
    if getattr(model, "fusion", None) is None or not hasattr(model.fusion, "gate"):
        raise UserError(f"{args.checkpoint} has no gated integration (variant {model.config.variant})")
    model.eval()
    bias = model.head.bias.detach()
    none = model.class_names.index("no_action") if "no_action" in model.class_names else None
    tmp = tempfile.TemporaryDirectory(prefix="gate_contribution_")
    if args.real is not None:
        splits = {"real": real_index(args.real, args.pose_cache, list(model.class_names), Path(tmp.name))}
    else:
        splits = {split: args.data / f"{split}.jsonl" for split in ("test_in", "test_out")}
    for split, index in splits.items():
        if not index.is_file():
            raise UserError(f"{index} not found")
        ds = open_dataset(index, model.config, "test", 0, 0, n_clips=1)
        picks = np.unique(np.linspace(0, len(ds) - 1, min(len(ds), args.clips)).astype(int))
        hits = {"appearance half": 0, "pose half": 0, "whole": 0}
        abstain = dict.fromkeys(hits, 0)
        spread_a, spread_p = [], []
        with torch.no_grad():
            for i in picks:
                item = ds[int(i)]
                la, lp = split_logits(model, item["rgb"], item["pose"])
                y = int(item["label"])
                for key, logits in (("appearance half", la + bias), ("pose half", lp + bias), ("whole", la + lp + bias)):
                    hits[key] += int(logits.argmax()) == y
                    abstain[key] += int(logits.argmax()) == none
                spread_a.append(float(la.std()))
                spread_p.append(float(lp.std()))
        n = len(picks)
        print(f"{split}: {n} videos; top-1 " + ", ".join(f"{k} {100 * v / n:.1f}" for k, v in hits.items())
              + f"; logit spread over classes: appearance half {np.mean(spread_a):.2f}, pose half {np.mean(spread_p):.2f}"
              f" (ratio {np.mean(spread_a) / np.mean(spread_p):.2f})"
              + ("" if none is None else "; decide no_action: " + ", ".join(f"{k} {100 * v / n:.1f} %" for k, v in abstain.items())))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main, "tools.gate_contribution", also=(OSError, ValueError)))
