"""INT8 for the ONNX Runtime CPU engine: static quantization calibrated on real clips.

Why static (QDQ, per-channel weights, activations calibrated with MinMax on real inputs) and not dynamic:
dynamic quantization re-computes activation ranges at run time and, for convolution-heavy networks like
these ResNets, ONNX Runtime runs it *slower* than fp32 (see docs/model.md, "Reduced precision on CPU").
Static quantization needs representative inputs: `real_clips` builds them from videos with the same
sampling, crop and pose-map code as training and the live pipeline (`core.sampling`, `core.preprocess`,
`core.posemaps`) and MoveNet poses, so the calibrated ranges are those the engine will see live.

    python -m realtime.engines.quantize --checkpoint ckpt.pt --videos a.mp4 b.mp4 --out calib.npz
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from core.cliflags import make_parser, parse_or_exit
from core.errors import report

__all__ = ["Clip", "CalibrationReader", "quantize_int8", "real_clips", "save_clips", "load_clips", "clips_digest"]

#: changes whenever `quantize_int8`'s recipe changes, so cached int8 engines of an older recipe are not reused
RECIPE = "qdq-conv-perchannel-rr-minmax-1"

Clip = tuple[np.ndarray, np.ndarray]  # rgb (1, T, 3, S, S), pose (1, T_pose, C, S/4, S/4), float32


def _reader_base():
    from onnxruntime.quantization import CalibrationDataReader

    return CalibrationDataReader


class CalibrationReader(_reader_base()):  # type: ignore[misc]
    """Feeds clips one at a time to the calibrator (ONNX Runtime's `CalibrationDataReader` protocol)."""

    def __init__(self, clips: Sequence[Clip], input_names: Sequence[str]) -> None:
        self.clips = list(clips)
        self.input_names = list(input_names)
        self._it = iter(self.clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self._it, None)
        if clip is None:
            return None
        rgb, pose = clip
        feeds = {"rgb": rgb, "pose": pose}
        return {name: np.ascontiguousarray(feeds[name], dtype=np.float32) for name in self.input_names}

    def rewind(self) -> None:
        self._it = iter(self.clips)


def clips_digest(clips: Sequence[Clip]) -> str:
    """Content hash of a calibration set (part of the int8 engine's cache key)."""
    digest = hashlib.sha256()
    for rgb, pose in clips:
        for arr in (rgb, pose):
            if arr is None:  # single-stream checkpoints have one input
                digest.update(b"none")
                continue
            digest.update(str(arr.shape).encode())
            digest.update(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
    return digest.hexdigest()


def quantize_int8(fp32_path: str | Path, out_path: str | Path, clips: Sequence[Clip],
                  per_channel: bool = True) -> Path:
    """Static int8 quantization of an fp32 ONNX model (QDQ, per-channel weights, MinMax calibration).

    Only convolutions are quantized (they are ~all of the FLOPs); the fusion (TCB/CGB Gemms), the head and
    the softmax stay fp32 (a negligible share of the FLOPs, and where int8 errors move the decision). ``reduce_range``
    (7-bit weights) avoids the int16 saturation of the u8s8 kernels that AVX2 CPUs without VNNI use; on a
    real-clip test it raised top-1 agreement with fp32 from 56% to 78% (docs/model.md).
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not clips:
        raise ValueError("int8 calibration needs at least one clip")
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    names = [i.name for i in onnx.load(str(fp32_path), load_external_data=False).graph.input]
    prepped = out_path.with_name(out_path.name + ".prep.onnx")
    tmp = out_path.with_name(out_path.name + ".tmp.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prepped), skip_symbolic_shape=True)
        quantize_static(str(prepped), str(tmp), CalibrationReader(clips, names), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, reduce_range=True, activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=["Conv"],
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        tmp.replace(out_path)
    finally:
        for p in (prepped, tmp):
            if p.exists():
                p.unlink()
    return out_path


def real_clips(config, videos: Iterable[str | Path], clips_per_video: int = 2, pose_model: str | Path | None = None,
               pose_threads: int = 1) -> list[Clip]:
    """Test-time clips of real videos: `test_clip_starts` spread over each video, MoveNet poses on the
    original frames, and the model inputs built by `core.clip.ClipBuilder.window`, the chain training and the
    live pipeline use."""
    import cv2

    from core.clip import ClipBuilder, InputSpec
    from core.posecache import stack_persons
    from core.sampling import clip_indices, test_clip_starts
    from core.skeletons import get_skeleton
    from core.video import capture_facts
    from realtime.pose.movenet import MoveNetBackend, default_model_path

    backend = MoveNetBackend(Path(pose_model) if pose_model else default_model_path(), threads=pose_threads)
    spec = InputSpec.from_config(config)
    joints = get_skeleton(backend.skeleton).num_joints
    clips: list[Clip] = []
    for video in videos:
        cap = cv2.VideoCapture(str(video))
        fps = capture_facts(cap, config.ref_fps).fps
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        if not frames:
            raise ValueError(f"cannot decode any frame of {video}")
        h, w = frames[0].shape[:2]
        builder = ClipBuilder(spec, h, w)
        poses: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        starts = test_clip_starts(len(frames), fps, config.frames, config.tau, clips_per_video, config.ref_fps)
        for start in starts:
            rgb_idx = clip_indices(len(frames), fps, config.frames, config.tau, float(start), config.ref_fps)
            pose_idx = clip_indices(len(frames), fps, config.pose_frames, config.pose_tau, float(start), config.ref_fps)
            for i in pose_idx:
                if int(i) not in poses:
                    poses[int(i)] = backend(frames[i], int(i))
            coords, scores = stack_persons([poses[int(i)][0] for i in pose_idx], [poses[int(i)][1] for i in pose_idx],
                                           joints)
            rgb, maps = builder.window(np.stack([frames[i] for i in rgb_idx]), coords, scores, backend.skeleton)
            clips.append((rgb[None].astype(np.float32), maps[None].astype(np.float32)))
    backend.close()
    return clips


def save_clips(path: str | Path, clips: Sequence[Clip]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, rgb=np.concatenate([c[0] for c in clips]), pose=np.concatenate([c[1] for c in clips]))
    return path


def load_clips(path: str | Path) -> list[Clip]:
    """Clips saved by `save_clips` (an .npz with `rgb` (N, T, 3, S, S) and `pose` (N, T_pose, C, M, M))."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"calibration file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            rgb, pose = data["rgb"].astype(np.float32), data["pose"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path} is not a calibration set (.npz with 'rgb' and 'pose'): {exc}") from None
    if rgb.ndim != 5 or pose.ndim != 5 or len(rgb) != len(pose) or not len(rgb):
        raise ValueError(f"{path}: expected rgb (N,T,3,S,S) and pose (N,T,C,M,M) with the same N >= 1")
    return [(rgb[i : i + 1], pose[i : i + 1]) for i in range(len(rgb))]


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(prog="python -m realtime.engines.quantize", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="project checkpoint (its config says how to sample)")
    parser.add_argument("--videos", nargs="+", required=True, help="real videos to calibrate on")
    parser.add_argument("--clips-per-video", type=int, default=2)
    parser.add_argument("--pose-model", default=None, help="MoveNet ONNX (default: models/ or $IA_LIVE_POSE_MODEL)")
    parser.add_argument("--out", required=True, help="calibration set to write (.npz)")
    args = parse_or_exit(parser, argv)
    try:
        from core.checkpoint import read_checkpoint
        from core.model import ModelConfig

        config = ModelConfig.from_dict(read_checkpoint(args.checkpoint)["config"])
        for v in args.videos:
            if not Path(v).is_file():
                raise ValueError(f"video not found: {v}")
        clips = real_clips(config, args.videos, args.clips_per_video, args.pose_model)
        save_clips(args.out, clips)
    except Exception as exc:  # one line, no traceback (project rule for bad input)
        report(None, exc)
        return 2
    print(f"wrote {len(clips)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
