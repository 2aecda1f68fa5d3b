"""`ia-live`: real-time action recognition from a camera, a video file or a stream.

    ia-live --camera 0
    ia-live --video clip.mp4 --dump-json            # JSON Lines on stdout, one line per prediction
    ia-live --video rtsp://host/stream --reconnect --output annotated.mp4
    ia-live --demo                                  # make (once) and run a short sample video

Every failure a user can cause (bad path, corrupt video, camera that does not open, checkpoint that
does not fit, port in use) ends with one line on stderr and a non-zero exit code, never a traceback
(set IA_LIVE_DEBUG=1 to see them).
"""
from __future__ import annotations

import os

# Before cv2 loads anywhere (sources, pose backends): its warnings would break "one line per error".
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from core.cliflags import CliError as UsageError  # noqa: E402  (bad input on the command line: one line, exit 2)
from core.cliflags import add_alias, make_parser, non_negative_float, parse_args, positive_float, positive_int  # noqa: E402
from core.errors import EXIT_SIGINT, EXIT_USAGE, UserError, one_line  # noqa: E402
from realtime import defaults  # noqa: E402
from realtime.camera import CameraSettings  # noqa: E402

REPO_ROOT = defaults.REPO_ROOT
DEFAULT_CHECKPOINT = defaults.CHECKPOINT
DEMO_VIDEO = REPO_ROOT / ".cache" / "demo.mp4"
DEFAULT_ZMQ = defaults.ZMQ_ENDPOINT
DEFAULT_TOPIC = defaults.TOPIC
DEFAULT_AVERAGE = defaults.AVERAGE
PROG = "ia-live"





def _probability(value: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {value!r}") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {value!r}")
    return x


