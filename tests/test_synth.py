"""Synthetic in/out-of-context benchmark: planning statistics, rendering, pose caches, determinism, CLI."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.clipindex import read_classes, read_clip_index
from core.posecache import load_pose_cache
from tools.synth.__main__ import main
from tools.synth.dataset import CATALOGUE, SynthConfig, class_list, generate, plan
from tools.synth.figure import COCO17
from tools.synth.posenoise import observe
from tools.synth.render import OUTSIDE, VISIBLE, ClipSpec, render_clip

TINY = SynthConfig(classes=3, train_per_class=1, val_per_class=0, test_per_class=1, frames=20, workers=1,
                   no_action=False, bystander_prob=0.0)


def _decode(path: Path) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        frames.append(fr)
    cap.release()
    return np.stack(frames)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_a")
    generate(replace(TINY, out=out))
    return out


def test_in_context_cooccurrence_matches_config():
    cfg = SynthConfig(classes=10, train_per_class=300, val_per_class=0, test_per_class=100, context_prob=0.9,
                      failure_prob=0.2)
    classes = class_list(10)
    plans = [p for p in plan(cfg) if p.label < 10]     # the action classes (no_action has no own context)
    for split in ("train", "test_in"):
        ps = [p for p in plans if p.split == split]
        own_scene = np.mean([p.spec.scene == classes[p.label].scene for p in ps])
        own_obj = np.mean([p.spec.obj == classes[p.label].obj for p in ps])
        n = len(ps)
        tol = 4 * np.sqrt(0.09 / n)                      # 4 binomial standard deviations
        assert abs(own_scene - 0.9) < tol and abs(own_obj - 0.9) < tol, (split, own_scene, own_obj)
        for label in range(10):                          # every class is mostly seen in its own venue
            mine = [p for p in ps if p.label == label]
            assert np.mean([p.spec.scene == classes[label].scene for p in mine]) > 0.75
    fails = Counter(p.spec.pose_failure for p in plans)
    assert abs(1 - fails[None] / len(plans) - 0.2) < 0.03
    assert {"out_of_frame", "missing", "jitter", "occlusion"} <= set(fails)
    # context_prob is honoured, not hard-wired
    low = [p for p in plan(replace(cfg, context_prob=0.5, test_per_class=0)) if p.label < 10]
    assert abs(np.mean([p.spec.scene == classes[p.label].scene for p in low]) - 0.5) < 0.05


@pytest.mark.parametrize("split", ["test_out", "val_out"])
def test_out_of_context_never_uses_own_scene_or_object(split):
    cfg = SynthConfig(classes=12, train_per_class=0, val_per_class=40, test_per_class=40)
    classes = class_list(12)
    outs = [p for p in plan(cfg) if p.split == split and p.label < 12]
    assert len(outs) == 12 * 40
    for p in outs:
        own = classes[p.label]
        assert p.spec.scene != own.scene and p.spec.obj != own.obj and not p.in_context
        ctx = next(c for c in classes if c.name == p.context_class)
        assert ctx.name != own.name and (p.spec.scene, p.spec.obj) == (ctx.scene, ctx.obj)
        assert p.spec.family == own.family                # the motion stays the class's own
    assert len({p.context_class for p in outs if p.label == 0}) > 5   # misleading contexts vary


def test_adding_val_out_left_the_other_splits_unchanged(monkeypatch):
    """val_out is planned after every other split, so the benchmark's earlier splits (and every checkpoint
    trained on them) are the same clips as before it existed."""
    import tools.synth.dataset as D

    cfg = SynthConfig(classes=10, train_per_class=6, val_per_class=3, test_per_class=4, styles="kicks")
    full = plan(cfg)
    assert sum(p.split == "val_out" for p in full) == 10 * 3 + round(1.5 * 3)
    bigger = plan(replace(cfg, val_out_per_class=8))     # its own size leaves the other splits alone too
    assert sum(p.split == "val_out" for p in bigger) == 10 * 8 + round(1.5 * 8)
    assert [p for p in bigger if p.split != "val_out"] == [p for p in full if p.split != "val_out"]
    monkeypatch.setattr(D, "SPLITS", ("train", "val", "test_in", "test_out"))   # the plan before val_out
    assert [p for p in full if p.split != "val_out"] == D.plan(cfg)


def test_same_motion_pairs_share_family_and_differ_by_context():
    fam = Counter(c.family for c in CATALOGUE)
    pairs = [[c for c in CATALOGUE if c.family == f] for f, k in fam.items() if k > 1]
    names = {tuple(sorted(c.name for c in p)) for p in pairs}
    assert ("drinking", "eating_ice_cream") in names and ("swing_bat", "swing_tennis") in names
    for a, b in pairs:
        assert a.scene != b.scene and a.obj != b.obj
    assert "drinking" in [c.name for c in class_list(6)] and "eating_ice_cream" in [c.name for c in class_list(6)]
    # all other classes have their own motion family, so pose alone can separate them
    assert sum(1 for k in fam.values() if k == 1) == len(CATALOGUE) - 4
    # a pair really moves identically: same seed, either class -> the same 3D joint trajectories
    a = render_clip(ClipSpec("hand_to_mouth", "cafe", "cup", seed=5, frames=12))
    b = render_clip(ClipSpec("hand_to_mouth", "beach", "ice_cream", seed=5, frames=12))
    na = (a.coords - a.coords.mean(1, keepdims=True)) / a.scale[:, None, None]
    nb = (b.coords - b.coords.mean(1, keepdims=True)) / b.scale[:, None, None]
    assert np.abs(na - nb).max() < 1e-3


def test_index_videos_and_caches(tiny):
    classes = read_classes(tiny / "classes.txt")
    assert classes == [c.name for c in CATALOGUE[:3]]
    clips = {s: read_clip_index(tiny / f"{s}.jsonl") for s in ("train", "val", "test_in", "test_out")}
    assert [len(clips[s]) for s in ("train", "val", "test_in", "test_out")] == [3, 0, 3, 3]
    for clip in clips["test_out"]:
        assert clip.extra["in_context"] is False and clip.extra["scene"] != CATALOGUE[clip.label].scene
    for clip in clips["train"] + clips["test_out"]:
        frames = _decode(clip.video)
        assert frames.shape == (20, 120, 160, 3)
        cache = load_pose_cache(clip.poses)
        assert cache.coords.shape == (20, 1, 17, 2) and cache.skeleton == "coco17"
        assert (cache.width, cache.height, cache.fps) == (160, 120, 30.0) and cache.valid.all()
        assert {"scene", "object", "in_context", "pose_failure"} <= set(clip.extra)


def test_generation_is_deterministic_across_workers(tiny, tmp_path):
    other = tmp_path / "b"
    generate(replace(TINY, out=other, workers=2))
    for name in ("train.jsonl", "test_in.jsonl", "test_out.jsonl", "classes.txt"):
        assert (tiny / name).read_bytes() == (other / name).read_bytes()
    for npz in sorted((tiny / "poses").rglob("*.npz")):
        assert npz.read_bytes() == (other / npz.relative_to(tiny)).read_bytes(), npz
    for mp4 in sorted((tiny / "videos").rglob("*.mp4"))[:3]:
        assert np.array_equal(_decode(mp4), _decode(other / mp4.relative_to(tiny)))
    # and a different seed gives different content
    assert not np.array_equal(render_clip(ClipSpec("wave", "gym", "mat", seed=1, frames=4)).frames,
                              render_clip(ClipSpec("wave", "gym", "mat", seed=2, frames=4)).frames)


def test_cached_keypoints_land_on_the_drawn_figure(tiny):
    """Pixels under confident cached keypoints change when the figure is removed; random pixels rarely do."""
    hits, rand_hits, wrist_hits = [], [], []
    rng = np.random.default_rng(0)
    wrists = [COCO17.index("l_wrist"), COCO17.index("r_wrist")]
    plans = {p.name: p for p in plan(TINY)}
    for clip in read_clip_index(tiny / "train.jsonl") + read_clip_index(tiny / "test_in.jsonl"):
        video = _decode(clip.video).astype(np.int16)
        empty = render_clip(plans[clip.video.stem].spec, draw_figure=False).frames.astype(np.int16)
        changed = np.abs(video - empty).max(-1) > 40          # (F, H, W) figure mask from pixels alone
        cache = load_pose_cache(clip.poses)
        xy = np.round(cache.coords[:, 0]).astype(int)
        ok = cache.scores[:, 0] > 0.5
        f_idx, j_idx = np.nonzero(ok)
        on = changed[f_idx, xy[f_idx, j_idx, 1], xy[f_idx, j_idx, 0]]
        hits.extend(on.tolist())
        wrist_hits.extend(on[np.isin(j_idx, wrists)].tolist())
        rf, ry, rx = (rng.integers(0, n, 500) for n in changed.shape)
        rand_hits.extend(changed[rf, ry, rx].tolist())
    assert len(hits) > 200 and len(wrist_hits) > 20
    assert np.mean(hits) > 0.8, np.mean(hits)
    assert np.mean(wrist_hits) > 0.7, np.mean(wrist_hits)
    assert np.mean(rand_hits) < 0.3, np.mean(rand_hits)


@pytest.mark.parametrize("failure", ["missing", "out_of_frame", "jitter", "occlusion"])
def test_pose_failures_show_in_the_cache(failure):
    def run(f: str | None, seed: int):
        spec = ClipSpec("jumping_jack", "gym", "mat", seed=seed, frames=40, pose_failure=f)
        clip = render_clip(spec)
        coords, scores = observe(clip, np.random.default_rng(seed), f, spec.width, spec.height)
        return clip, coords[:, 0], scores[:, 0]

    for seed in range(3):
        clip, coords, scores = run(failure, seed)
        base, bcoords, bscores = run(None, seed)
        if failure == "missing":
            assert ((scores == 0).all(1)).sum() >= 4
            assert not (bscores == 0).all(1).any()
        elif failure == "out_of_frame":
            out = clip.state == OUTSIDE
            # MoveNet reports cut-off joints clamped to the edge with low scores (up to ~0.25)
            assert out.any(1).mean() > 0.5 and scores[out].max() < 0.3
            assert not (base.state == OUTSIDE).any()
        elif failure == "jitter":
            vis = (clip.state == VISIBLE) & (scores > 0)
            err = np.linalg.norm(coords - clip.coords, axis=-1)[vis].mean()
            berr = np.linalg.norm(bcoords - base.coords, axis=-1)[(base.state == VISIBLE)].mean()
            assert err > 2.5 * berr
        else:
            assert (clip.state != VISIBLE).mean() > (base.state != VISIBLE).mean() + 0.1
            assert scores.mean() < bscores.mean()


def test_cli_rejects_bad_input_with_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--classes", "99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--classes" in err and "\n" not in err
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "x"), "--size", "big"])
    assert exc.value.code == 2
    assert "size must look like" in capsys.readouterr().err
    with pytest.raises(SystemExit):                 # odd sizes would be cropped by the mp4v encoder
        main(["--out", str(tmp_path / "x"), "--size", "171x128"])
    assert "must be even" in capsys.readouterr().err


def test_no_action_class_is_last_with_context_from_every_class():
    cfg = SynthConfig(classes=10, train_per_class=40, val_per_class=0, test_per_class=10, no_action_factor=1.5)
    classes = class_list(10, no_action=True)
    assert classes[-1].name == "no_action" and len(classes) == 11
    plans = plan(cfg)
    none = [p for p in plans if p.label == 10]
    assert sum(p.split == "train" for p in none) == 60 and sum(p.split == "test_out" for p in none) == 15
    assert all(p.spec.family == "none" for p in none)
    scenes, objects = Counter(p.spec.scene for p in none), Counter(p.spec.obj for p in none)
    assert len(scenes) >= 8 and len(objects) >= 8            # any class's venue and prop
    assert max(scenes.values()) < 0.3 * len(none)
    # scene and prop are drawn independently: they often belong to different classes
    pairs = {(c.scene, c.obj) for c in classes[:10]}
    assert np.mean([(p.spec.scene, p.spec.obj) in pairs for p in none]) < 0.5


def test_framing_bystanders_and_styles_reach_the_cache():
    legs = ClipSpec("jumping_jack", "gym", "mat", seed=3, frames=24, framing="legs_cut")
    upper = ClipSpec("wave", "gym", "mat", seed=3, frames=24, framing="upper_body")
    full = ClipSpec("wave", "gym", "mat", seed=3, frames=24)
    ankles = [COCO17.index("l_ankle"), COCO17.index("r_ankle")]
    hips = [COCO17.index("l_hip"), COCO17.index("r_hip")]
    assert (render_clip(legs).state[:, ankles] == OUTSIDE).mean() > 0.9
    knees = [COCO17.index("l_knee"), COCO17.index("r_knee")]
    ups = [render_clip(replace(upper, seed=seed)) for seed in range(12)]
    assert all((up.state[:, knees + ankles] == OUTSIDE).all() for up in ups)
    assert np.mean([(up.state[:, hips] == OUTSIDE).mean() for up in ups]) > 0.15   # the edge cuts at the hips
    assert (render_clip(full).state[:, ankles] != OUTSIDE).all()
    # a bystander is a second person in the cache, smaller or larger, with its own keypoints
    clip = render_clip(replace(full, bystander=True))
    coords, scores = observe(clip, np.random.default_rng(0), None, full.width, full.height)
    assert coords.shape == (24, 2, 17, 2) and (scores[:, 1] > 0.2).any()
    assert np.abs(coords[:, 0] - coords[:, 1]).mean() > 5
    # the figure of the main person is unchanged by the bystander (drawn behind it)
    assert np.allclose(clip.coords, render_clip(full).coords)
    # kicks come as front and side kicks: a style per clip, drawn from the seed
    from tools.synth.motions import FAMILIES
    styles = [FAMILIES["kick"].styles(np.random.default_rng(i))["side_kick"] for i in range(40)]
    assert 0 < np.mean(styles) < 1


def _wrists_3d(family: str, style: dict, t: np.ndarray) -> np.ndarray:
    """Both wrists (F, 2, 3) of a default-built figure facing the camera, in body heights."""
    from tools.synth.figure import Body, forward_kinematics
    from tools.synth.motions import Timing, animate

    timing = Timing(speed=1.0, phase=0.0, amp=1.0, warp=0.0, warp_phase=0.0)
    sk = forward_kinematics(Body(), animate(family, t, timing, "r", style), np.zeros(len(t)))
    return sk.joints[:, [COCO17.index("l_wrist"), COCO17.index("r_wrist")]]


def test_kick_arm_styles_and_drinking_reach_change_the_figure():
    """Real kicks are mostly done with the arms down and real drinkers reach for a cup on a table: both are
    styles of the `wide` set, and they must move the wrists, not just sit in the style dict."""
    from tools.synth.motions import FAMILIES, draw_style

    t = np.linspace(0, 1.4, 30)
    kick_style = {"height": 70.0, "side_kick": 0.0, "rest": 0.0}
    guard = _wrists_3d("kick", {**kick_style, "arms": 0.1}, t)
    hanging = _wrists_3d("kick", {**kick_style, "arms": 0.6}, t)
    assert guard[:, :, 1].mean() > hanging[:, :, 1].mean() + 0.15          # fists up vs hands by the hips
    arms = [draw_style("kick", np.random.default_rng(i), "wide")["arms"] for i in range(60)]
    assert 0.2 < np.mean(np.array(arms) < 0.4) < 0.6                     # both styles are drawn
    # the base set draws exactly what it drew before `wide` existed
    for fam in FAMILIES:
        assert draw_style(fam, np.random.default_rng(7), "base") == FAMILIES[fam].styles(np.random.default_rng(7))
    assert "arms" not in draw_style("kick", np.random.default_rng(7))
    assert "reach" not in draw_style("hand_to_mouth", np.random.default_rng(7))
    base = draw_style("hand_to_mouth", np.random.default_rng(7), "base")
    wide = draw_style("hand_to_mouth", np.random.default_rng(7), "wide")
    assert {k: wide[k] for k in base} == base and "reach" in wide
    assert {p.spec.styles for p in plan(replace(TINY, styles="wide"))} == {"wide"}
    assert {p.spec.styles for p in plan(TINY)} == {"base"}
    with pytest.raises(ValueError, match="unknown style set"):
        draw_style("kick", np.random.default_rng(0), "fancy")
    reaches = [draw_style("hand_to_mouth", np.random.default_rng(i), "wide")["reach"] for i in range(60)]
    assert 0.2 < np.mean(np.array(reaches) != 0) < 0.6
    sip = {"rest_up": 0.0, "tilt": 10.0, "offset": 0.02, "elbow_up": 0.0, "rest": 0.0}
    near = _wrists_3d("hand_to_mouth", {**sip, "reach": 0.0}, t)[:, 1]
    ahead = _wrists_3d("hand_to_mouth", {**sip, "reach": 0.5}, t)[:, 1]
    beside = _wrists_3d("hand_to_mouth", {**sip, "reach": -0.5}, t)[:, 1]
    assert ahead[:, 2].max() > near[:, 2].max() + 0.05                   # the cup stands further in front
    assert np.abs(beside[:, 0]).max() > np.abs(near[:, 0]).max() + 0.1   # or out to the side
    # ... and the sip itself still brings the wrist up to the mouth
    assert np.ptp(ahead[:, 1]) > 0.15 and np.ptp(beside[:, 1]) > 0.15


def _ankle_lifts(style_set: str, n: int = 200) -> np.ndarray:
    """Ankle rise of the kicking leg within a 72-frame, 30 fps clip, in leg lengths, over n random kick clips."""
    from tools.synth.figure import Body, forward_kinematics
    from tools.synth.motions import animate, draw_style, random_timing

    t = np.arange(72) / 30.0
    lifts = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        timing = random_timing(rng)
        style = draw_style("kick", rng, style_set)
        sk = forward_kinematics(Body(), animate("kick", t, timing, "r", style), np.zeros(len(t)))
        ankle, hip = sk.joints[:, COCO17.index("r_ankle"), 1], sk.joints[:, COCO17.index("l_hip"), 1]
        lifts.append(np.ptp(ankle) / (hip[0] - sk.joints[0, COCO17.index("l_ankle"), 1]))
    return np.array(lifts)


def test_kicks_style_set_makes_every_kick_visible():
    """In `wide` a fifth of the kick clips barely lift the foot within the clip (a low kick times a small
    amplitude, or a single repetition whose kick falls outside the 2.4 s): a label their poses cannot carry.
    `kicks` keeps every other family's draws and makes every kick clip lift the ankle."""
    from tools.synth.motions import FAMILIES, draw_style

    assert np.mean(_ankle_lifts("wide") < 0.15) > 0.1
    assert _ankle_lifts("kicks").min() >= 0.15
    for fam in FAMILIES:
        if fam != "kick":
            assert draw_style(fam, np.random.default_rng(3), "kicks") == draw_style(fam, np.random.default_rng(3), "wide")
    style = draw_style("kick", np.random.default_rng(3), "kicks")
    assert 50 <= style["height"] <= 90 and 0.2 <= style["peak_at"] <= 0.8
