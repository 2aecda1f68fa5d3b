"""A plain folder of videos, one sub-folder per class (``root/<class>/<video>``) -> clip index.

The simplest way to bring one's own data: class names are the sorted sub-folder names (so labels are
stable across machines), and a sub-sub-folder of images counts as one video given as frames.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.clipindex import Clip, video_stem, write_clip_index
from core.video import IMAGE_EXTENSIONS

from . import DatasetFormatError

__all__ = ["VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS", "folder_clips", "build_folder_index"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


def folder_clips(root: str | os.PathLike, split: str = "",
                 poses_dir: str | os.PathLike | None = None) -> tuple[list[Clip], list[str]]:
    """``(clips, classes)``. ``poses`` is ``<poses_dir>/<video stem>.npz`` when ``poses_dir`` is given."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root}: not a folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetFormatError(f"{root}: no class sub-folders (expected root/<class>/<video>)")
    clips: list[Clip] = []
    for label, name in enumerate(classes):
        for item in sorted((root / name).iterdir()):
            if item.name.startswith("."):
                continue
            if (item.is_file() and item.suffix.lower() in VIDEO_EXTENSIONS) or _is_frame_folder(item):
                stem = video_stem(item)
                clips.append(Clip(video=item.absolute(), label=label, label_name=name,
                                  poses=None if poses_dir is None else Path(poses_dir).absolute() / f"{stem}.npz",
                                  split=split))
    if not clips:
        raise DatasetFormatError(f"{root}: no videos found in the class sub-folders")
    stems = [video_stem(c.video) for c in clips]
    if poses_dir is not None and len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise DatasetFormatError(f"{root}: two videos share the stem {dup!r}; pose caches are named by stem")
    return clips, classes


def build_folder_index(root: str | os.PathLike, out_index: str | os.PathLike, split: str = "",
                       poses_dir: str | os.PathLike | None = None) -> tuple[Path, int]:
    clips, classes = folder_clips(root, split, poses_dir)
    return write_clip_index(out_index, clips, classes), len(clips)
