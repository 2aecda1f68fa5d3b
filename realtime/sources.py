"""Frame sources: cameras, video files, and network streams, with up-front validation.

Two behaviours, decided by `SourceSpec.live`:

* files (default): every frame, in order, as fast as the consumer takes them; timestamps are media time
  (`index / fps`), so a run is deterministic;
* live (cameras, URLs, and files with `realtime=True`): frames arrive on their own clock. The source never
  waits for the pipeline (a camera would buffer and latency would grow); the capture process drops what the
  pipeline cannot take. Files in realtime mode are paced at their fps to emulate a camera.

Validation happens in `probe()`, which opens the source and decodes one frame, so a missing, empty or
corrupt file, or a camera that does not open, fails in the parent before any process starts.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

# Quiet OpenCV and FFmpeg before cv2 loads (their warnings would break "one line per error"); the
# environment is inherited by spawned processes.
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from core.errors import UserError
from core.video import DEFAULT_FPS, capture_facts
from realtime.camera import CameraSettings

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
OPEN_TIMEOUT_MS = 5000
READ_TIMEOUT_MS = 5000
#: a file whose decoder fails this many frames in a row (and whose container gives no frame count) has ended
MAX_UNDECODABLE = 64
BACKOFF_START_S, BACKOFF_MAX_S = 0.5, 8.0


class SourceError(UserError, RuntimeError):
    """The source cannot be used; the message is one line naming the source and the problem."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str                 # "camera" | "file" | "stream"
    target: str               # camera index, path, or URL
    realtime: bool = False    # files only: pace at the file's fps and drop like a camera
    reconnect: bool = False   # live only: reopen with back-off after a disconnect (and at start-up)
    max_frames: int | None = None
    reconnect_timeout: float = 0.0   # give up once unreachable this long, s (0: never)
    camera_settings: CameraSettings | None = None   # cameras only: --camera-width/-height/-fps/-fourcc

    @property
    def live(self) -> bool:
        return self.kind != "file" or self.realtime

    @property
    def name(self) -> str:
        """The `source` field of messages."""
        return f"camera:{self.target}" if self.kind == "camera" else self.target


@dataclass(frozen=True)
class SourceInfo:
    fps: float                # frames per second (DEFAULT_FPS when the container does not say)
    fps_known: bool
    width: int
    height: int
    frame_count: int | None   # container's claim, files only (decoding is the truth)


@dataclass
class Frame:
    index: int          # 0-based, counts every frame read from the source (across reconnects)
    timestamp: float    # seconds: media time for files, time since the first frame for live sources
    wall_time: float    # unix time the frame was read
    image: np.ndarray   # BGR uint8 (H, W, 3)


def make_spec(camera: int | None = None, video: str | None = None, *, realtime: bool = False,
              reconnect: bool = False, max_frames: int | None = None, reconnect_timeout: float = 0.0,
              camera_settings: CameraSettings | None = None) -> SourceSpec:
    if (camera is None) == (video is None):
        raise SourceError("give exactly one of --camera N or --video PATH|URL")
    if camera is not None:
        if camera < 0:
            raise SourceError(f"camera index must be >= 0, got {camera}")
        return SourceSpec("camera", str(camera), realtime=True, reconnect=reconnect, max_frames=max_frames,
                          reconnect_timeout=reconnect_timeout, camera_settings=camera_settings)
    assert video is not None
    if video.lower().startswith(STREAM_SCHEMES):
        return SourceSpec("stream", video, realtime=True, reconnect=reconnect, max_frames=max_frames,
                          reconnect_timeout=reconnect_timeout)
    return SourceSpec("file", video, realtime=realtime, reconnect=False, max_frames=max_frames)


def _open_capture(spec: SourceSpec, report: bool = False) -> cv2.VideoCapture:
    if spec.kind == "camera":
        cap = cv2.VideoCapture(int(spec.target))
        if spec.camera_settings is not None and cap.isOpened():
            settings = spec.camera_settings
            settings.report(cap, _describe(spec)) if report else settings.apply(cap)
        return cap
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS]
    try:
        return cv2.VideoCapture(spec.target, cv2.CAP_ANY, params)
    except cv2.error:
        return cv2.VideoCapture(spec.target)


