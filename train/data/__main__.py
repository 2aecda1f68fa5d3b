"""``python -m train.data``: build clip indexes from dataset layouts, and the decode benchmark.

    python -m train.data folder DIR --out INDEX.jsonl [--split train] [--poses CACHE_DIR]
    python -m train.data mimetics --csv mimetics_v1.0.csv --classes kinetics50_mimetics50_classes.txt \
        --videos DIR --poses CACHE_DIR --out mimetics.jsonl [--only-existing]
    python -m train.data ntu --skeletons DIR --videos DIR --classes label_map_ntu60.txt --out OUT_DIR [--protocol xsub]
    python -m train.data kinetics-skeleton --release DIR --split val --out OUT_DIR [--videos DIR] [--classes FILE]
    python -m train.data bench-decode VIDEO [--frames 8 --tau 8 --repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

from core.cliflags import make_parser, parse_or_exit
from core.errors import UserError, report


def _classes(path: str) -> list[str]:
    """A class list: one name per line, optionally ``name<TAB>index`` (first column kept)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [ln.split("\t")[0].strip() for ln in lines if ln.strip()]


def _bench_decode(args: argparse.Namespace) -> None:
    """Time reading one clip's frames: sequential grab/retrieve (ours) vs seeking to every frame."""
    import cv2
    import numpy as np

    from core.sampling import clip_indices, test_clip_starts

    from .video import probe_video, read_frames

    info = probe_video(args.video)

    def seek_each(idx):
        cap = cv2.VideoCapture(str(args.video))
        out = []
        for i in idx:
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
            out.append(cap.read()[1])
        cap.release()
        return out

    methods = {"sequential grab/retrieve": lambda idx: read_frames(args.video, idx, seek_threshold=10**9),
               "sequential + one seek (default)": lambda idx: read_frames(args.video, idx),
               "seek every frame": seek_each}
    starts = test_clip_starts(info.num_frames, info.fps, args.frames, args.tau, n_clips=3)
    print(f"{args.video}: {info.num_frames} frames {info.width}x{info.height} @ {info.fps:.2f} fps; "
          f"clip T={args.frames} tau={args.tau}; median of {args.repeats} runs (ms)")
    print(f"{'method':34s}" + "".join(f"  start={int(s):<5d}" for s in starts))
    for name, fn in methods.items():
        row = []
        for s in starts:
            idx = clip_indices(info.num_frames, info.fps, args.frames, args.tau, int(s))
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                fn(idx)
                times.append(time.perf_counter() - t)
            row.append(statistics.median(times) * 1000)
        print(f"{name:34s}" + "".join(f"  {v:11.1f}" for v in row))


def main(argv: Sequence[str] | None = None) -> int:
    p = make_parser(prog="python -m train.data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("folder", help="root/<class>/<video> -> clip index")
    f.add_argument("root")
    f.add_argument("--out", required=True)
    f.add_argument("--split", default="")
    f.add_argument("--poses", help="pose cache folder (<video stem>.npz)")
    m = sub.add_parser("mimetics", help="official Mimetics CSV -> clip index")
    m.add_argument("--csv", required=True)
    m.add_argument("--classes", required=True, help="kinetics50_mimetics50_classes.txt")
    m.add_argument("--videos", required=True)
    m.add_argument("--poses", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--only-existing", action="store_true")
    n = sub.add_parser("ntu", help="NTU RGB+D .skeleton files -> pose caches + train/test indexes")
    n.add_argument("--skeletons", required=True)
    n.add_argument("--videos", required=True)
    n.add_argument("--classes", required=True, help="label_map_ntu60.txt or label_map_ntu120.txt")
    n.add_argument("--out", required=True)
    n.add_argument("--protocol", default="xsub", choices=("xsub", "xview"))
    k = sub.add_parser("kinetics-skeleton", help="ST-GCN Kinetics-skeleton release -> pose caches + index")
    k.add_argument("--release", required=True, help="folder with kinetics_<split>/ and kinetics_<split>_label.json")
    k.add_argument("--split", default="val")
    k.add_argument("--out", required=True)
    k.add_argument("--videos", help="folder of the matching videos (their size is taken as 340x256)")
    k.add_argument("--classes", help="restrict to these classes (e.g. Kinetics50) and relabel in their order")
    b = sub.add_parser("bench-decode", help="time clip decoding strategies on a video")
    b.add_argument("video", type=Path)
    b.add_argument("--frames", type=int, default=8)
    b.add_argument("--tau", type=int, default=8)
    b.add_argument("--repeats", type=int, default=5)
    args = parse_or_exit(p, argv)
    try:
        if args.cmd == "folder":
            from .folder import build_folder_index

            path, count = build_folder_index(args.root, args.out, args.split, args.poses)
            print(f"{count} clips -> {path}")
        elif args.cmd == "mimetics":
            from .mimetics import build_mimetics_index

            path, count = build_mimetics_index(args.csv, args.classes, args.videos, args.out, args.poses,
                                               args.only_existing)
            print(f"{count} clips -> {path}")
        elif args.cmd == "ntu":
            from .ntu import build_ntu_index

            for path in build_ntu_index(args.skeletons, args.videos, args.out, _classes(args.classes), args.protocol):
                print(f"-> {path}")
        elif args.cmd == "kinetics-skeleton":
            from .kinetics_skeleton import build_kinetics_skeleton_index

            path = build_kinetics_skeleton_index(args.release, args.split, args.out, args.videos,
                                                 _classes(args.classes) if args.classes else None)
            print(f"-> {path}")
        else:
            _bench_decode(args)
    except (UserError, FileNotFoundError, ValueError) as exc:
        report(f"train.data {args.cmd}", exc, error=False)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