def default_threads() -> int:
    """Inference threads: half the cores (pose, decoding and assembly run beside it), at least 1."""
    return max(1, (os.cpu_count() or 2) // 2)


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(PROG, __doc__.split("\n\n")[0])
    src = parser.add_argument_group("source (exactly one)")
    ex = src.add_mutually_exclusive_group()
    ex.add_argument("--camera", type=int, metavar="N", help="camera index (OpenCV)")
    ex.add_argument("--video", metavar="PATH|URL", help="video file, or rtsp:// http(s):// ... stream URL")
    ex.add_argument("--demo", action="store_true",
                    help=f"generate (once) a short sample video in {DEMO_VIDEO.parent.name}/ and print its labels")
    src.add_argument("--realtime", action="store_true",
                     help="pace a file at its fps like a camera (drop frames instead of waiting)")
    src.add_argument("--reconnect", action="store_true",
                     help="wait for a camera/stream that is not up yet, and reopen a lost one, with back-off")
    src.add_argument("--reconnect-timeout", type=non_negative_float, default=defaults.RECONNECT_TIMEOUT_S,
                     metavar="SECONDS", help="with --reconnect: give up once unreachable this long (0: never)")
    src.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N source frames")
    CameraSettings.cli(parser)

    model = parser.add_argument_group("model")
    model.add_argument("--checkpoint", default=None, metavar="PATH",
                       help=f"IntegralAction Live checkpoint (default: {DEFAULT_CHECKPOINT.relative_to(REPO_ROOT)})")
    from realtime.engines import engine_names

    model.add_argument("--engine", default=defaults.ENGINE, choices=engine_names(),
                       help="inference engine; auto = first available of tensorrt, cuda, onnxruntime, torch")
    model.add_argument("--threads", type=positive_int, default=default_threads(),
                       help="intra-op threads of the inference engine")

    timing = parser.add_argument_group("sampling and smoothing")
    timing.add_argument("--ref-fps", type=positive_float, default=None,
                        help="frame rate the checkpoint's tau refers to (default: the checkpoint's, 30)")
    timing.add_argument("--stride", type=positive_int, default=defaults.STRIDE,
                        help="predict every N sampled (RGB) frames")
    timing.add_argument("--average", type=positive_int, default=DEFAULT_AVERAGE,
                        help="average the probabilities of the last N windows")
    timing.add_argument("--top-k", dest="topk", type=positive_int, default=defaults.TOPK, help="labels per prediction")
    timing.add_argument("--threshold", type=_probability, default=None, metavar="P",
                        help="abstain (action 'no_action') unless the top action class reaches P "
                             "(default: the checkpoint's calibrated threshold)")

    pose = parser.add_argument_group("pose estimation")
    pose.add_argument("--pose-backend", dest="pose", default=defaults.POSE_BACKEND, metavar="BACKEND",
                      help="pose backend")
    pose.add_argument("--pose-workers", type=positive_int, default=defaults.POSE_WORKERS, help="pose estimation processes")
    try:
        from realtime.pose import BACKENDS, add_cli

        pose.description = "backends: " + ", ".join(BACKENDS)
        add_cli(parser)
    except ImportError:
        pass

    out = parser.add_argument_group("outputs")
    out.add_argument("--zmq", default=DEFAULT_ZMQ, metavar="ENDPOINT", help="ZeroMQ PUB endpoint")
    out.add_argument("--no-zmq", action="store_true", help="do not publish on ZeroMQ")
    out.add_argument("--topic", default=DEFAULT_TOPIC, help="ZeroMQ topic")
    out.add_argument("--dump-json", nargs="?", const="-", default=None, metavar="PATH",
                     help="write JSON Lines to PATH (stdout when PATH is omitted)")
    out.add_argument("--heartbeat", type=non_negative_float, default=defaults.HEARTBEAT_S, metavar="S",
                     help="publish a heartbeat on ZeroMQ after S seconds without a message (0: never)")
    out.add_argument("--wait-subscribers", type=positive_int, default=0, metavar="N",
                     help="do not start until N ZeroMQ subscribers listen (default: start at once)")
    out.add_argument("--wait-timeout", type=positive_float, default=defaults.WAIT_TIMEOUT_S, metavar="S",
                     help="fail when --wait-subscribers is not met within S seconds")
    out.add_argument("--output", metavar="PATH",
                     help="write an annotated video (mp4, H.264): every source frame at the source fps")
    out.add_argument("--quiet", action="store_true", help="no console view or progress lines")
    try:
        from realtime.engines import add_cli as add_engine_cli

        add_engine_cli(parser)
    except ImportError:
        pass
    _add_deprecated_aliases(parser)
    return parser


def _add_deprecated_aliases(parser: argparse.ArgumentParser) -> None:
    """Names this release renamed (docs/cli.md); they still work, with a one-line warning, until the next."""
    for old, new in (("--pose", "--pose-backend"), ("--topk", "--top-k")):
        add_alias(parser, old, new)


# --------------------------------------------------------------------------------------------------


def _load_model(path: Path):
    """The checkpoint read once (`core.checkpoint.CheckpointBlob`: bytes + sha256) and fully loaded, which
    catches shape mismatches before any process starts."""
    from core.checkpoint import CheckpointBlob

    if not path.exists():
        hint = ("train one (docs/training.md: `python -m train.experiment ...`) or convert the authors' "
                "release (`python -m tools.import_official`), then pass --checkpoint PATH")
        raise UsageError(f"checkpoint not found: {path}; {hint}")
    try:
        blob = CheckpointBlob.read(path)
        model = blob.model()
    except UserError as exc:
        raise UsageError(one_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise UsageError(f"cannot load checkpoint {path}: {one_line(exc, 200)}") from None
    return blob, model


def _configure_pose(args: argparse.Namespace, source_name: str, skeleton: str):
    """Configure the pose backend once, in the parent, so its errors are immediate; the configured backend
    (closed again: its runtime opens lazily in each worker) is what the workers run."""
    try:
        from realtime.pose import get_backend
    except ImportError as exc:
        raise UsageError(f"pose backends are not available: {exc}") from None
    import numpy as np

    from core.skeletons import convert_keypoints, get_skeleton

    try:
        backend = get_backend(args.pose).configure(args, source_name)
    except (UserError, KeyError, ValueError) as exc:
        raise UsageError(one_line(exc).strip("'\"")) from None
    backend.close()
    src = backend.skeleton
    try:
        get_skeleton(skeleton)
        j = get_skeleton(src).num_joints
        convert_keypoints(np.zeros((1, j, 2), np.float32), np.zeros((1, j), np.float32), src, skeleton)
    except ValueError as exc:
        raise UsageError(f"the checkpoint expects {skeleton} poses, which pose backend {args.pose!r} "
                         f"({src}) cannot provide: {exc}") from None
    return backend


def _check_clip_length(spec, info, plan, config, ref_fps: float) -> None:
    """Refuse a file shorter than one prediction window now, before the pose model and engine load (a
    30-45 s start-up that would end in "0 predictions"). The window rule is `core.sampling`'s, the one
    the stream sampler follows; the length is the container's frame count. (A --max-frames below a window
    is the user's own limit, e.g. a smoke run of the start-up, and stays allowed.)"""
    from core.sampling import frames_needed

    if spec.kind != "file" or info.frame_count is None:
        return
    need = frames_needed(info.fps, plan.pose_frames, float(config.pose_tau), ref_fps)
    have = info.frame_count
    if have < need:
        raise UsageError(f"{spec.target} is too short for one prediction: {have} frames at {info.fps:.2f} fps, the "
                         f"checkpoint's window needs {need} frames ({plan.pose_frames} sampled frames, "
                         f"tau {float(config.pose_tau):g} at {ref_fps:g} fps)")


def make_demo_video(path: Path = DEMO_VIDEO, seconds: float = 6.0, fps: float = 30.0) -> Path:
    """A short synthetic clip (a filled figure doing jumping jacks on a textured wall), made once."""
    if path.exists() and path.stat().st_size > 0:
        return path
    import cv2
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = 340, 256
    tmp = path.with_suffix(".tmp.mp4")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise UsageError(f"cannot write the demo video {path} (OpenCV mp4v writer unavailable)")
    yy, xx = np.mgrid[0:h, 0:w]
    wall = np.stack([90 + 30 * np.sin(xx / 9.0), 110 + 20 * np.cos(yy / 7.0), 140 + 25 * np.sin((xx + yy) / 13.0)], -1)
    wall[h * 3 // 4:] = (70, 90, 80)
    wall = wall.astype(np.uint8)
    for i in range(int(seconds * fps)):
        img = wall.copy()
        phase = (np.sin(2 * np.pi * i / fps * 1.2) + 1) / 2  # 0 = arms down/legs together, 1 = spread
        cx, hip_y, shoulder_y = w // 2, 150, 95
        skin, shirt, trousers = (150, 180, 220), (40, 60, 200), (80, 50, 40)
        arm = np.deg2rad(20 + 140 * phase)
        leg = np.deg2rad(4 + 18 * phase)
        for side in (-1, 1):
            sx = cx + side * 18
            elbow = (int(sx + side * 28 * np.sin(arm)), int(shoulder_y + 28 * np.cos(arm)))
            hand = (int(sx + side * 54 * np.sin(arm)), int(shoulder_y + 54 * np.cos(arm)))
            cv2.line(img, (sx, shoulder_y), elbow, shirt, 9, cv2.LINE_AA)
            cv2.line(img, elbow, hand, skin, 7, cv2.LINE_AA)
            hx = cx + side * 10
            knee = (int(hx + side * 30 * np.sin(leg)), int(hip_y + 30 * np.cos(leg)))
            foot = (int(hx + side * 60 * np.sin(leg)), int(hip_y + 60 * np.cos(leg)))
            cv2.line(img, (hx, hip_y), knee, trousers, 11, cv2.LINE_AA)
            cv2.line(img, knee, foot, trousers, 10, cv2.LINE_AA)
        cv2.ellipse(img, (cx, (shoulder_y + hip_y) // 2), (20, (hip_y - shoulder_y) // 2 + 4), 0, 0, 360, shirt, -1, cv2.LINE_AA)
        cv2.circle(img, (cx, shoulder_y - 20), 13, skin, -1, cv2.LINE_AA)
        cv2.circle(img, (cx - 5, shoulder_y - 22), 2, (30, 30, 30), -1)
        cv2.circle(img, (cx + 5, shoulder_y - 22), 2, (30, 30, 30), -1)
        writer.write(img)
    writer.release()
    os.replace(tmp, path)
    return path


def _tell_retry(error: str, waited_s: float) -> None:
    print(f"{PROG}: {error}; retrying (--reconnect, {waited_s:.0f} s so far)", file=sys.stderr, flush=True)


def prepare(args: argparse.Namespace):
    """Validate everything a user can get wrong, in the parent, before any process starts; returns the
    run's `realtime.settings.Settings`."""
    from core.decision import DecisionRule
    from realtime.engines import configure_engine
    from realtime.settings import ModelInfo, OutputOptions, PoseOptions, PredictionOptions, Settings
    from realtime.sources import make_spec, probe_until_reachable
    from realtime.window import WindowPlan

    if args.demo:
        args.video = str(make_demo_video())
    if args.camera is None and args.video is None:
        raise UsageError("give a source: --camera N, --video PATH|URL or --demo")
    try:
        spec = make_spec(args.camera, args.video, realtime=args.realtime, reconnect=args.reconnect,
                         max_frames=args.max_frames, reconnect_timeout=args.reconnect_timeout,
                         camera_settings=CameraSettings.configure(args))
        info = probe_until_reachable(spec, on_retry=None if args.quiet else _tell_retry)
    except UserError as exc:
        raise UsageError(one_line(exc)) from None
    checkpoint = Path(args.checkpoint) if args.checkpoint else DEFAULT_CHECKPOINT
    blob, model = _load_model(checkpoint)
    config, extra = model.config, dict(getattr(model, "checkpoint_extra", {}) or {})
    try:
        rule = DecisionRule.from_checkpoint(extra, args.threshold)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"checkpoint {checkpoint} has an invalid decision rule: {exc}") from None
    try:
        plan = WindowPlan.from_config(config, stride=args.stride)
    except UserError as exc:
        raise UsageError(f"checkpoint {checkpoint} cannot be streamed: {exc}") from None
    _check_clip_length(spec, info, plan, config, float(args.ref_fps or config.ref_fps))
    backend = _configure_pose(args, spec.name, config.skeleton)
    zmq = None if args.no_zmq else args.zmq
    if args.wait_subscribers and zmq is None:
        raise UsageError("--wait-subscribers needs ZeroMQ: drop --no-zmq")
    allow_remote = args.zmq != DEFAULT_ZMQ  # a non-loopback bind only when the user typed it
    if zmq:
        from realtime.publish import check_endpoint

        try:
            zmq = check_endpoint(zmq, allow_remote=allow_remote)
        except Exception as exc:  # noqa: BLE001
            raise UsageError(one_line(exc)) from None
    if args.output and not str(args.output).lower().endswith((".mp4", ".m4v", ".mov", ".avi")):
        raise UsageError(f"--output must be a video file name (.mp4), got {args.output}")
    for path in (args.output, args.dump_json if args.dump_json not in (None, "-") else None):
        if path:   # a missing folder is made, as the training commands make their --out (runs/ on a fresh clone)
            folder = Path(path).resolve().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise UsageError(f"cannot write {path}: a file stands where its folder would be") from None
            except OSError as exc:
                raise UsageError(f"cannot create the output folder {Path(path).parent}: {exc.strerror or exc}") from None
    try:
        engine = configure_engine(args.engine, args)
    except UserError as exc:
        raise UsageError(one_line(exc)) from None
    return Settings(
        source=spec, info=info,
        model=ModelInfo(config=config, class_names=tuple(model.class_names), name=checkpoint.name,
                        path=str(checkpoint), sha256=blob.sha256, decision=rule),
        engine=engine, pose=PoseOptions(backend=backend, workers=args.pose_workers),
        prediction=PredictionOptions(stride=args.stride, average=args.average, topk=args.topk,
                                     ref_fps=float(args.ref_fps or config.ref_fps)),
        output=OutputOptions(zmq=zmq, zmq_allow_remote=allow_remote, topic=args.topic, jsonl=args.dump_json,
                             video_out=args.output, quiet=args.quiet, print_labels=args.demo,
                             heartbeat=args.heartbeat, wait_subscribers=args.wait_subscribers,
                             wait_timeout=args.wait_timeout),
        threads=args.threads, checkpoint=blob,
    )


def main(argv: list[str] | None = None) -> int:
    """Run `ia-live`; returns the exit code. Invoked as a program (`argv` None) it ends the process
    with `os._exit` once the pipeline is down: every child is joined and every shared-memory segment
    unlinked by then, and the interpreter's own teardown of torch/onnxruntime would add 1-2 s to
    every Ctrl-C."""
    code = _main(argv)
    if argv is None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)
    return code


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
        settings = prepare(args)
    except UserError as exc:
        print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, UsageError) else exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    from realtime.console import StartupStatus
    from realtime.supervisor import run

    if not args.quiet:
        info = settings.info
        print(f"{PROG}: {settings.source.name} ({info.width}x{info.height} @ {info.fps:.2f} fps"
              f"{', live' if settings.source.live else ''}) -> {settings.model.name}, pose {settings.pose.name}"
              f" x{settings.pose.workers}, engine {settings.engine.name}", file=sys.stderr, flush=True)
    start = time.monotonic()
    status = StartupStatus(enabled=not args.quiet, source=settings.source.name)
    try:
        result = run(settings, on_event=status.event)
    finally:
        status.close()
    if result.message:
        print(f"{PROG}: {'error: ' if result.code not in (0, 130, 143) else ''}{result.message}", file=sys.stderr)
    elif not args.quiet:
        s = result.summary
        published = s.get("published", {}).get("messages", 0)
        frames = s.get("captured", {}).get("frames", 0)
        skipped = s.get("captured", {}).get("skipped_frames", 0)
        extra = f" ({skipped} undecodable frames skipped)" if skipped else ""
        video = s.get("video")
        if video:
            extra += f", {video['frames']} annotated frames ({video['codec']}) in {video['path']}"
        print(f"{PROG}: {published} predictions from {frames} frames{extra} in {time.monotonic() - start:.1f} s",
              file=sys.stderr)
    return result.code


if __name__ == "__main__":
    sys.exit(main())
