"""tools.calibrate: the abstention threshold re-calibrated on held-out clips, through the training data path."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO

DEFAULT = REPO / "checkpoints" / "default.pt"


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    """The smoke synthetic benchmark (10 classes + no_action, like the default checkpoint; ~20 s)."""
    out = tmp_path_factory.mktemp("calib") / "synth"
    proc = subprocess.run([sys.executable, "-m", "tools.synth", "--out", str(out), "--preset", "smoke", "--seed", "5"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def test_writes_a_copy_with_the_new_threshold_and_the_same_weights(smoke_data, tmp_path):
    from core.checkpoint import load_checkpoint, read_checkpoint
    from core.decision import calibrate_threshold
    from tools.calibrate import window_probs

    if not DEFAULT.is_file():
        pytest.skip("checkpoints/default.pt is absent")
    out = tmp_path / "recal.pt"
    proc = subprocess.run([sys.executable, "-m", "tools.calibrate", "--checkpoint", str(DEFAULT), "--index",
                           str(smoke_data / "test_in.jsonl"), "--write", str(out), "--threads", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = float(proc.stdout.split("threshold ")[1].split(";")[0])
    written = read_checkpoint(out)
    assert written["extra"]["decision"]["threshold"] == printed
    assert "test_in.jsonl" in written["extra"]["decision"]["calibration"]
    original = read_checkpoint(DEFAULT)
    for key, value in original["state_dict"].items():
        assert torch.equal(value, written["state_dict"][key]), key
    # the printed threshold is the rule on the windows of the same data path (2 per video)
    probs, labels = window_probs(load_checkpoint(DEFAULT), smoke_data / "test_in.jsonl", 2)
    names = list(original["class_names"])
    assert printed == round(calibrate_threshold(probs, labels, names), 4)
    assert labels.shape == (2 * sum(1 for _ in open(smoke_data / "test_in.jsonl")),) and np.isfinite(probs).all()


def test_bad_input_is_one_line(smoke_data, tmp_path):
    for args, expected in (
        (["--index", str(tmp_path / "nope.jsonl")], "clip index not found"),
        (["--index", str(smoke_data / "val.jsonl"), "--keep", "1.5"], "--keep must be in (0, 1]"),
    ):
        proc = subprocess.run([sys.executable, "-m", "tools.calibrate", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0] and "Traceback" not in proc.stderr
