"""`python -m tools.bench real`: real clips through the ia-live pipeline, scored from their messages."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench.real import _label_of, summarise, to_markdown

REPO = Path(__file__).resolve().parents[1]


def test_summary_counts_clips_abstention_and_other_videos():
    names = ["waving", "kicking", "no_action"]
    result = {"checkpoint": "x.pt", "classes": names, "clips": [
        {"video": "waving__a.mp4", "label": "waving", "pred": "waving", "top3": ["waving", "kicking", "no_action"],
         "messages": 4, "abstained": 0.25, "mean_gate": 0.2, "actions": {"waving": 3, "no_action": 1}},
        {"video": "kicking__b.mp4", "label": "kicking", "pred": "no_action", "top3": ["no_action", "kicking", "waving"],
         "messages": 6, "abstained": 1.0, "mean_gate": 0.4, "actions": {"no_action": 6}},
    ], "other": [
        {"video": "tai_chi.mp4", "messages": 10, "abstained": 0.9, "mean_gate": 0.3, "actions": {"no_action": 9, "waving": 1}},
        {"video": "makeup.avi", "messages": 10, "abstained": 0.7, "mean_gate": None, "actions": {"no_action": 7, "kicking": 3}},
    ]}
    s = summarise(result)
    assert s["top1"] == 50.0 and s["top3"] == 100.0
    assert s["top1_ci95"] == [9.5, 90.5]   # Wilson, 1 of 2: 0.5 +- 0.4055 with z 1.96
    assert s["per_class"] == {"kicking": 0.0, "waving": 100.0}
    assert s["abstention_rate"] == pytest.approx((1 + 6) / 10)
    assert s["other_non_abstaining_rate"] == pytest.approx(4 / 20)
    assert s["confusion"]["cols"] == ["kicking", "waving", "no_action"]
    assert s["confusion"]["counts"] == [[0, 0, 1], [0, 1, 0]]
    text = to_markdown({**result, "summary": s})
    assert "clip top-1 50.0 % (95 % interval 9.5-90.5, Wilson)" in text and "non-abstaining messages 20.0 %" in text


def test_labels_come_from_file_names_and_relabel_patterns():
    relabel = [("*A001_rgb.*", "drinking")]
    assert _label_of(Path("squats__hans_istock.mp4"), relabel) == "squats"
    assert _label_of(Path("S001C001P001R001A001_rgb.avi"), relabel) == "drinking"
    assert _label_of(Path("stgcn_tai_chi.mp4"), relabel) is None


def test_two_real_dev_clips_through_the_live_pipeline(shared, tmp_path):
    clips = shared("data", "real_actions_dev")
    out = tmp_path / "eval"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "tools.bench", "real", "--clips", str(clips), "--limit", "2",
                           "--engine", "onnxruntime", "--out", str(out)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((out / "real_eval.json").read_text())
    names = result["classes"]
    assert len(result["clips"]) == 2
    for clip in result["clips"]:
        assert clip["messages"] > 0 and clip["pred"] in names
        assert clip["label"] == clip["video"].split("__")[0]
        assert set(clip["actions"]) <= set(names) | {"no_action"}
        assert abs(sum(clip["mean_probs"]) - 1.0) < 1e-3      # --topk = all classes: full distributions
    assert "clip top-1" in (out / "real_eval.md").read_text()


def test_bad_input_is_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    (tmp_path / "nolabel.mp4").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no videos here")
    for args, text in ((["--clips", str(tmp_path / "missing")], "not a folder"),
                       (["--other", str(tmp_path / "empty")], "no videos (.mp4"),
                       (["--clips", str(tmp_path)], "is not named <label>__"),
                       ([], "give --clips")):
        proc = subprocess.run([sys.executable, "-m", "tools.bench", "real", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and text in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
