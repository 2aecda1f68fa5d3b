"""Model cost per window: parameters, GFLOPs, CPU latency of eager PyTorch vs ONNX Runtime (batch 1).

    python -m tools.bench model [--presets table14 fast] [--repeats 10] [--threads 2] [--dump-json out.json]

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` on one batch-1 window; it counts a
multiply-add as 2 FLOPs (FLOPs = 2 x MACs) and only matmul/convolution-like ops (no BN, ReLU, softmax).
Latency: the median of `--repeats` timed runs after `--warmup` untimed ones, both engines in the same
process on the same inputs, one after the other.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from core.cliflags import add_alias

PRESETS = ("table13", "table14", "released_kinetics50", "released_ntu", "fast")


def cli(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), metavar="PRESET")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per engine (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for both engines")
    parser.add_argument("--dump-json", dest="json", default=None, metavar="PATH", help="also write the rows as JSON")
    add_alias(parser, "--json", "--dump-json")


def _median_ms(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * statistics.median(times)


def measure(preset: str, repeats: int, warmup: int, threads: int, workdir: Path) -> dict:
    import onnxruntime as ort
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from core.export import example_inputs, export_onnx, input_names
    from core.model import build_model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(preset).eval()
    inputs = example_inputs(model, batch=1)
    params = sum(p.numel() for p in model.parameters())
    args = {"rgb": None, "pose": None}
    args.update(zip(input_names(model), inputs))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(args["rgb"], args["pose"])
    flops = counter.get_total_flops()

    @torch.inference_mode()
    def run_torch():
        model(args["rgb"], args["pose"])

    torch_ms = _median_ms(run_torch, warmup, repeats)
    path = export_onnx(model, workdir / f"{preset}.onnx", dynamic_batch=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {n: t.numpy() for n, t in zip(input_names(model), inputs)}
    ort_ms = _median_ms(lambda: session.run(None, feeds), warmup, repeats)
    c = model.config
    return {"preset": preset, "streams": f"R{c.appearance_depth} x{c.frames} / R{c.pose_depth} x{c.pose_frames}"
            if c.uses_appearance and c.uses_pose else c.variant,
            "input": f"rgb {c.rgb_size}px, pose {c.num_pose_channels}ch {c.map_size}px",
            "params_m": params / 1e6, "gflops": flops / 1e9, "torch_ms": torch_ms, "onnxruntime_ms": ort_ms,
            "speedup": torch_ms / ort_ms}


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from core.model import PRESETS as ALL

    unknown = [p for p in args.presets if p not in ALL]
    if unknown:
        print(f"error: unknown preset {unknown[0]!r}; choose from {', '.join(ALL)}", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.threads < 1 or args.warmup < 0:
        print("error: --repeats and --threads must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Progress(transient=True) as progress:
        task = progress.add_task("measuring", total=len(args.presets))
        for preset in args.presets:
            progress.update(task, description=f"{preset}: export + {args.repeats} runs x 2 engines")
            rows.append(measure(preset, args.repeats, args.warmup, args.threads, Path(tmp)))
            progress.advance(task)
    table = Table(title=f"per window, batch 1, {args.threads} threads, median of {args.repeats}")
    for col in ("preset", "streams (depth x frames)", "input", "params (M)", "GFLOPs", "PyTorch ms",
                "ONNX Runtime ms", "PyTorch / ORT"):
        table.add_column(col, justify="left" if col in ("preset", "streams (depth x frames)", "input") else "right")
    for r in rows:
        table.add_row(r["preset"], r["streams"], r["input"], f"{r['params_m']:.2f}", f"{r['gflops']:.1f}",
                      f"{r['torch_ms']:.0f}", f"{r['onnxruntime_ms']:.0f}", f"{r['speedup']:.2f}x")
    Console(width=max(Console().width, 130)).print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0
