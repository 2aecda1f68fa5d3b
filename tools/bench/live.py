"""Live pipeline: file-mode throughput (real-time factor) and --realtime latency / drops.

    python -m tools.bench live --video ../shared/data/videos/stgcn_tai_chi.mp4 [--checkpoint PATH]

Runs the real `ia-live` pipeline (all processes, MoveNet, the chosen engine) twice on one video:

* file mode (back-pressure, no drops): real-time factor = video seconds / wall seconds, timed from the
  moment every process is ready (start-up - spawning, model load, engine warm-up - is reported apart);
* `--realtime` mode (the file paced at its fps like a camera): per-stage and end-to-end
  (capture -> publish) latency p50/p95 from the published messages, and dropped frames.

Without --checkpoint it uses checkpoints/default.pt when present, else random weights of --preset
(speed does not depend on the weights).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from core.cliflags import add_alias

import numpy as np

STAGES = ("capture", "pose", "assemble", "inference", "publish", "capture_to_publish")


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, help="video file")
    parser.add_argument("--checkpoint", default=None, help="checkpoint (default: checkpoints/default.pt, else --preset)")
    parser.add_argument("--preset", default="fast", help="random-weight preset when no checkpoint is given")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: ia-live's)")
    parser.add_argument("--pose-workers", type=int, default=1)
    parser.add_argument("--pose-model", default=None)
    parser.add_argument("--modes", default="file,realtime", help="comma list of file, realtime")
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--dump-json", dest="json", default=None, metavar="PATH", help="also write the results as JSON")
    add_alias(parser, "--json", "--dump-json")


def _checkpoint(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    from realtime.cli import DEFAULT_CHECKPOINT

    if args.checkpoint:
        return Path(args.checkpoint), Path(args.checkpoint).name
    if DEFAULT_CHECKPOINT.exists():
        return DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT.name
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import build_model, resolve_config

    torch.manual_seed(0)
    n = resolve_config(args.preset).num_classes
    path = save_checkpoint(tmp / f"random_{args.preset}.pt", build_model(args.preset, class_names=[f"c{i}" for i in range(n)]))
    return path, f"random weights, preset {args.preset}"


def _percentiles(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def _one_run(argv: list[str], jsonl: Path) -> dict:
    from realtime.cli import UsageError, build_parser, prepare
    from realtime.messages import read_jsonl
    from realtime.pipeline import run

    try:
        settings = prepare(build_parser().parse_args(argv))
    except UsageError as exc:
        raise SystemExit(f"bench live: {exc}") from None
    events: dict[str, float] = {}
    t0 = time.time()
    result = run(settings, on_event=lambda kind, role, payload: events.setdefault(kind, time.time()))
    end = time.time()
    if result.code != 0:
        raise SystemExit(f"bench live: ia-live failed: {result.message}")
    messages = read_jsonl(jsonl)
    captured = result.summary.get("captured", {})
    frames = int(captured.get("frames", 0))
    go = events.get("go", t0)
    lat = {stage: _percentiles([m["latency_ms"][stage] for m in messages[1:] or messages]) for stage in STAGES}
    return {
        "frames": frames, "video_s": frames / settings.info.fps, "startup_s": go - t0, "processing_s": end - go,
        "predictions": len(messages), "skipped_windows": int(result.summary.get("inferred", {}).get("skipped", 0))
        + int(result.summary.get("assembled", {}).get("skipped", 0)), "dropped": messages[-1]["dropped_frames"] if messages else 0,
        "engine": messages[-1]["engine"] if messages else settings.engine.name, "latency_ms": lat,
        "size": f"{settings.info.width}x{settings.info.height}", "fps": settings.info.fps,
    }


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    video = Path(args.video)
    if not video.is_file():
        raise SystemExit(f"bench live: video file not found: {video}")
    console = Console(stderr=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ia_bench_live_") as tmp_dir:
        tmp = Path(tmp_dir)
        ckpt, ckpt_desc = _checkpoint(args, tmp)
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            jsonl = tmp / f"{mode}.jsonl"
            argv = ["--video", str(video), "--checkpoint", str(ckpt), "--engine", args.engine, "--no-zmq",
                    "--quiet", "--dump-json", str(jsonl), "--pose-workers", str(args.pose_workers)]
            if args.threads:
                argv += ["--threads", str(args.threads)]
            if args.pose_model:
                argv += ["--pose-model", args.pose_model]
            if args.max_frames:
                argv += ["--max-frames", str(args.max_frames)]
            if mode == "realtime":
                argv.append("--realtime")
            elif mode != "file":
                raise SystemExit(f"bench live: unknown mode {mode!r} (file, realtime)")
            with console.status(f"running ia-live ({mode} mode) on {video.name} ..."):
                results[mode] = {"mode": mode, **_one_run(argv, jsonl)}

    table = Table(title=f"ia-live on {video.name} ({ckpt_desc}, {os.cpu_count()} CPUs)")
    table.add_column("metric")
    for mode in results:
        table.add_column(f"{mode} mode", justify="right")
    for r in results.values():
        r["rtf"] = r["video_s"] / r["processing_s"] if r["processing_s"] > 0 else float("nan")
    rows = [("engine", lambda r: r["engine"]), ("frames", lambda r: str(r["frames"])),
            ("predictions", lambda r: str(r["predictions"])), ("dropped frames", lambda r: str(r["dropped"])),
            ("skipped windows", lambda r: str(r["skipped_windows"])),
            ("start-up s", lambda r: f"{r['startup_s']:.1f}"),
            ("real-time factor", lambda r: f"{r['rtf']:.2f}" if r["mode"] == "file" else "paced")]
    rows += [(f"{stage} p50 / p95 ms", lambda r, s=stage: "{:.0f} / {:.0f}".format(*r["latency_ms"][s])) for stage in STAGES]
    for label, fn in rows:
        table.add_row(label, *(fn(r) for r in results.values()))
    Console(width=max(100, 30 + 24 * len(results))).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps({"video": str(video), "checkpoint": ckpt_desc, "results": results}, indent=2))
    return 0
