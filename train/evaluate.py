"""Evaluate a checkpoint on a clip index: 10-clip top-1/top-5, per-class accuracy, confusion matrix, the gate.

    python -m train.evaluate --checkpoint runs/integral/checkpoint.pt --index data/synth/test_out.jsonl \
        --appearance-checkpoint runs/appearance/checkpoint.pt --pose-checkpoint runs/pose/checkpoint.pt --out runs/eval_out

With ``--appearance/--pose`` (the stage-1 models) it adds the oracle selection between them (Tables 10-12)
and the score-averaging sweep over weights (Figure 5). Gate statistics (Figure 4 histogram of G averaged
over channels and frames per clip; Table 5 per-class mean) appear when the model has a gate. Writes
``report.json``, ``report.md`` and PNG plots (matplotlib, Agg backend) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from core.cliflags import add_alias, make_parser, parse_or_exit
from core.devices import device_arg
from train import metrics as M
from train.loop import Predictions, collate, predict
from train.cli import out_folder


# -- prediction -----------------------------------------------------------------------------------
def predict_dataset(model: torch.nn.Module, dataset: Dataset, batch_size: int = 4, workers: int = 2,
                    device: str | torch.device = "cpu", label: str = "evaluating", quiet: bool = False) -> Predictions:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    device = torch.device(device)
    model.to(device)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate)
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True,
                  disable=quiet) as bar:
        task = bar.add_task(label, total=len(dataset))
        return predict(model, loader, device, progress=lambda n: bar.update(task, advance=n),
                       amp=device.type == "cuda")


# -- analysis -------------------------------------------------------------------------------------
def analyse(main: Predictions, class_names: Sequence[str], appearance: Predictions | None = None,
            pose: Predictions | None = None, sweep_weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Everything the report shows, from video-level predictions (plain numbers; JSON-ready)."""
    k = len(class_names)
    result: dict[str, Any] = {"model": M.summarize(main.probs, main.labels, class_names),
                              "confusion": M.confusion_matrix(main.probs, main.labels, k).tolist(),
                              "class_names": list(class_names)}
    if main.gate is not None:
        clip_gate = main.clip_gate if main.clip_gate is not None else main.gate[:, None]
        per_class = M.per_class_mean(main.gate, main.labels, k)
        result["gate"] = {"histogram": M.gate_histogram(clip_gate.ravel()),
                          "per_class_mean": {n: (None if np.isnan(v) else float(v)) for n, v in zip(class_names, per_class)},
                          "per_clip": [round(float(v), 5) for v in clip_gate.ravel()]}
    for name, pred in (("appearance", appearance), ("pose", pose)):
        if pred is not None:
            if not np.array_equal(pred.labels, main.labels):
                raise ValueError(f"the {name} predictions are for different videos")
            result[name] = M.summarize(pred.probs, pred.labels, class_names)
            result[f"{name}_confusion"] = M.confusion_matrix(pred.probs, pred.labels, k).tolist()
    if appearance is not None and pose is not None:
        top1, per_class = M.oracle_accuracy(appearance.probs, pose.probs, main.labels, k)
        result["oracle"] = {"top1": top1, "per_class_top1": {n: (None if np.isnan(v) else float(v))
                                                             for n, v in zip(class_names, per_class)}}
        weights = sweep_weights if sweep_weights is not None else [round(w, 2) for w in np.linspace(0, 1, 11)]
        result["score_sweep"] = M.score_sweep(appearance.probs, pose.probs, main.labels, weights)
    return result


# -- plots ----------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str) -> Path:
    """Figure 6 style: rows normalised to the fraction of each true class."""
    plt = _plt()
    m = np.asarray(matrix, dtype=np.float64)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(m, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_gate_histograms(series: dict[str, Sequence[float]], path: Path, title: str = "G averaged per clip") -> Path:
    """Figure 4: per-clip mean gate distributions, one curve per (model, test set)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(0, 1, 41)
    for name, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        ax.hist(values, bins=bins, histtype="step", density=True, linewidth=1.5,
                label=f"{name} (mean {values.mean():.2f}, sd {values.std():.2f})")
    ax.set_xlabel("G (appearance weight), averaged over channels and frames")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_score_sweep(sweeps: dict[str, list[dict[str, float]]], path: Path,
                     references: dict[str, float] | None = None) -> Path:
    """Figure 5: top-1 of w * appearance + (1 - w) * pose per test set; dashed lines = other models."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (name, rows) in enumerate(sweeps.items()):
        w = [r["appearance_weight"] for r in rows]
        line, = ax.plot(w, [r["top1"] for r in rows], marker="o", label=f"score average, {name}")
        for ref_name, value in (references or {}).items():
            if ref_name.endswith(name):
                ax.axhline(value, color=line.get_color(), linestyle="--", linewidth=1, label=ref_name)
    ax.set_xlabel("appearance weight w (pose weight 1 - w)")
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- report ---------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}"


