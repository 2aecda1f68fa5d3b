"""ONNX Runtime static int8 vs fp32 on evaluation clips: top-1 agreement, accuracy and latency (same run).

    python -m tools.bench int8 --checkpoint checkpoints/default.pt \
        --calib-index runs/synth_small/val.jsonl --eval-index runs/synth_small/test_in.jsonl runs/synth_small/test_out.jsonl

Clips come from the training Dataset in test mode (`train.cli.open_dataset`), i.e. the sampling, crop and
pose maps the checkpoint was evaluated with; calibration and evaluation use different clip indexes.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="checkpoints/default.pt")
    parser.add_argument("--calib-index", required=True, help="clip index whose clips calibrate the int8 ranges")
    parser.add_argument("--eval-index", nargs="+", required=True, help="clip indexes to measure agreement on")
    parser.add_argument("--calib-clips", type=int, default=32)
    parser.add_argument("--clips-per-video", type=int, default=2, help="test clips per video (evenly spread)")
    parser.add_argument("--max-videos", type=int, default=0, help="per eval index; 0 = all")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)


def _clips(index: str, config, per_video: int, max_videos: int) -> tuple[list, list[int]]:
    from train.cli import open_dataset

    dataset = open_dataset(index, config, "test", n_clips=per_video)
    n = len(dataset) if max_videos <= 0 else min(max_videos, len(dataset))
    clips, labels = [], []
    for i in range(n):
        item = dataset[i]
        for k in range(item["rgb"].shape[0] if "rgb" in item else item["pose"].shape[0]):
            rgb = item["rgb"][k:k + 1].numpy() if "rgb" in item else None
            pose = item["pose"][k:k + 1].numpy() if "pose" in item else None
            clips.append((rgb, pose))
            labels.append(int(item["label"]))
    return clips, labels


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from core.checkpoint import load_checkpoint
    from core.export import input_names
    from realtime.engines.onnxruntime_cpu import OnnxRuntimeEngine, ensure_int8, ensure_onnx

    console = Console(stderr=True)
    model = load_checkpoint(args.checkpoint)
    names = input_names(model)
    calib, _ = _clips(args.calib_index, model.config, args.clips_per_video, 0)
    calib = calib[: args.calib_clips]
    with tempfile.TemporaryDirectory() as tmp:
        console.log(f"exporting and quantizing ({len(calib)} calibration clips from {args.calib_index})")
        fp32 = OnnxRuntimeEngine(ensure_onnx(model, args.checkpoint, Path(tmp)), names, args.threads, "fp32")
        int8 = OnnxRuntimeEngine(ensure_int8(model, args.checkpoint, Path(tmp), calib), names, args.threads, "int8")
        table = Table(title=f"int8 vs fp32, {args.checkpoint}, {args.threads} threads")
        for col in ("clips", "n", "top-1 agreement", "fp32 top-1 acc", "int8 top-1 acc", "max |dp|"):
            table.add_column(col)
        example = None
        for index in args.eval_index:
            clips, labels = _clips(index, model.config, args.clips_per_video, args.max_videos)
            agree = acc32 = acc8 = 0
            max_dp = 0.0
            for (rgb, pose), label in zip(clips, labels):
                a, b = fp32(rgb, pose).probs, int8(rgb, pose).probs
                agree += int(a.argmax() == b.argmax())
                acc32 += int(a.argmax() == label)
                acc8 += int(b.argmax() == label)
                max_dp = max(max_dp, float(np.abs(a - b).max()))
            n = len(clips)
            table.add_row(Path(index).name, str(n), f"{agree}/{n} = {100 * agree / n:.1f}%", f"{100 * acc32 / n:.1f}%",
                          f"{100 * acc8 / n:.1f}%", f"{max_dp:.3f}")
            example = example or clips[0]
        times = {"fp32": [], "int8": []}
        for _ in range(args.repeats):  # interleaved, so load changes hit both alike
            for name, engine in (("fp32", fp32), ("int8", int8)):
                t0 = time.perf_counter()
                engine(*example)
                times[name].append(time.perf_counter() - t0)
        m32, m8 = (1000 * float(np.median(times[k])) for k in ("fp32", "int8"))
    Console().print(table)
    Console().print(f"median latency per window: fp32 {m32:.1f} ms, int8 {m8:.1f} ms, int8 speed-up {m32 / m8:.2f}x "
                    f"({args.repeats} interleaved runs)")
    return 0
