"""The annotated video's encoder: H.264 through PyAV (libx264 ships in its wheels), mp4v through OpenCV
when H.264 is unavailable.

Why a module of its own: an encoder that fails silently is the worst kind of output. A full disk used to end
in exit 0 and an unreadable 64 KB mp4, because OpenCV's writer and FFmpeg's I/O layer both swallow write
errors. Here the bytes go through a Python file object that remembers the first `OSError` (PyAV writes
through it), and `close()` raises `VideoWriteError`, one line naming the output, if any write, the muxer or
the final check failed. The OpenCV fallback cannot be watched that way, so its result is re-read and its
frame count compared with what was written.
"""
from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import EXIT_FAILED, UserError

__all__ = ["VideoWriteError", "VideoEncoder", "h264_available"]

#: x264 speed/quality: `veryfast` keeps 1080p encoding well below real time on one core; CRF 20 is visually
#: lossless enough for overlays and text
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}


class VideoWriteError(UserError):
    """The annotated video could not be written (full disk, unwritable path, no encoder)."""

    code = EXIT_FAILED


def h264_available() -> bool:
    """True when PyAV imports and its FFmpeg has an H.264 encoder (libx264)."""
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:  # noqa: BLE001 - no av, or a build without libx264
        return False


class _WatchedFile(io.RawIOBase):
    """A binary file that keeps the first OSError of a write/seek, so that an error FFmpeg's I/O layer
    would swallow still reaches `VideoEncoder.close`."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fh = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        try:
            view = memoryview(data)
            done = 0
            while done < len(view):   # a short write (disk nearly full) is retried, then raises ENOSPC
                n = self._fh.write(view[done:])
                if not n:
                    raise OSError(28, os.strerror(28))
                done += n
            return done
        except OSError as exc:
            self.error = self.error or exc
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._fh.seek(offset, whence)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError as exc:
                self.error = self.error or exc
        super().close()


def _even(image: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: repeat the last row/column of an odd-sized frame."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return image


class VideoEncoder:
    """Writes BGR frames to `path` at `fps`: H.264 (PyAV) unless `codec="mp4v"` or libx264 is missing.

    Frames must all have the size given here (the writer stage resizes). `codec` says what was used.
    """

    def __init__(self, path: str, width: int, height: int, fps: float, codec: str = "auto") -> None:
        if fps <= 0 or width <= 0 or height <= 0:
            raise VideoWriteError(f"cannot write annotated video {path}: bad size/fps {width}x{height} @ {fps}")
        self.path, self.width, self.height, self.fps = str(path), int(width), int(height), float(fps)
        self.frames = 0
        self._container = self._stream = self._file = self._cv = None
        use_h264 = codec == "h264" or (codec == "auto" and h264_available())
        if codec == "h264" and not h264_available():
            raise VideoWriteError(f"cannot write annotated video {path}: PyAV with libx264 is not installed")
        try:
            self._open_h264() if use_h264 else self._open_mp4v()
        except VideoWriteError:
            raise
        except OSError as exc:
            raise VideoWriteError(f"cannot write annotated video {path}: {exc.strerror or exc}") from None
        self.codec = "h264" if use_h264 else "mp4v"

    def _rate(self) -> Fraction:
        return Fraction(self.fps).limit_denominator(1001)

    def _open_h264(self) -> None:
        import av

        self._file = _WatchedFile(self.path)
        try:
            self._container = av.open(self._file, "w", format=_format_of(self.path))
            self._stream = self._container.add_stream("libx264", rate=self._rate(), options=dict(X264_OPTIONS))
            self._stream.width = self.width + self.width % 2
            self._stream.height = self.height + self.height % 2
            self._stream.pix_fmt = "yuv420p"
        except Exception as exc:  # noqa: BLE001
            self._abort()
            raise VideoWriteError(f"cannot write annotated video {self.path}: {_reason(exc, self._file)}") from None

    def _open_mp4v(self) -> None:
        import cv2

        self._cv = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (self.width, self.height))
        if not self._cv.isOpened():
            self._cv = None
            raise VideoWriteError(f"cannot write annotated video {self.path}: OpenCV's mp4v writer did not open")

    def write(self, image_bgr: np.ndarray) -> None:
        """Encode one frame; `VideoWriteError` as soon as the output fails."""
        if image_bgr.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {image_bgr.shape[1]}x{image_bgr.shape[0]} is not the video's "
                             f"{self.width}x{self.height}")
        if self._cv is not None:
            self._cv.write(image_bgr)
            self.frames += 1
            return
        import av

        try:
            frame = av.VideoFrame.from_ndarray(_even(np.ascontiguousarray(image_bgr)), format="bgr24")
            frame.pts = self.frames
            self._container.mux(self._stream.encode(frame))
        except Exception as exc:  # noqa: BLE001 - av.error.*, OSError from the watched file
            self._abort()
            raise VideoWriteError(f"cannot write annotated video {self.path}: {_reason(exc, self._file)}") from None
        if self._file.error is not None:
            self._abort()
            raise VideoWriteError(f"cannot write annotated video {self.path}: {_reason(None, self._file)}")
        self.frames += 1

    def close(self) -> None:
        """Flush, write the container's index and check that it all reached the disk."""
        if self._cv is not None:
            self._cv.release()
            self._cv = None
            self._check_mp4v()
            return
        if self._container is None:
            return
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
        except Exception as exc:  # noqa: BLE001
            self._abort()
            raise VideoWriteError(f"cannot write annotated video {self.path}: {_reason(exc, self._file)}") from None
        self._container = None
        self._file.close()
        if self._file.error is not None:
            raise VideoWriteError(f"cannot write annotated video {self.path}: {_reason(None, self._file)}")

    def discard(self) -> None:
        """End after the run stopped early (Ctrl-C, another stage failed): finish the file if possible, so
        what was written still plays, and never raise."""
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            self._abort()

    def _abort(self) -> None:
        """Release everything after a failure without raising again."""
        for close in (getattr(self._container, "close", None), getattr(self._file, "close", None)):
            try:
                if close is not None:
                    close()
            except Exception:  # noqa: BLE001
                pass
        self._container = None

    def _check_mp4v(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.path)
        try:
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        finally:
            cap.release()
        if self.frames and count != self.frames:
            raise VideoWriteError(f"cannot write annotated video {self.path}: wrote {self.frames} frames but the "
                                  f"file holds {count} (disk full?)")


def _format_of(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".mov": "mov", ".avi": "avi", ".mkv": "matroska"}.get(suffix, "mp4")


def _reason(exc: BaseException | None, watched: _WatchedFile | None) -> str:
    """The disk's own error when there was one (it explains the muxer's), else the exception's."""
    err = watched.error if watched is not None else None
    if err is not None:
        return err.strerror or str(err)
    from core.errors import one_line

    return one_line(exc) if exc is not None else "unknown error"
