"""Camera capture settings: ``--camera-width/--camera-height/--camera-fps/--camera-fourcc``.

Why a module of its own: a camera left at its driver defaults often delivers 640x480 at an fps the room's
light allows, or an uncompressed format that the USB link caps at a few fps; users need to ask for a mode
(MJPG at 1280x720 and 30 fps is typical). OpenCV applies such requests silently and a camera may refuse
or round them, so `CameraSettings.apply` reads back what the camera actually gives and reports each
refused request in one line. It follows the plugin convention of `realtime.plugins` (``cli`` adds the
flags, ``configure`` turns parsed flags into a frozen, picklable value that rides in the source spec to
the capture process, where every (re)open applies it).
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

from core.cliflags import positive_float, positive_int
from core.errors import UserError

__all__ = ["CameraSettings", "CameraSettingsError"]

log = logging.getLogger(__name__)


class CameraSettingsError(UserError, ValueError):
    """A camera flag that cannot be valid for any camera (or is given without ``--camera``)."""




def _fourcc(value: str) -> str:
    if len(value) != 4 or not value.isascii() or not value.isprintable():
        raise argparse.ArgumentTypeError(f"a FOURCC is 4 ASCII characters (e.g. MJPG, YUYV), got {value!r}")
    return value.upper()


def _decode_fourcc(code: float) -> str:
    n = int(code)
    text = "".join(chr((n >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "?"


@dataclass(frozen=True)
class CameraSettings:
    """What to ask a camera for; None = leave the driver's default."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = None

    @property
    def empty(self) -> bool:
        return self.width is None and self.height is None and self.fps is None and self.fourcc is None

    @classmethod
    def cli(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("camera (with --camera; the camera may refuse or round a request, "
                                          "which is reported)")
        group.add_argument("--camera-width", type=positive_int, metavar="PX", help="capture width")
        group.add_argument("--camera-height", type=positive_int, metavar="PX", help="capture height")
        group.add_argument("--camera-fps", type=positive_float, metavar="FPS", help="capture frame rate")
        group.add_argument("--camera-fourcc", type=_fourcc, metavar="CODE",
                           help="pixel format, e.g. MJPG (lets USB cameras deliver 720p/1080p at 30 fps) or YUYV")

    @classmethod
    def configure(cls, args: argparse.Namespace) -> "CameraSettings | None":
        """The requested settings, None when no camera flag was given. Camera flags with a file or stream
        source are an error (they would be silently ignored)."""
        settings = cls(getattr(args, "camera_width", None), getattr(args, "camera_height", None),
                       getattr(args, "camera_fps", None), getattr(args, "camera_fourcc", None))
        if settings.empty:
            return None
        if getattr(args, "camera", None) is None:
            raise CameraSettingsError("--camera-width/--camera-height/--camera-fps/--camera-fourcc apply to "
                                      "--camera N only")
        return settings

    def apply(self, cap) -> list[str]:
        """Request these settings on an open ``cv2.VideoCapture``; returns one note per request the camera
        did not grant (``asked 1920 px wide, gives 640``). FOURCC goes first: it decides which sizes exist."""
        import cv2

        requests = []
        if self.fourcc:
            requests.append(("fourcc", cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc), self.fourcc))
        if self.width:
            requests.append(("width", cv2.CAP_PROP_FRAME_WIDTH, self.width, self.width))
        if self.height:
            requests.append(("height", cv2.CAP_PROP_FRAME_HEIGHT, self.height, self.height))
        if self.fps:
            requests.append(("fps", cv2.CAP_PROP_FPS, self.fps, self.fps))
        for _name, prop, value, _shown in requests:
            cap.set(prop, float(value))
        notes = []
        for name, prop, _value, shown in requests:
            got = cap.get(prop)
            if name == "fourcc":
                actual = _decode_fourcc(got)
                if actual.upper() != self.fourcc:
                    notes.append(f"asked for {shown}, gives {actual}")
            elif name == "fps":
                if not got or abs(got - float(shown)) > 0.5:
                    notes.append(f"asked for {shown:g} fps, gives {got:g}")
            elif int(round(got)) != int(shown):
                notes.append(f"asked for {name} {shown}, gives {int(round(got))}")
        return notes

    def report(self, cap, camera: str) -> list[str]:
        """`apply`, logging each refused request as a warning naming the camera."""
        notes = self.apply(cap)
        for note in notes:
            log.warning("%s refused a setting: %s", camera, note)
        return notes
