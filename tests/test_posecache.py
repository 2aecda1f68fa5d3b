"""Pose cache (.npz) and clip index (JSONL) formats: round trips, atomic writes, one-line errors."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core import posecache
from core.clipindex import Clip, ClipIndexError, read_classes, read_clip_index, video_stem, write_clip_index
from core.posecache import PoseCache, PoseCacheError, load_pose_cache, save_pose_cache, stack_persons


def _cache(frames: int = 6, persons: int = 2, skeleton: str = "coco17") -> PoseCache:
    rng = np.random.default_rng(0)
    j = posecache.SKELETON_JOINTS[skeleton]
    return PoseCache(coords=rng.uniform(0, 300, (frames, persons, j, 2)).astype(np.float32),
                     scores=rng.uniform(0, 1, (frames, persons, j)).astype(np.float32), skeleton=skeleton,
                     fps=29.97, width=340, height=256, valid=np.arange(frames) % 2 == 0, source="a.mp4",
                     estimator="movenet", meta={"every": "2"})


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    cache = _cache()
    save_pose_cache(tmp_path / "a.npz", cache)
    back = load_pose_cache(tmp_path / "a.npz")
    np.testing.assert_array_equal(back.coords, cache.coords)
    np.testing.assert_array_equal(back.scores, cache.scores)
    np.testing.assert_array_equal(back.valid, cache.valid)
    assert back.coords.dtype == np.float32 and back.scores.dtype == np.float32 and back.valid.dtype == bool
    assert (back.skeleton, back.fps, back.width, back.height) == ("coco17", 29.97, 340, 256)
    assert (back.source, back.estimator, back.meta) == ("a.mp4", "movenet", {"every": "2"})
    # nothing in the file needs pickle
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)


def test_stack_persons_pads_with_zero_scores() -> None:
    c, s = stack_persons([np.ones((2, 17, 2)), np.zeros((0, 17, 2)), np.full((3, 17, 2), 5.0)],
                         [np.ones((2, 17)), np.zeros((0, 17)), np.full((3, 17), 0.5)], 17)
    assert c.shape == (3, 3, 17, 2) and s.shape == (3, 3, 17)
    assert (s[0, 2] == 0).all() and (s[1] == 0).all() and (s[2] == 0.5).all()
    assert (c[0, :2] == 1).all() and (c[0, 2] == 0).all()


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.npz"
    save_pose_cache(path, _cache(frames=4))
    before = path.read_bytes()

    def broken(fh, **arrays):  # write some bytes, then die mid-write
        fh.write(b"PK\x03\x04garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(posecache.np, "savez_compressed", broken)
    with pytest.raises(KeyboardInterrupt):
        save_pose_cache(path, _cache(frames=9))
    assert path.read_bytes() == before  # the old complete file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]
    assert load_pose_cache(path).num_frames == 4


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(scores=d["scores"][:, :1]), "does not match coords"),
    (lambda d: d.update(coords=d["coords"][..., :1]), "coords must be (F,P,J,2)"),
    (lambda d: d.update(valid=d["valid"][:-1]), "valid must be"),
    (lambda d: d.update(valid=d["valid"].astype(np.int64)), "valid must be bool"),
    (lambda d: d.update(skeleton=np.array("smpl")), "unknown skeleton"),
    (lambda d: d.update(skeleton=np.array("openpose18")), "has 18 joints"),
    (lambda d: d.update(fps=np.array(0.0)), "fps must be"),
    (lambda d: d.pop("scores"), "missing scores"),
    (lambda d: d.update(coords=np.array([object()], dtype=object)), "unreadable pose cache"),
])
def test_bad_files_give_one_line_errors(tmp_path: Path, mutate, message: str) -> None:
    save_pose_cache(tmp_path / "ok.npz", _cache())
    with np.load(tmp_path / "ok.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    mutate(data)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)  # object arrays get pickled here; load must refuse them
    with pytest.raises(PoseCacheError) as err:
        load_pose_cache(bad)
    assert message in str(err.value) and "\n" not in str(err.value) and str(bad) in str(err.value)


def test_not_a_cache(tmp_path: Path) -> None:
    for name, content in (("text.npz", b"hello"), ("trunc.npz", b"PK\x03\x04" + b"\0" * 10)):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(PoseCacheError, match="unreadable pose cache"):
            load_pose_cache(tmp_path / name)
    with pytest.raises(PoseCacheError, match="not found"):
        load_pose_cache(tmp_path / "absent.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("x.npy", b"")
    with pytest.raises(PoseCacheError):
        load_pose_cache(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------- clip index
def test_clip_index_round_trip_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    clips = [Clip(video=root / "videos" / "a.mp4", label=1, label_name="b", poses=root / "poses" / "a.npz",
                  split="train", extra={"youtube_id": "xyz", "t": [1, 2]}),
             Clip(video=root / "frames" / "clip1", label=0, label_name="a", poses=None, split="test")]
    index = write_clip_index(root / "train.jsonl", clips, ["a", "b"])
    lines = [json.loads(ln) for ln in index.read_text().splitlines()]
    assert lines[0]["video"] == "videos/a.mp4" and lines[0]["poses"] == "poses/a.npz"
    assert lines[0]["youtube_id"] == "xyz" and lines[1]["poses"] is None
    assert read_classes(root / "classes.txt") == ["a", "b"]
    # the whole folder can move: paths are relative to the index
    moved = tmp_path / "moved"
    root.rename(moved)
    back = read_clip_index(moved / "train.jsonl")
    assert back[0].video == (moved / "videos" / "a.mp4").resolve()
    assert back[0].poses == (moved / "poses" / "a.npz").resolve()
    assert back[0].extra == {"youtube_id": "xyz", "t": [1, 2]} and back[1].poses is None
    assert [c.label for c in read_clip_index(moved / "train.jsonl", split="test")] == [0]


@pytest.mark.parametrize("line, message", [
    ("{not json", "invalid JSON"),
    ('{"label": 0}', "missing or invalid 'video'"),
    ('{"video": "a.mp4", "label": "0"}', "'label' must be an integer"),
    ('{"video": "a.mp4", "label": 5}', "out of range"),
    ('{"video": "a.mp4", "label": 0, "label_name": "b"}', "not 'b'"),
    ('{"video": "a.mp4", "label": 0, "poses": 3}', "'poses' must be"),
])
def test_clip_index_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    (tmp_path / "classes.txt").write_text("a\nb\n")
    (tmp_path / "i.jsonl").write_text('{"video": "ok.mp4", "label": 1}\n' + line + "\n")
    with pytest.raises(ClipIndexError) as err:
        read_clip_index(tmp_path / "i.jsonl")
    assert message in str(err.value) and "i.jsonl:2" in str(err.value)


def test_classes_file_rejects_blank_and_duplicate_names(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text("a\n\nb\n")
    with pytest.raises(ClipIndexError, match="empty class name"):
        read_classes(tmp_path / "c.txt")
    (tmp_path / "c.txt").write_text("a\nb\na\n")
    with pytest.raises(ClipIndexError, match="duplicate"):
        read_classes(tmp_path / "c.txt")


def test_video_stem(tmp_path: Path) -> None:
    (tmp_path / "clip.v2").mkdir()
    assert video_stem(tmp_path / "clip.v2") == "clip.v2"
    assert video_stem(tmp_path / "x.mp4") == "x"


def test_pose_track_is_the_one_reading_rule(tmp_path: Path) -> None:
    """`PoseTrack`: unprocessed frames hold the nearest processed one (ties: earlier), indices past the
    ends hold the first/last frame, other frame sizes rescale about pixel centres; `frame` gives only the
    persons present, `at` every slot."""
    from core.posecache import PoseTrack, rescale_keypoints

    cache = PoseCache.empty(6, 2, "coco17", 30.0, 100, 50)
    cache.valid[[1, 4]] = True
    cache.coords[1] = 10.0
    cache.coords[4] = 20.0
    cache.scores[1, 0] = 0.8          # frame 1: person 0 only
    cache.scores[4] = 0.6             # frame 4: both
    track = PoseTrack(save_and_load(tmp_path, cache))
    assert track.rows([0, 1, 2, 3, 4, 5, -3, 99]).tolist() == [1, 1, 1, 4, 4, 4, 1, 4]
    coords, scores = track.at([2, 3], 100, 50)
    assert coords.shape == (2, 2, 17, 2) and (coords[0] == 10.0).all() and (coords[1] == 20.0).all()
    assert (scores[0, 1] == 0).all() and (scores[1] == 0.6).all()
    c, s = track.frame(0, 100, 50)
    assert c.shape == (1, 17, 2) and (s == np.float32(0.8)).all()
    c, _ = track.frame(5, 200, 100)   # a 2x copy of the video: pixel centres map onto pixel centres
    np.testing.assert_allclose(c, (20.0 + 0.5) * 2 - 0.5)
    np.testing.assert_allclose(rescale_keypoints(np.array([[-0.5, -0.5], [99.5, 49.5]]), (100, 50), (300, 150)),
                               [[-0.5, -0.5], [299.5, 149.5]])
    empty = PoseTrack(PoseCache.empty(3, 1, "coco17", 30.0, 100, 50))   # nothing processed: nobody
    assert empty.frame(1, 100, 50)[0].shape == (0, 17, 2) and not empty.at([0, 2], 100, 50)[1].any()


def save_and_load(tmp_path: Path, cache: PoseCache) -> PoseCache:
    save_pose_cache(tmp_path / "c.npz", cache)
    return load_pose_cache(tmp_path / "c.npz")