def _check_file(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise SourceError(f"video file not found: {path}")
    if not p.is_file():
        raise SourceError(f"not a video file: {path}")
    if p.stat().st_size == 0:
        raise SourceError(f"video file is empty: {path}")
    if not os.access(p, os.R_OK):
        raise SourceError(f"video file is not readable: {path}")


def _describe(spec: SourceSpec) -> str:
    return {"camera": f"camera {spec.target}", "stream": f"stream {spec.target}"}.get(spec.kind, spec.target)


def probe(spec: SourceSpec) -> SourceInfo:
    """Open the source, decode one frame, close it; SourceError (one line) if any step fails."""
    if spec.kind == "file":
        _check_file(spec.target)
    cap = _open_capture(spec, report=True)
    try:
        if not cap.isOpened():
            if spec.kind == "file":
                raise SourceError(f"cannot decode video (corrupt or not a video): {spec.target}")
            raise SourceError(f"cannot open {_describe(spec)}")
        ok, image = cap.read()
        if not ok or image is None or image.size == 0:
            if spec.kind == "file":
                raise SourceError(f"video has no decodable frames: {spec.target}")
            raise SourceError(f"{_describe(spec)} opened but delivered no frame")
        facts = capture_facts(cap)
        return SourceInfo(fps=facts.fps, fps_known=facts.fps_known, width=int(image.shape[1]),
                          height=int(image.shape[0]), frame_count=facts.frame_count if spec.kind == "file" else None)
    finally:
        cap.release()


def probe_until_reachable(spec: SourceSpec, on_retry=None, sleep=time.sleep) -> SourceInfo:
    """`probe`, retried with back-off while a live source with ``--reconnect`` is unreachable (a camera or
    stream that comes up after `ia-live`), for up to ``spec.reconnect_timeout`` seconds (0: forever).
    ``on_retry(error, waited_s)`` is told of each failed try; the last error, with how long it was tried,
    ends it."""
    if not (spec.live and spec.reconnect) or spec.kind == "file":
        return probe(spec)
    start = time.monotonic()
    delay = BACKOFF_START_S
    while True:
        try:
            return probe(spec)
        except SourceError as exc:
            waited = time.monotonic() - start
            if spec.reconnect_timeout and waited + delay > spec.reconnect_timeout:
                raise SourceError(f"{exc} (retried for {waited:.0f} s; --reconnect-timeout "
                                  f"{spec.reconnect_timeout:g})") from None
            if on_retry is not None:
                on_retry(str(exc), waited)
        sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)


class FrameSource:
    """Iterates frames of one source; reopens live sources with back-off when `spec.reconnect`.

    `stop` (a callable returning True when the pipeline is shutting down) is polled while waiting, so
    pacing and reconnect back-off never delay shutdown.
    """

    BACKOFF_START = BACKOFF_START_S
    BACKOFF_MAX = BACKOFF_MAX_S

    def __init__(self, spec: SourceSpec, info: SourceInfo, stop=lambda: False, warn=None):
        self.spec = spec
        self.info = info
        self._stop = stop
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._t0_wall: float | None = None
        self.reconnects = 0
        self.error: str | None = None   # why a live source ended, if it did not end normally
        self.skipped = 0                # undecodable frames of a file read past (a damaged byte range)
        self._warn = warn               # warn(text): told once, at the first undecodable frame

    def open(self) -> None:
        self._cap = _open_capture(self.spec)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open {_describe(self.spec)}")

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "FrameSource":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _sleep_until(self, deadline: float) -> None:
        while not self._stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.05))

    def describe(self) -> str:
        """``camera N``, ``stream URL`` or the file path (for messages)."""
        return _describe(self.spec)

    def reopen(self) -> bool:
        """Reopen with back-off until it works (True), or `stop` or ``spec.reconnect_timeout`` (False;
        `error` says which)."""
        return self._reopen()

    def _reopen(self) -> bool:
        delay = self.BACKOFF_START
        start = time.monotonic()
        while not self._stop():
            if self.spec.reconnect_timeout and time.monotonic() - start >= self.spec.reconnect_timeout:
                self.error = (f"{_describe(self.spec)} unreachable for {self.spec.reconnect_timeout:g} s "
                              f"(--reconnect-timeout)")
                return False
            self.close()
            self._sleep_until(time.monotonic() + delay)
            if self._stop():
                return False
            cap = _open_capture(self.spec)
            if cap.isOpened():
                self._cap = cap
                self.reconnects += 1
                return True
            cap.release()
            delay = min(delay * 2, self.BACKOFF_MAX)
        return False

    def _read_past_damage(self) -> np.ndarray | None:
        """After a failed read of a file: read on, so that a damaged byte range costs its own frames and not
        the rest of the video. Ends (None) once every frame the container claims is accounted for, or after
        `MAX_UNDECODABLE` failures in a row. Skipped frames keep their indices (timestamps stay media time)."""
        failures = 1
        count = self.info.frame_count
        while not self._stop():
            if count is not None and self._index + failures >= count:
                return None
            if failures >= MAX_UNDECODABLE:
                return None
            ok, image = self._cap.read()
            if ok and image is not None:
                if not self.skipped and self._warn is not None:
                    self._warn(f"{self.spec.target}: undecodable data after frame {self._index - 1}; "
                               f"reading on (skipped frames are counted)")
                self.skipped += failures
                self._index += failures
                return image
            failures += 1
        return None

    def read(self) -> Frame | None:
        """The next frame, or None at the end (end of file, max_frames, stop, or a lost live source)."""
        if self._cap is None:
            raise RuntimeError("FrameSource.read() before open()")
        if self.spec.max_frames is not None and self._index >= self.spec.max_frames:
            return None
        if self.spec.kind == "file" and self.spec.realtime and self._t0_wall is not None:
            self._sleep_until(self._t0_mono + self._index / self.info.fps)
        while True:
            if self._stop():
                return None
            ok, image = self._cap.read()
            if ok and image is not None:
                break
            if self.spec.kind == "file":
                image = self._read_past_damage()
                if image is None:
                    return None
                break
            if not self.spec.reconnect:
                self.error = f"{_describe(self.spec)} stopped delivering frames"
                return None
            if not self._reopen():
                return None
        now = time.time()
        if self._t0_wall is None:
            self._t0_wall, self._t0_mono = now, time.monotonic()
        if self.spec.kind == "file":
            timestamp = self._index / self.info.fps
        else:
            timestamp = now - self._t0_wall
        frame = Frame(self._index, timestamp, now, image)
        self._index += 1
        return frame
