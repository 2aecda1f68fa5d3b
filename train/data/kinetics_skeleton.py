"""ST-GCN's Kinetics-skeleton release (OpenPose-18, coordinates normalised to the video size).

Layout of the release (``kinetics-skeleton/``, see ``docs/data.md``)::

    kinetics_train/<youtube_id>.json     kinetics_val/<youtube_id>.json
    kinetics_train_label.json            kinetics_val_label.json

A video JSON is ``{"data": [{"frame_index": 1, "skeleton": [{"pose": [x0, y0, x1, y1, ...],
"score": [s0, s1, ...]}, ...]}, ...], "label": "<class name>", "label_index": <int>}`` with 18 joints in
OpenPose-COCO order, x/y divided by the frame width/height (videos were resized to 340x256 at 30 fps
before OpenPose ran), 3 decimals, missing joints stored as x = y = score = 0. ``frame_index`` starts at 1.
The label JSON maps ``youtube_id -> {"has_skeleton": bool, "label": str, "label_index": int}``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.posecache import PoseCache

from . import DatasetFormatError

__all__ = ["KineticsSkeletonVideo", "read_kinetics_skeleton_json", "read_kinetics_skeleton_labels",
           "RELEASE_WIDTH", "RELEASE_HEIGHT", "RELEASE_FPS"]

#: The release's videos were resized to 340x256 and resampled to 30 fps before OpenPose ran.
RELEASE_WIDTH, RELEASE_HEIGHT, RELEASE_FPS = 340, 256, 30.0
_JOINTS = 18


@dataclass
class KineticsSkeletonVideo:
    """One release JSON converted to pixels, with its label as stored in the file."""

    video_id: str
    cache: PoseCache
    label: str
    label_index: int


def _load_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"{path}: invalid JSON ({exc})".splitlines()[0]) from None


def read_kinetics_skeleton_json(path: str | os.PathLike, width: int = RELEASE_WIDTH,
                                height: int = RELEASE_HEIGHT, fps: float = RELEASE_FPS,
                                num_frames: int | None = None) -> KineticsSkeletonVideo:
    """Read one video JSON into a ``PoseCache`` in pixels of a ``width`` x ``height`` video.

    ``width``/``height`` are those of the video the poses will be paired with (the release's 340x256 by
    default); since the coordinates are normalised, any resize of the same video works. Frame
    ``frame_index`` k (1-based) becomes cache row k-1. Frames listed in ``data`` are ``valid`` (an empty
    ``skeleton`` list = processed, nobody found); rows not listed are not valid. Missing joints (score 0)
    keep coordinate 0 and score 0, i.e. absent.
    """
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DatasetFormatError(f"{path}: not a Kinetics-skeleton file (no 'data' list)")
    frames: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    for k, entry in enumerate(doc["data"]):
        try:
            fidx = int(entry["frame_index"])
            people = entry["skeleton"]
        except (KeyError, TypeError, ValueError):
            raise DatasetFormatError(f"{path}: data[{k}] lacks frame_index/skeleton") from None
        if fidx < 1:
            raise DatasetFormatError(f"{path}: data[{k}] has frame_index {fidx} (the release starts at 1)")
        persons = frames.setdefault(fidx, [])
        for m, person in enumerate(people):
            try:
                pose = np.asarray(person["pose"], np.float64)
                score = np.asarray(person["score"], np.float64)
            except (KeyError, TypeError, ValueError):
                raise DatasetFormatError(f"{path}: frame {fidx} person {m} lacks numeric pose/score") from None
            if pose.shape != (2 * _JOINTS,) or score.shape != (_JOINTS,):
                raise DatasetFormatError(
                    f"{path}: frame {fidx} person {m}: expected {2 * _JOINTS} pose and {_JOINTS} score values, "
                    f"got {pose.size} and {score.size}")
            xy = pose.reshape(_JOINTS, 2) * np.array([width, height], np.float64)
            xy[score <= 0] = 0.0
            persons.append((xy.astype(np.float32), score.astype(np.float32)))
    last = max(frames) if frames else 0
    n = last if num_frames is None else int(num_frames)
    cache = PoseCache.empty(n, max([1] + [len(p) for p in frames.values()]), "openpose18", fps, width, height,
                            source=path.name, estimator="openpose (st-gcn kinetics-skeleton release)")
    for fidx, persons in frames.items():
        if fidx > n:
            continue
        cache.valid[fidx - 1] = True
        for m, (xy, s) in enumerate(persons):
            cache.coords[fidx - 1, m] = xy
            cache.scores[fidx - 1, m] = s
    label = doc.get("label", "")
    label_index = doc.get("label_index", -1)
    if not isinstance(label_index, int) or isinstance(label_index, bool):
        raise DatasetFormatError(f"{path}: label_index must be an integer, got {label_index!r}")
    return KineticsSkeletonVideo(video_id=path.stem, cache=cache.validate(str(path)), label=str(label),
                                 label_index=label_index)


def read_kinetics_skeleton_labels(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``kinetics_{train,val}_label.json``: ``video_id -> {has_skeleton, label, label_index}`` (validated)."""
    path = Path(path)
    doc = _load_json(path)
    if not isinstance(doc, dict):
        raise DatasetFormatError(f"{path}: expected a JSON object mapping video id to label info")
    out: dict[str, dict[str, Any]] = {}
    for vid, info in doc.items():
        if not isinstance(info, dict) or not {"has_skeleton", "label", "label_index"} <= set(info):
            raise DatasetFormatError(f"{path}: entry {vid!r} lacks has_skeleton/label/label_index")
        out[vid] = {"has_skeleton": bool(info["has_skeleton"]), "label": str(info["label"]),
                    "label_index": int(info["label_index"])}
    return out


