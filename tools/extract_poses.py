"""Run a pose backend over a video set into per-video pose caches (``core.posecache``).

    python -m tools.extract_poses --index INDEX.jsonl --out CACHE_DIR --pose-backend movenet [--every N]
    python -m tools.extract_poses --videos DIR        --out CACHE_DIR --pose-backend movenet [backend flags]

One cache per video, ``CACHE_DIR/<video stem>.npz`` (the name the live ``file`` backend and the dataset
readers look for). Resumable: a video whose final cache exists, loads and was made with the same backend
and ``--every`` is skipped; while a video is being processed its progress is saved atomically every
``--checkpoint-frames`` processed frames (and on Ctrl-C/SIGTERM) to ``<stem>.partial.npz``, and a rerun
continues from there. The final file appears only once the whole video is done (write to a temporary
file, then rename), so a crash never leaves a truncated or half-filled ``<stem>.npz``.
Exit codes: 0 all done, 1 some videos failed (listed), 2 bad arguments, 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core.cliflags import add_alias, make_parser, parse_or_exit
from core.clipindex import read_clip_index, video_stem, write_clip_index
from core.errors import UserError, one_line, run_main
from core.posecache import PoseCache, PoseCacheError, load_pose_cache, save_pose_cache, stack_persons
from core.video import DEFAULT_FPS, capture_facts, frame_files, resolve_fps

__all__ = ["main", "extract_video", "collect_videos", "cache_path_for", "partial_path_for", "is_complete"]


class Interrupted(Exception):
    """Raised from the signal handler so the current partial state is saved before exiting."""


@dataclass
class VideoResult:
    video: Path
    status: str  # "done" | "skipped" | "resumed" | "failed"
    frames_run: int = 0
    message: str = ""


def cache_path_for(out_dir: Path, video: Path) -> Path:
    return out_dir / f"{video_stem(video)}.npz"


def partial_path_for(out_dir: Path, video: Path) -> Path:
    return out_dir / f"{video_stem(video)}.partial.npz"


def is_complete(path: Path, estimator: str, every: int) -> bool:
    """A finished cache from the same backend and sampling (anything else is recomputed)."""
    if not path.is_file():
        return False
    try:
        cache = load_pose_cache(path)
    except PoseCacheError:
        return False
    return (cache.meta.get("complete", "1") == "1" and cache.estimator == estimator
            and cache.meta.get("every", "1") == str(every))


def collect_videos(index: str | None, videos: str | None) -> list[Path]:
    """Videos of a clip index (deduplicated, in order) or every video/frame folder under a directory."""
    if index is not None:
        clips = read_clip_index(index)
        seen: dict[str, Path] = {}
        for clip in clips:
            seen.setdefault(str(clip.video), Path(clip.video))
        return list(seen.values())
    from core.video import IMAGE_EXTENSIONS
    from train.data.folder import VIDEO_EXTENSIONS

    root = Path(videos)  # type: ignore[arg-type]
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files = sorted(f for f in filenames if not f.startswith("."))
        if any(Path(f).suffix.lower() in IMAGE_EXTENSIONS for f in files) and Path(dirpath) != root:
            found.append(Path(dirpath))  # a folder of frames is one video
            continue
        found.extend(Path(dirpath) / f for f in files if Path(f).suffix.lower() in VIDEO_EXTENSIONS)
    return found


class _FrameSource:
    """Sequential frames of a video file or frame folder (BGR), with its fps and size (`core.video`'s rules,
    the ones training and the live pipeline read the video with)."""

    def __init__(self, path: Path, default_fps: float = DEFAULT_FPS) -> None:
        self.path = path
        self.files: list[Path] | None = None
        self.cap: cv2.VideoCapture | None = None
        if path.is_dir():
            self.files = frame_files(path)
            if not self.files:
                raise ValueError(f"{path}: frame folder has no images")
            first = cv2.imread(str(self.files[0]))
            if first is None:
                raise ValueError(f"{self.files[0]}: unreadable image")
            self.fps, self.height, self.width = resolve_fps(default_fps)[0], first.shape[0], first.shape[1]
            self.frame_count = len(self.files)
        else:
            if not path.is_file():
                raise ValueError(f"{path}: video not found")
            self.cap = cv2.VideoCapture(str(path))
            if not self.cap.isOpened():
                raise ValueError(f"{path}: OpenCV cannot open this video")
            facts = capture_facts(self.cap, default_fps)
            self.fps, self.width, self.height = facts.fps, facts.width, facts.height
            self.frame_count = facts.frame_count or 0
        self.pos = 0

    def skip(self) -> bool:
        """Advance one frame without decoding it to an image (cheaper than read)."""
        if self.files is not None:
            ok = self.pos < len(self.files)
        else:
            ok = bool(self.cap.grab())  # type: ignore[union-attr]
        self.pos += ok
        return ok

    def read(self) -> np.ndarray | None:
        if self.files is not None:
            if self.pos >= len(self.files):
                return None
            frame = cv2.imread(str(self.files[self.pos]), cv2.IMREAD_COLOR)
            if frame is None:
                raise ValueError(f"{self.files[self.pos]}: unreadable image")
        else:
            ok, frame = self.cap.read()  # type: ignore[union-attr]
            if not ok:
                return None
        self.pos += 1
        return frame

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()


def _to_cache(coords: list[np.ndarray], scores: list[np.ndarray], valid: list[bool], skeleton: str,
              src: _FrameSource, estimator: str, every: int, complete: bool, joints: int) -> PoseCache:
    c, s = stack_persons(coords, scores, joints)
    return PoseCache(coords=c, scores=s, skeleton=skeleton, fps=src.fps, width=src.width, height=src.height,
                     valid=np.asarray(valid, bool), source=src.path.name, estimator=estimator,
                     meta={"complete": "1" if complete else "0", "every": str(every),
                           "next_frame": str(len(valid)),
                           # persons returned per frame, so a resumed run pads exactly as an uninterrupted one
                           **({} if complete else {"persons": ",".join(str(len(x)) for x in coords)})})


def extract_video(video: Path, out_dir: Path, backend, estimator: str, every: int = 1,
                  checkpoint_frames: int = 500, progress=None, task=None) -> VideoResult:
    """Pose one video into ``out_dir`` (resuming from a partial cache if one exists)."""
    from core.skeletons import get_skeleton

    final, partial = cache_path_for(out_dir, video), partial_path_for(out_dir, video)
    skeleton = backend.skeleton
    joints = get_skeleton(skeleton).num_joints
    coords: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    valid: list[bool] = []
    resumed = False
    if partial.is_file():
        try:
            old = load_pose_cache(partial)
            if old.estimator == estimator and old.meta.get("every") == str(every) and old.skeleton == skeleton:
                n = int(old.meta.get("next_frame", old.num_frames))
                persons = [int(x) for x in old.meta.get("persons", "").split(",") if x]
                if len(persons) != n or n > old.num_frames:
                    raise ValueError("inconsistent partial cache")
                for f, p in enumerate(persons):
                    coords.append(old.coords[f, :p])
                    scores.append(old.scores[f, :p])
                    valid.append(bool(old.valid[f]))
                resumed = True
        except (PoseCacheError, ValueError):
            pass  # unusable partial: start over
    src = _FrameSource(video)
    frames_run = 0
    try:
        if progress is not None:
            progress.update(task, total=src.frame_count or None, completed=len(valid),
                            description=f"{video.name}{' (resumed)' if resumed else ''}")
        for _ in range(len(valid)):
            if not src.skip():
                raise ValueError(f"{video}: shorter than its partial cache ({len(valid)} frames)")
        since_save = 0
        while True:
            f = src.pos
            if f % every == 0:
                frame = src.read()
                if frame is None:
                    break
                c, s = backend(frame, f)
                c = np.asarray(c, np.float32).reshape(-1, joints, 2)
                s = np.asarray(s, np.float32).reshape(-1, joints)
                coords.append(c)
                scores.append(s)
                valid.append(True)
                frames_run += 1
                since_save += 1
            else:
                if not src.skip():
                    break
                coords.append(np.zeros((0, joints, 2), np.float32))
                scores.append(np.zeros((0, joints), np.float32))
                valid.append(False)
            if progress is not None:
                progress.update(task, completed=len(valid))
            if checkpoint_frames > 0 and since_save >= checkpoint_frames:
                save_pose_cache(partial, _to_cache(coords, scores, valid, skeleton, src, estimator, every,
                                                   False, joints))
                since_save = 0
    except (Interrupted, KeyboardInterrupt):
        if valid:
            save_pose_cache(partial, _to_cache(coords, scores, valid, skeleton, src, estimator, every, False,
                                               joints))
        raise
    finally:
        src.close()
    if not valid:
        return VideoResult(video, "failed", frames_run, f"{video}: no decodable frames")
    save_pose_cache(final, _to_cache(coords, scores, valid, skeleton, src, estimator, every, True, joints))
    partial.unlink(missing_ok=True)
    return VideoResult(video, "resumed" if resumed else "done", frames_run)


def build_parser(argv: Sequence[str] | None) -> argparse.ArgumentParser:
    parser = make_parser(prog="python -m tools.extract_poses",
                         description="Extract per-video pose caches with a pose backend.")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", help="clip index (.jsonl) whose videos to process")
    src.add_argument("--videos", help="folder searched recursively for videos / frame folders")
    parser.add_argument("--out", required=True, help="cache folder (<video stem>.npz per video)")
    parser.add_argument("--pose-backend", dest="backend", default="movenet", help="pose backend (realtime.pose)")
    parser.add_argument("--every", type=int, default=1, help="run the backend on every N-th frame (default 1); "
                        "other frames are stored as unprocessed (valid=False)")
    parser.add_argument("--checkpoint-frames", type=int, default=500,
                        help="save a resumable partial cache every N processed frames (0: only on interrupt)")
    parser.add_argument("--overwrite", action="store_true", help="recompute caches that already exist")
    parser.add_argument("--write-index", metavar="PATH",
                        help="with --index: write a copy of the index whose 'poses' point at the caches")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    add_alias(parser, "--backend", "--pose-backend")
    # the chosen backend owns its flags (e.g. --pose-model); only that backend is imported. A bare pre-parser
    # finds it, so that a missing required flag is reported once, by the full parse.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--pose-backend", "--backend", dest="backend", default="movenet")
    known, _ = pre.parse_known_args(argv)
    try:
        from realtime.pose import get_backend

        get_backend(known.backend).cli(parser)
    except Exception as exc:  # unknown backend or import failure: report it after parsing
        parser.set_defaults(_backend_error=one_line(exc))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parse_or_exit(parser, argv)
    return run_main(lambda: _main(args), "extract_poses",
                    interrupted="interrupted; rerun the same command to resume")


def _main(args: argparse.Namespace) -> int:
    err = getattr(args, "_backend_error", None)
    if err:
        raise UserError(f"pose backend {args.backend!r}: {err}")
    if args.every < 1:
        raise UserError("--every must be >= 1")
    if args.write_index and not args.index:
        raise UserError("--write-index needs --index")
    videos = collect_videos(args.index, args.videos)
    if not videos:
        raise UserError(f"no videos found in {args.index or args.videos}")
    stems: dict[str, Path] = {}
    for v in videos:
        other = stems.setdefault(video_stem(v), v)
        if other != v:
            raise UserError(f"{other} and {v} share the stem {video_stem(v)!r} (caches are named by stem)")
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    from realtime.pose import get_backend
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    backend_cls = get_backend(args.backend)
    estimator = args.backend

    def _on_signal(signum, frame):  # noqa: ARG001
        raise Interrupted()

    old_handler = signal.signal(signal.SIGTERM, _on_signal)
    results: list[VideoResult] = []
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    t0 = time.perf_counter()
    try:
        with Progress(*columns, console=console, disable=args.quiet, transient=False) as progress:
            overall = progress.add_task("videos", total=len(videos))
            per_video = progress.add_task("", total=None)
            for video in videos:
                final = cache_path_for(out_dir, video)
                if not args.overwrite and is_complete(final, estimator, args.every):
                    results.append(VideoResult(video, "skipped"))
                    progress.advance(overall)
                    continue
                if args.overwrite:
                    partial_path_for(out_dir, video).unlink(missing_ok=True)
                backend = backend_cls.configure(args, str(video))   # a PoseBackendError ends the run (exit 2)
                try:
                    results.append(extract_video(video, out_dir, backend, estimator, args.every,
                                                 args.checkpoint_frames, progress, per_video))
                except (ValueError, PoseCacheError, OSError) as exc:
                    results.append(VideoResult(video, "failed", message=one_line(exc)))
                finally:
                    backend.close()
                progress.advance(overall)
    except Interrupted:
        raise KeyboardInterrupt from None   # run_main: one line, exit 130
    finally:
        signal.signal(signal.SIGTERM, old_handler)

    if args.write_index:
        clips = read_clip_index(args.index)
        for clip in clips:
            clip.poses = cache_path_for(out_dir, Path(clip.video)).absolute()
        classes_file = Path(args.index).parent / "classes.txt"
        from core.clipindex import read_classes

        write_clip_index(args.write_index, clips, read_classes(classes_file) if classes_file.is_file() else None)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "resumed", "skipped", "failed")}
    frames = sum(r.frames_run for r in results)
    print(f"extract_poses: {counts['done']} done, {counts['resumed']} resumed, {counts['skipped']} skipped, "
          f"{counts['failed']} failed; {frames} frames posed in {time.perf_counter() - t0:.1f} s -> {out_dir}",
          file=sys.stderr)
    for r in results:
        if r.status == "failed":
            print(f"  failed: {r.message}", file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