def markdown_report(result: dict[str, Any], title: str, plots: Sequence[str] = ()) -> str:
    lines = [f"# {title}", "", "| model | top-1 | top-5 |", "|---|---|---|"]
    for name in ("model", "appearance", "pose"):
        if name in result:
            lines.append(f"| {name} | {_fmt(result[name]['top1'])} | {_fmt(result[name]['top5'])} |")
    if "oracle" in result:
        lines.append(f"| oracle(appearance, pose) | {_fmt(result['oracle']['top1'])} | - |")
    lines += ["", f"{result['model']['num_videos']} videos; probabilities averaged over each video's clips.", ""]
    names = result["class_names"]
    header = ["class", "model"] + [n for n in ("appearance", "pose") if n in result]
    if "oracle" in result:
        header.append("oracle")
    if "gate" in result:
        header.append("mean G")
    lines += ["## Per-class top-1", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        row = [name, _fmt(result["model"]["per_class_top1"][name])]
        row += [_fmt(result[n]["per_class_top1"][name]) for n in ("appearance", "pose") if n in result]
        if "oracle" in result:
            row.append(_fmt(result["oracle"]["per_class_top1"][name]))
        if "gate" in result:
            g = result["gate"]["per_class_mean"][name]
            row.append("-" if g is None else f"{g:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    if "gate" in result:
        h = result["gate"]["histogram"]
        lines += ["", f"Gate G (appearance weight) per clip: mean {h['mean']:.3f}, sd {h['std']:.3f}."]
    if "score_sweep" in result:
        lines += ["", "## Score averaging sweep", "", "| appearance weight | top-1 | top-5 |", "|---|---|---|"]
        lines += [f"| {r['appearance_weight']:.1f} | {_fmt(r['top1'])} | {_fmt(r['top5'])} |" for r in result["score_sweep"]]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def write_report(result: dict[str, Any], out_dir: Path, title: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = result["class_names"]
    plots = [plot_confusion(result["confusion"], names, out_dir / "confusion.png", f"{title}: model")]
    for name in ("appearance", "pose"):
        if f"{name}_confusion" in result:
            plots.append(plot_confusion(result[f"{name}_confusion"], names, out_dir / f"confusion_{name}.png",
                                        f"{title}: {name}-only"))
    if "gate" in result:
        plots.append(plot_gate_histograms({"model": result["gate"]["per_clip"]}, out_dir / "gate_hist.png"))
    if "score_sweep" in result:
        plots.append(plot_score_sweep({"this set": result["score_sweep"]}, out_dir / "score_sweep.png",
                                      {"model, this set": result["model"]["top1"]}))
    (out_dir / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "report.md").write_text(markdown_report(result, title, [str(p) for p in plots]))
    return [out_dir / "report.json", out_dir / "report.md", *plots]


# -- CLI ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = make_parser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--index", type=Path, required=True, help="test clip index (JSON Lines)")
    ap.add_argument("--appearance-checkpoint", dest="appearance", type=Path,
                    help="stage-1 appearance-only checkpoint (oracle, score sweep)")
    ap.add_argument("--pose-checkpoint", dest="pose", type=Path, help="stage-1 pose-only checkpoint (oracle, score sweep)")
    add_alias(ap, "--appearance", "--appearance-checkpoint")
    add_alias(ap, "--pose", "--pose-checkpoint")
    ap.add_argument("--out", type=out_folder, required=True)
    ap.add_argument("--clips", type=int, default=10, help="test clips per video (probabilities averaged)")
    ap.add_argument("--batch-size", type=int, default=4, help="videos per batch")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--quiet", action="store_true")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parse_or_exit(build_parser(), argv)

    def body() -> int:
        from core.checkpoint import load_checkpoint
        from train.distributed import pick_device
        from train.cli import class_names_for, open_dataset

        if (args.appearance is None) != (args.pose is None):
            raise ValueError("give both --appearance-checkpoint and --pose-checkpoint (the oracle and the sweep need the pair)")
        if args.clips < 1:
            raise ValueError("--clips must be >= 1")
        device = pick_device(args.device)
        model = load_checkpoint(args.checkpoint)
        names = class_names_for(args.index)
        if list(model.class_names) != names:
            raise ValueError(f"{args.checkpoint} was trained on other classes than {args.index}'s classes.txt")

        def run(m, label):
            data = open_dataset(args.index, m.config, "test", n_clips=args.clips)
            return predict_dataset(m, data, args.batch_size, args.workers, device, label, args.quiet)

        main_pred = run(model, "model")
        extra = {}
        if args.appearance is not None:
            extra["appearance"] = run(load_checkpoint(args.appearance), "appearance-only")
            extra["pose"] = run(load_checkpoint(args.pose), "pose-only")
        result = analyse(main_pred, names, **extra)
        result["checkpoint"] = str(args.checkpoint)
        result["index"] = str(args.index)
        result["clips"] = args.clips
        files = write_report(result, args.out, f"{args.checkpoint.parent.name} on {args.index.name}")
        if not args.quiet:
            print(f"top-1 {result['model']['top1']:.1f}  top-5 {result['model']['top5']:.1f}  -> {files[1]}")
        return 0

    from train.cli import run_cli

    return run_cli(body, "python -m train.evaluate")


if __name__ == "__main__":
    sys.exit(main())
