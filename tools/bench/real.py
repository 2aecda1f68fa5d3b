"""Real clips: does the model recognise real people? Every clip through the `ia-live` pipeline.

    python -m tools.bench real --clips ../shared/data/real_actions_dev --other ../shared/data/videos \
        --out runs/real_eval

``--clips DIR``: labelled clips named ``<label>__<anything>.mp4|avi``. Each clip runs through the real
`ia-live` pipeline (capture, MoveNet, shared rings, the engine, the decision rule), exactly what a user
gets from ``ia-live --video CLIP --dump-json``; the clip's label is the class with the highest mean
probability over its messages (``no_action`` included: abstaining on an action clip is a miss).
Reported: clip top-1 / top-3, per-class accuracy, the confusion matrix, the abstention rate (messages
whose ``action`` is ``no_action``) and the mean gate G per class.

``--other DIR``: real videos of *other* actions (none of the model's classes). Reported: the rate of
messages that do not abstain (lower is better). A file can still carry a model label: ``--relabel
GLOB=LABEL`` (default: NTU RGB+D ``*A001_rgb.*`` = drink water = ``drinking``) moves it to the
labelled set.

Writes ``real_eval.json`` and ``real_eval.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from train.metrics import wilson_interval

VIDEO_EXT = (".mp4", ".avi", ".mkv", ".mov", ".m4v")
DEFAULT_RELABEL = ("*A001_rgb.*=drinking",)


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clips", type=Path, help="folder of labelled clips <label>__*.mp4|avi")
    parser.add_argument("--other", type=Path, help="folder of real videos of other actions (should abstain)")
    parser.add_argument("--relabel", action="append", default=None, metavar="GLOB=LABEL",
                        help=f"a file in --other matching GLOB has label LABEL (default: {DEFAULT_RELABEL[0]})")
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: checkpoints/default.pt)")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--threshold", type=float, default=None, help="override the checkpoint's threshold")
    parser.add_argument("--average", type=int, default=None, help="ia-live --average (default: ia-live's)")
    parser.add_argument("--pose-model", default=None)
    parser.add_argument("--limit", type=int, default=None, help="only the first N labelled clips (CI)")
    parser.add_argument("--out", type=Path, default=None, help="folder for real_eval.json / real_eval.md")
    parser.add_argument("--record", type=Path, default=None, metavar="JSON",
                        help="also store the summary and this command under 'real_clips' in JSON (e.g. "
                             "checkpoints/default.json)")


def _label_of(path: Path, relabel: list[tuple[str, str]]) -> str | None:
    for pattern, label in relabel:
        if fnmatch.fnmatch(path.name, pattern):
            return label
    if "__" in path.stem:
        return path.stem.split("__", 1)[0]
    return None


def _videos(folder: Path) -> list[Path]:
    """The videos in `folder`, sorted; `tools.gate_contribution --real` lists its clips with it too."""
    from core.errors import UserError

    if not folder.is_dir():
        raise UserError(f"not a folder: {folder}")
    videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXT)
    if not videos:   # a wrong folder would otherwise give an empty report and exit 0
        raise UserError(f"no videos ({', '.join(VIDEO_EXT)}) in {folder}")
    return videos


def _run_clip(video: Path, args: argparse.Namespace, checkpoint: Path, num_classes: int, tmp: Path) -> list[dict]:
    """One ia-live run (file mode, JSON Lines) on one video; its messages."""
    from realtime.cli import UsageError, build_parser, prepare
    from realtime.messages import read_jsonl
    from realtime.pipeline import run

    jsonl = tmp / f"{video.stem}.jsonl"
    argv = ["--video", str(video), "--checkpoint", str(checkpoint), "--engine", args.engine, "--no-zmq", "--quiet",
            "--dump-json", str(jsonl), "--top-k", str(num_classes)]
    if args.threshold is not None:
        argv += ["--threshold", str(args.threshold)]
    if args.average is not None:
        argv += ["--average", str(args.average)]
    if args.pose_model:
        argv += ["--pose-model", args.pose_model]
    try:
        settings = prepare(build_parser().parse_args(argv))
    except UsageError as exc:
        raise SystemExit(f"bench real: {video.name}: {exc}") from None
    result = run(settings)
    if result.code != 0:
        raise SystemExit(f"bench real: ia-live failed on {video.name}: {result.message}")
    return read_jsonl(jsonl) if jsonl.exists() else []


def _clip_summary(messages: list[dict], names: list[str]) -> dict:
    from core.decision import NO_ACTION

    if not messages:
        return {"messages": 0, "mean_probs": None, "abstained": None, "mean_gate": None, "actions": {}}
    probs = np.zeros(len(names))
    for m in messages:
        for e in m["topk"]:
            probs[e["index"]] += e["score"]
    probs /= len(messages)
    gates = [m["appearance_weight"] for m in messages if m["appearance_weight"] is not None]
    actions: dict[str, int] = {}
    for m in messages:
        actions[m["action"]] = actions.get(m["action"], 0) + 1
    return {"messages": len(messages), "mean_probs": probs.round(6).tolist(),
            "abstained": sum(m["action"] == NO_ACTION for m in messages) / len(messages),
            "mean_gate": float(np.mean(gates)) if gates else None, "actions": actions}


def evaluate(labelled: list[tuple[Path, str]], other: list[Path], args: argparse.Namespace, checkpoint: Path,
             progress=None) -> dict:
    from core.checkpoint import read_checkpoint

    payload = read_checkpoint(checkpoint)
    names = list(payload["class_names"])
    unknown = sorted({label for _, label in labelled if label not in names})
    if unknown:
        raise SystemExit(f"bench real: labels not in the model's classes: {', '.join(unknown)}")
    out: dict = {"checkpoint": str(checkpoint), "classes": names, "clips": [], "other": []}
    with tempfile.TemporaryDirectory(prefix="ia_bench_real_") as tmp_dir:
        tmp = Path(tmp_dir)
        for video, label in labelled:
            t = time.monotonic()
            summary = _clip_summary(_run_clip(video, args, checkpoint, len(names), tmp), names)
            row = {"video": video.name, "label": label, **summary, "seconds": round(time.monotonic() - t, 1)}
            if summary["mean_probs"] is not None:
                order = np.lexsort((np.arange(len(names)), -np.asarray(summary["mean_probs"])))
                row["pred"] = names[int(order[0])]
                row["top3"] = [names[int(i)] for i in order[:3]]
            else:
                row["pred"], row["top3"] = None, []
            out["clips"].append(row)
            if progress:
                progress(video.name)
        for video in other:
            t = time.monotonic()
            summary = _clip_summary(_run_clip(video, args, checkpoint, len(names), tmp), names)
            out["other"].append({"video": video.name, **summary, "seconds": round(time.monotonic() - t, 1)})
            if progress:
                progress(video.name)
    out["summary"] = summarise(out)
    return out


def summarise(result: dict) -> dict:
    names = result["classes"]
    clips = result["clips"]
    s: dict = {}
    if clips:
        s["clips"] = len(clips)
        s["top1"] = 100.0 * np.mean([c["pred"] == c["label"] for c in clips])
        s["top3"] = 100.0 * np.mean([c["label"] in c["top3"] for c in clips])
        # a few clips: say how far the figure could be from the same model's rate on more such clips
        s["top1_ci95"] = [round(100.0 * v, 1) for v in wilson_interval(sum(c["pred"] == c["label"] for c in clips),
                                                                         len(clips))]
        per_class: dict[str, list[bool]] = {}
        gates: dict[str, list[float]] = {}
        for c in clips:
            per_class.setdefault(c["label"], []).append(c["pred"] == c["label"])
            if c["mean_gate"] is not None:
                gates.setdefault(c["label"], []).append(c["mean_gate"])
        s["per_class"] = {k: 100.0 * float(np.mean(v)) for k, v in sorted(per_class.items())}
        s["mean_gate_per_class"] = {k: float(np.mean(v)) for k, v in sorted(gates.items())}
        msgs = sum(c["messages"] for c in clips)
        s["abstention_rate"] = (sum(c["abstained"] * c["messages"] for c in clips if c["messages"]) / msgs) if msgs else None
        labels = sorted({c["label"] for c in clips})
        preds = sorted({c["pred"] for c in clips if c["pred"]} - set(labels))
        cols = labels + preds
        s["confusion"] = {"rows": labels, "cols": cols,
                          "counts": [[sum(1 for c in clips if c["label"] == r and c["pred"] == k) for k in cols]
                                     for r in labels]}
    if result["other"]:
        msgs = sum(o["messages"] for o in result["other"])
        acted = sum((1 - o["abstained"]) * o["messages"] for o in result["other"] if o["messages"])
        s["other_videos"] = len(result["other"])
        s["other_non_abstaining_rate"] = acted / msgs if msgs else None
    return s


def to_markdown(result: dict) -> str:
    s = result["summary"]
    lines = [f"Checkpoint: `{result['checkpoint']}`", ""]
    if result["clips"]:
        lo, hi = s["top1_ci95"]
        lines += [f"**Labelled clips: {s['clips']}, clip top-1 {s['top1']:.1f} % (95 % interval {lo:.1f}-{hi:.1f}, "
                  f"Wilson), top-3 {s['top3']:.1f} %, abstention {100 * (s['abstention_rate'] or 0):.1f} % of messages.**",
                  "",
                  "| clip | label | predicted | top-3 | messages | abstained | mean G |", "|---|---|---|---|---|---|---|"]
        for c in result["clips"]:
            g = "-" if c["mean_gate"] is None else f"{c['mean_gate']:.2f}"
            ab = "-" if c["abstained"] is None else f"{100 * c['abstained']:.0f} %"
            mark = "" if c["pred"] == c["label"] else " ✗"
            lines.append(f"| {c['video']} | {c['label']} | {c['pred']}{mark} | {', '.join(c['top3'])} | "
                         f"{c['messages']} | {ab} | {g} |")
        lines += ["", "| class | clip accuracy | mean G |", "|---|---|---|"]
        for k, v in s["per_class"].items():
            g = s["mean_gate_per_class"].get(k)
            lines.append(f"| {k} | {v:.0f} % | {'-' if g is None else f'{g:.2f}'} |")
        conf = s["confusion"]
        lines += ["", "Confusion (rows: label, columns: predicted):", "",
                  "| | " + " | ".join(conf["cols"]) + " |", "|---" * (len(conf["cols"]) + 1) + "|"]
        for r, counts in zip(conf["rows"], conf["counts"]):
            lines.append(f"| {r} | " + " | ".join(str(c) if c else "" for c in counts) + " |")
    if result["other"]:
        lines += ["", f"**Other-action videos: {s['other_videos']}, non-abstaining messages "
                      f"{100 * (s['other_non_abstaining_rate'] or 0):.1f} %** (lower is better).", "",
                  "| video | messages | non-abstaining | decided actions |", "|---|---|---|---|"]
        for o in result["other"]:
            rate = "-" if o["abstained"] is None else f"{100 * (1 - o['abstained']):.0f} %"
            acts = ", ".join(f"{k} {v}" for k, v in sorted(o["actions"].items(), key=lambda kv: -kv[1]))
            lines.append(f"| {o['video']} | {o['messages']} | {rate} | {acts} |")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from core.errors import UserError, one_line
    from realtime.cli import DEFAULT_CHECKPOINT

    if args.clips is None and args.other is None:
        raise SystemExit("bench real: give --clips DIR and/or --other DIR")
    checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        raise SystemExit(f"bench real: checkpoint not found: {checkpoint}")
    relabel = [tuple(r.split("=", 1)) for r in (args.relabel or DEFAULT_RELABEL)]
    if any(len(r) != 2 or not r[1] for r in relabel):
        raise SystemExit("bench real: --relabel must look like GLOB=LABEL")
    labelled: list[tuple[Path, str]] = []
    other: list[Path] = []
    try:
        clip_videos = _videos(args.clips) if args.clips is not None else []
        other_videos = _videos(args.other) if args.other is not None else []
    except UserError as exc:
        raise SystemExit(f"bench real: {one_line(exc)}") from None
    if args.clips is not None:
        for v in clip_videos:
            label = _label_of(v, relabel)
            if label is None:
                raise SystemExit(f"bench real: {v.name} is not named <label>__*.mp4")
            labelled.append((v, label))
        if args.limit:
            labelled = labelled[: args.limit]
    if args.other is not None:
        for v in other_videos:
            label = _label_of(v, relabel)
            if label is not None:
                labelled.append((v, label))
            else:
                other.append(v)
    console = Console(stderr=True)
    columns = (TextColumn("[bold]bench real"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("", total=len(labelled) + len(other))
        result = evaluate(labelled, other, args, checkpoint, lambda name: bar.update(task, advance=1, description=name))
    text = to_markdown(result)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "real_eval.json").write_text(json.dumps(result, indent=1) + "\n")
        (args.out / "real_eval.md").write_text(text)
    if args.record:
        record(args.record, result, "python -m tools.bench real " + " ".join(_argv_for_record(args)))
    return 0


def _argv_for_record(args: argparse.Namespace) -> list[str]:
    out = []
    for flag in ("clips", "other", "checkpoint", "engine", "threshold", "average", "limit"):
        value = getattr(args, flag)
        if value is not None and not (flag == "engine" and value == "auto"):
            out += [f"--{flag}", str(value)]
    return out


def record(path: Path, result: dict, command: str) -> None:
    """Merge the headline numbers into a JSON file (the checkpoint's card), keeping what else it holds."""
    data = json.loads(path.read_text()) if path.exists() else {}
    s = result["summary"]
    keep = ("clips", "top1", "top1_ci95", "top3", "per_class", "abstention_rate", "mean_gate_per_class", "other_videos",
            "other_non_abstaining_rate")
    entry = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items() if k in keep}
    entry["per_clip"] = {c["video"]: c["pred"] for c in result["clips"]}
    entry["command"] = command
    data["real_clips"] = entry
    path.write_text(json.dumps(data, indent=1) + "\n")
