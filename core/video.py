"""The one place that decides a video's frame rate, frame count and size from what OpenCV reports.

Why: the live source (`realtime.sources`), the training reader (`train.data.video`) and pose extraction
(`tools.extract_poses`) each used to apply their own fallback when a container's frame rate was missing or
absurd. Sampling is defined in seconds (`core.sampling`), so a different fps means different frames: a pose
cache extracted with one rule and replayed with another would not line up. Every reader now asks here.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# quiet OpenCV/FFmpeg before cv2 loads (their warnings would break "one line per error")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__all__ = ["DEFAULT_FPS", "MIN_FPS", "MAX_FPS", "resolve_fps", "CaptureFacts", "capture_facts", "IMAGE_EXTENSIONS",
           "frame_files"]

#: what a video without a usable frame rate (and a folder of frames) is taken to run at
DEFAULT_FPS = 30.0
#: reported rates outside (MIN_FPS, MAX_FPS] are container garbage (0, NaN, 90000 time bases), not rates
MIN_FPS, MAX_FPS = 0.5, 1000.0
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def resolve_fps(reported: float | None, default: float = DEFAULT_FPS) -> tuple[float, bool]:
    """``(fps, known)``: the reported rate when it is plausible, else ``default`` with ``known=False``."""
    try:
        fps = float(reported or 0.0)
    except (TypeError, ValueError):
        fps = 0.0
    if not math.isfinite(fps) or fps <= MIN_FPS or fps > MAX_FPS:
        return float(default), False
    return fps, True


@dataclass(frozen=True)
class CaptureFacts:
    """What an opened `cv2.VideoCapture` claims. ``frame_count`` is the container's claim (decoding is the
    truth), None when it gives none."""

    fps: float
    fps_known: bool
    width: int
    height: int
    frame_count: int | None


def capture_facts(cap, default_fps: float = DEFAULT_FPS) -> CaptureFacts:
    """Facts of an opened capture, with the project's fps rule."""
    import cv2

    fps, known = resolve_fps(cap.get(cv2.CAP_PROP_FPS), default_fps)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return CaptureFacts(fps=fps, fps_known=known, width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                        height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0), frame_count=count if count > 0 else None)


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The images of a frame folder, in name order (a folder of frames is one video at `DEFAULT_FPS`)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
