"""Clip index: the one list-of-clips format that every dataset reader produces and training consumes.

JSON Lines (one clip per line) so an index can be appended to, diffed and streamed, with paths relative
to the index file's folder so a dataset folder can be moved or mounted elsewhere as a whole. The class
names live in ``classes.txt`` beside the index (one name per line; the line number is the label), shared
by the train/val/test indexes of one dataset.

Line format::

    {"video": "videos/a.mp4", "label": 3, "label_name": "archery", "poses": "poses/a.npz", "split": "test", ...}

``video`` is a video file or a folder of frames; ``poses`` is a pose cache (``core.posecache``) or null.
Unknown fields are kept in ``Clip.extra`` and written back unchanged.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from core.errors import UserError

__all__ = ["Clip", "ClipIndexError", "read_clip_index", "write_clip_index", "read_classes",
           "write_classes", "classes_path_for", "video_stem", "check_clip_files"]

_CORE_FIELDS = ("video", "label", "label_name", "poses", "split")


class ClipIndexError(UserError, ValueError):
    """Malformed clip index or classes file; the message is one line naming the file and line."""


@dataclass
class Clip:
    """One clip. ``video``/``poses`` are absolute paths once read (relative in the file)."""

    video: Path
    label: int
    label_name: str = ""
    poses: Path | None = None
    split: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    origin: str = field(default="", compare=False, repr=False)   # "index.jsonl:LINE" it was read from

    @property
    def where(self) -> str:
        """Where a problem with this clip is reported: its index line, else its video."""
        return self.origin or str(self.video)

    def to_json(self, root: Path) -> dict[str, Any]:
        """Record with paths relative to ``root`` (the index file's folder) where possible."""
        rec: dict[str, Any] = {
            "video": _relpath(self.video, root),
            "label": int(self.label),
            "label_name": self.label_name,
            "poses": None if self.poses is None else _relpath(self.poses, root),
            "split": self.split,
        }
        for key, value in self.extra.items():
            if key not in rec:
                rec[key] = value
        return rec


def _relpath(path: str | os.PathLike, root: Path) -> str:
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return Path(os.path.relpath(path, root)).as_posix()
    except ValueError:  # different drive on Windows
        return path.as_posix()


def video_stem(video: str | os.PathLike) -> str:
    """Name a pose cache is keyed by: a video file's stem, or a frame folder's full name."""
    path = Path(video)
    return path.name if path.is_dir() else path.stem


def classes_path_for(index_path: str | os.PathLike) -> Path:
    """``classes.txt`` beside the index file."""
    return Path(index_path).parent / "classes.txt"


def read_classes(path: str | os.PathLike) -> list[str]:
    """Class names, one per line; blank lines are not allowed in the middle (they would shift labels)."""
    path = Path(path)
    if not path.is_file():
        raise ClipIndexError(f"{path}: classes file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [ln.strip() for ln in lines]
    for i, name in enumerate(names, 1):
        if not name:
            raise ClipIndexError(f"{path}:{i}: empty class name")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ClipIndexError(f"{path}: duplicate class name {dup!r}")
    return names


def write_classes(path: str | os.PathLike, classes: Sequence[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in classes:
        if not name.strip() or "\n" in name:
            raise ClipIndexError(f"{path}: invalid class name {name!r}")
    _atomic_write(path, "".join(f"{name}\n" for name in classes))
    return path


def read_clip_index(path: str | os.PathLike, split: str | None = None,
                    check_classes: bool = True) -> list[Clip]:
    """Read an index; paths become absolute (relative to the index's folder).

    With ``check_classes`` and a ``classes.txt`` beside the index, every label must be in range and match
    its ``label_name``, so a stale classes file is caught at load time rather than as silently wrong labels.
    """
    path = Path(path)
    if not path.is_file():
        raise ClipIndexError(f"{path}: clip index not found")
    root = path.parent.absolute()
    classes: list[str] | None = None
    if check_classes and classes_path_for(path).is_file():
        classes = read_classes(classes_path_for(path))
    clips: list[Clip] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ClipIndexError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise ClipIndexError(f"{path}:{lineno}: expected a JSON object")
            if "video" not in rec or not isinstance(rec["video"], str) or not rec["video"]:
                raise ClipIndexError(f"{path}:{lineno}: missing or invalid 'video'")
            label = rec.get("label")
            if isinstance(label, bool) or not isinstance(label, int):
                raise ClipIndexError(f"{path}:{lineno}: 'label' must be an integer, got {label!r}")
            poses = rec.get("poses")
            if poses is not None and not isinstance(poses, str):
                raise ClipIndexError(f"{path}:{lineno}: 'poses' must be a path or null")
            name = str(rec.get("label_name", "") or "")
            if classes is not None:
                if not 0 <= label < len(classes):
                    raise ClipIndexError(f"{path}:{lineno}: label {label} out of range for {len(classes)} classes")
                if name and name != classes[label]:
                    raise ClipIndexError(
                        f"{path}:{lineno}: label {label} is {classes[label]!r} in classes.txt, not {name!r}")
                name = name or classes[label]
            clip = Clip(video=root / rec["video"], label=label, label_name=name,
                        poses=None if poses is None else root / poses, split=str(rec.get("split", "") or ""),
                        extra={k: v for k, v in rec.items() if k not in _CORE_FIELDS},
                        origin=f"{path}:{lineno}")
            if split is None or clip.split == split:
                clips.append(clip)
    return clips


def check_clip_files(clips: Iterable[Clip], *, videos: bool, poses: bool) -> None:
    """Fail on the first clip whose video (``videos``) or pose cache (``poses``, where the clip names one)
    does not exist, naming the index file, the line and the missing path.

    Why up front: a missing file found only when its batch loads costs an epoch of work, and inside a
    DataLoader worker the error reaches the user without the path ("Caught ... in DataLoader worker
    process 0"). Checking every entry is a ``stat`` per clip, before any worker starts.
    """
    for clip in clips:
        if videos and not clip.video.exists():
            raise ClipIndexError(f"{clip.where}: video not found: {clip.video}")
        if poses and clip.poses is not None and not clip.poses.exists():
            raise ClipIndexError(f"{clip.where}: pose cache not found: {clip.poses}")


def write_clip_index(path: str | os.PathLike, clips: Iterable[Clip],
                     classes: Sequence[str] | None = None) -> Path:
    """Write an index (atomically) and, if given, ``classes.txt`` beside it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.absolute()
    clips = list(clips)
    if classes is not None:
        for clip in clips:
            if not 0 <= clip.label < len(classes):
                raise ClipIndexError(f"{path}: label {clip.label} of {clip.video} out of range for {len(classes)} classes")
        write_classes(classes_path_for(path), classes)
    text = "".join(json.dumps(c.to_json(root), ensure_ascii=False) + "\n" for c in clips)
    _atomic_write(path, text)
    return path


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
