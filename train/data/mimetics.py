"""Mimetics (out-of-context test set, 50 Kinetics classes) from its official CSV.

``mimetics_v1.0.csv`` has columns ``label, youtube_id, time_start, time_end, split, is_cc``; the clips are
trimmed YouTube segments named, by the official download script (clovaai/rebias
``datasets/mimetics/download.py``), ``<label>/<youtube_id>_<start:06d>_<end:06d>.mp4``. The class list is
``kinetics50_mimetics50_classes.txt`` (``name<TAB>kinetics400_index`` per line, in Kinetics50 label order),
so the same labels serve the Kinetics50 training set and the Mimetics test set.
Poses come from a pose-cache folder filled by ``tools.extract_poses`` (``<clip stem>.npz``).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from core.clipindex import Clip, write_clip_index

from . import DatasetFormatError

__all__ = ["MimeticsRow", "read_kinetics50_classes", "read_mimetics_csv", "mimetics_clips",
           "build_mimetics_index", "clip_stem"]

_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split", "is_cc")


@dataclass(frozen=True)
class MimeticsRow:
    label: str
    youtube_id: str
    time_start: int
    time_end: int
    split: str
    is_cc: int


def clip_stem(youtube_id: str, start: int, end: int) -> str:
    """File stem of a trimmed clip as the Kinetics/Mimetics download scripts name it."""
    return f"{youtube_id}_{start:06d}_{end:06d}"


def read_kinetics50_classes(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """``(names, kinetics400_indices)`` from ``name<TAB>index`` lines (index optional)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: class list not found")
    names: list[str] = []
    k400: list[int] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        names.append(parts[0].strip())
        try:
            k400.append(int(parts[1]) if len(parts) > 1 else -1)
        except ValueError:
            raise DatasetFormatError(f"{path}:{i}: bad Kinetics-400 index {parts[1]!r}") from None
    return names, k400


def read_mimetics_csv(path: str | os.PathLike) -> list[MimeticsRow]:
    path = Path(path)
    if not path.is_file():
        raise DatasetFormatError(f"{path}: Mimetics CSV not found")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetFormatError(f"{path}: missing column(s) {', '.join(missing)}")
        rows: list[MimeticsRow] = []
        for lineno, rec in enumerate(reader, 2):
            try:
                rows.append(MimeticsRow(rec["label"].strip(), rec["youtube_id"].strip(), int(rec["time_start"]),
                                        int(rec["time_end"]), rec["split"].strip(), int(rec["is_cc"])))
            except (TypeError, ValueError):
                raise DatasetFormatError(f"{path}:{lineno}: bad row {rec}") from None
    return rows


def mimetics_clips(rows: list[MimeticsRow], classes: list[str], videos_dir: str | os.PathLike,
                   poses_dir: str | os.PathLike | None, k400: list[int] | None = None) -> list[Clip]:
    """One ``Clip`` per CSV row. The video is ``<videos_dir>/<label>/<stem>.mp4`` if that exists, else
    ``<videos_dir>/<stem>.mp4`` (flat layout); ``poses`` is ``<poses_dir>/<stem>.npz`` whether or not it was
    extracted yet (the Dataset reports a missing cache when it needs it)."""
    index = {name: i for i, name in enumerate(classes)}
    videos_dir = Path(videos_dir)
    clips: list[Clip] = []
    for row in rows:
        if row.label not in index:
            raise DatasetFormatError(f"Mimetics label {row.label!r} is not in the class list")
        stem = clip_stem(row.youtube_id, row.time_start, row.time_end)
        nested = videos_dir / row.label / f"{stem}.mp4"
        video = nested if nested.exists() else videos_dir / f"{stem}.mp4"
        label = index[row.label]
        extra = {"youtube_id": row.youtube_id, "time_start": row.time_start, "time_end": row.time_end,
                 "is_cc": row.is_cc}
        if k400 is not None:
            extra["kinetics400_index"] = k400[label]
        clips.append(Clip(video=video, label=label, label_name=row.label,
                          poses=None if poses_dir is None else Path(poses_dir) / f"{stem}.npz",
                          split=row.split, extra=extra))
    return clips


def build_mimetics_index(csv_path: str | os.PathLike, classes_path: str | os.PathLike,
                         videos_dir: str | os.PathLike, out_index: str | os.PathLike,
                         poses_dir: str | os.PathLike | None = None,
                         only_existing: bool = False) -> tuple[Path, int]:
    """Write the Mimetics clip index (+ ``classes.txt``); ``only_existing`` drops clips whose video is
    absent (YouTube clips disappear over time). Returns ``(index path, number of clips)``."""
    classes, k400 = read_kinetics50_classes(classes_path)
    clips = mimetics_clips(read_mimetics_csv(csv_path), classes, videos_dir, poses_dir, k400)
    if only_existing:
        clips = [c for c in clips if Path(c.video).exists()]
    return write_clip_index(out_index, [_absolute(c) for c in clips], classes), len(clips)


def _absolute(clip: Clip) -> Clip:
    clip.video = Path(clip.video).absolute()
    if clip.poses is not None:
        clip.poses = Path(clip.poses).absolute()
    return clip