def _find_video(videos_dir: Path | None, video_id: str, label: str) -> Path:
    """The video for ``video_id``: ``<id>.*`` or Kinetics' ``<id>_<start>_<end>.*``, flat or in a class folder."""
    if videos_dir is None:
        return Path(f"{video_id}.mp4")
    for folder in (videos_dir, videos_dir / label, videos_dir / label.replace(" ", "_")):
        if folder.is_dir():
            hits = sorted(p for p in folder.glob(f"{video_id}*") if p.is_file()
                          and (p.stem == video_id or p.stem.startswith(video_id + "_")))
            if hits:
                return hits[0]
    return videos_dir / f"{video_id}.mp4"


def build_kinetics_skeleton_index(release_dir: str | os.PathLike, split: str, out_dir: str | os.PathLike,
                                  videos_dir: str | os.PathLike | None = None,
                                  classes: list[str] | None = None, width: int = RELEASE_WIDTH,
                                  height: int = RELEASE_HEIGHT, progress: bool = True) -> Path:
    """Convert ``kinetics_<split>/*.json`` into pose caches + ``<out_dir>/<split>.jsonl`` + ``classes.txt``.

    ``classes`` restricts to a subset (e.g. the 50 Kinetics50 classes) and relabels 0..len-1 in that order;
    by default all classes are kept with the release's ``label_index``. Videos without skeletons
    (``has_skeleton`` false) are skipped, as ST-GCN's feeder does.
    """
    from core.clipindex import Clip, write_clip_index
    from core.posecache import save_pose_cache
    from rich.progress import Progress

    release_dir, out_dir = Path(release_dir), Path(out_dir)
    labels = read_kinetics_skeleton_labels(release_dir / f"kinetics_{split}_label.json")
    json_dir = release_dir / f"kinetics_{split}"
    if not json_dir.is_dir():
        raise DatasetFormatError(f"{json_dir}: folder not found")
    if classes is None:
        names: dict[int, str] = {}
        for info in labels.values():
            names[info["label_index"]] = info["label"]
        classes = [names.get(i, f"class_{i}") for i in range(max(names) + 1)] if names else []
        remap = {name: idx for idx, name in names.items()}
    else:
        remap = {name: i for i, name in enumerate(classes)}
    clips: list[Clip] = []
    vdir = None if videos_dir is None else Path(videos_dir)
    ids = sorted(vid for vid, info in labels.items() if info["has_skeleton"] and info["label"] in remap)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"kinetics-skeleton {split}", total=len(ids))
        for vid in ids:
            info = labels[vid]
            video = read_kinetics_skeleton_json(json_dir / f"{vid}.json", width=width, height=height)
            pose_path = save_pose_cache(out_dir / "poses" / split / f"{vid}.npz", video.cache)
            clips.append(Clip(video=_find_video(vdir, vid, info["label"]).absolute() if vdir else
                              out_dir / "videos" / f"{vid}.mp4", label=remap[info["label"]],
                              label_name=info["label"], poses=pose_path.absolute(), split=split,
                              extra={"video_id": vid, "release_label_index": info["label_index"]}))
            bar.advance(task)
    return write_clip_index(out_dir / f"{split}.jsonl", clips, classes)
