"""Metrics on hand-made probability arrays with known answers; the evaluation report on them."""
from __future__ import annotations

import json

import numpy as np
import pytest

from train import metrics as M
from train.evaluate import analyse, write_report
from train.loop import Predictions

# 4 videos, 3 classes; labels 0, 1, 2, 2
LABELS = np.array([0, 1, 2, 2])
A = np.array([[0.7, 0.2, 0.1],   # correct
              [0.6, 0.3, 0.1],   # wrong (top-2 correct)
              [0.1, 0.1, 0.8],   # correct
              [0.5, 0.4, 0.1]])  # wrong (label is last: top-3 only)
P = np.array([[0.2, 0.5, 0.3],   # wrong
              [0.1, 0.8, 0.1],   # correct
              [0.6, 0.3, 0.1],   # wrong
              [0.4, 0.1, 0.5]])  # correct


def test_topk():
    assert M.topk_accuracy(A, LABELS, 1) == pytest.approx(50.0)
    assert M.topk_accuracy(A, LABELS, 2) == pytest.approx(75.0)
    assert M.topk_accuracy(A, LABELS, 5) == pytest.approx(100.0)  # k > K clips to K
    assert M.topk_accuracy(P, LABELS, 1) == pytest.approx(50.0)


def test_ties_do_not_count_everything_correct():
    flat = np.full((3, 3), 1 / 3)
    assert M.topk_accuracy(flat, np.array([0, 1, 2]), 1) == pytest.approx(100 / 3)


def test_per_class_and_confusion():
    np.testing.assert_allclose(M.per_class_accuracy(A, LABELS), [100.0, 0.0, 50.0])
    pc = M.per_class_accuracy(A[:2], LABELS[:2], 3)
    assert pc[0] == 100.0 and pc[1] == 0.0 and np.isnan(pc[2])
    np.testing.assert_array_equal(M.confusion_matrix(A, LABELS), [[1, 0, 0], [1, 0, 0], [1, 0, 1]])


def test_oracle_selects_either_correct_model():
    top1, per_class = M.oracle_accuracy(A, P, LABELS)
    assert top1 == pytest.approx(100.0)
    np.testing.assert_allclose(per_class, [100.0, 100.0, 100.0])
    top1, _ = M.oracle_accuracy(A, A, LABELS)
    assert top1 == pytest.approx(50.0)


def test_score_sweep_known_values():
    rows = M.score_sweep(A, P, LABELS, weights=[0.0, 0.5, 1.0])
    assert [r["appearance_weight"] for r in rows] == [0.0, 0.5, 1.0]
    assert rows[0]["top1"] == pytest.approx(50.0)  # pose only
    assert rows[2]["top1"] == pytest.approx(50.0)  # appearance only
    # 0.5/0.5: [.45,.35,.2] ok, [.35,.55,.1] ok, [.35,.2,.45] ok, [.45,.25,.3] wrong
    assert rows[1]["top1"] == pytest.approx(75.0)


def test_average_clips_and_gate_stats():
    clips = np.array([[[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]])  # one video, 3 clips
    np.testing.assert_allclose(M.average_clips(clips), [[0.5, 0.5]])
    h = M.gate_histogram([0.05, 0.05, 0.95], bins=10)
    assert h["counts"][0] == 2 and h["counts"][-1] == 1 and sum(h["counts"]) == 3
    assert h["mean"] == pytest.approx(1.05 / 3)
    np.testing.assert_allclose(M.per_class_mean([0.2, 0.4, 0.9], [1, 1, 0], 3)[:2], [0.9, 0.3])
    assert np.isnan(M.per_class_mean([0.2], [0], 2)[1])


def test_analyse_and_report(tmp_path):
    names = ["x", "y", "z"]
    main = Predictions(P * 0.5 + A * 0.5, LABELS, gate=np.array([0.1, 0.2, 0.3, 0.4]),
                       clip_gate=np.array([[0.1], [0.2], [0.3], [0.4]]))
    result = analyse(main, names, Predictions(A, LABELS), Predictions(P, LABELS))
    assert result["model"]["top1"] == pytest.approx(75.0)
    assert result["oracle"]["top1"] == pytest.approx(100.0)
    assert result["gate"]["per_class_mean"]["z"] == pytest.approx(0.35)
    assert len(result["score_sweep"]) == 11
    files = write_report(result, tmp_path, "unit")
    for f in files:
        assert f.is_file() and f.stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["model"]["top5"] == pytest.approx(100.0)
    assert "| z |" in (tmp_path / "report.md").read_text()
    with pytest.raises(ValueError, match="different videos"):
        analyse(main, names, Predictions(A, LABELS[::-1]), Predictions(P, LABELS))


def test_wilson_interval_matches_published_values():
    """Newcombe (1998), Table I: 81 of 263 -> 0.2553-0.3662; 15 of 148 -> 0.0624-0.1605; 0 of 20 -> 0-0.1611."""
    from train.metrics import wilson_interval

    for (k, n), (lo, hi) in (((81, 263), (0.2553, 0.3662)), ((15, 148), (0.0624, 0.1605)), ((0, 20), (0.0, 0.1611))):
        got = wilson_interval(k, n)
        assert abs(got[0] - lo) < 6e-4 and abs(got[1] - hi) < 6e-4, (k, n, got)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and 0.8 < lo < 0.85
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_mcnemar_exact_is_the_two_sided_binomial_tail():
    from math import comb

    from train.metrics import mcnemar_exact

    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(5, 0) == mcnemar_exact(0, 5) == 2 / 32
    assert abs(mcnemar_exact(8, 2) - 2 * sum(comb(10, i) for i in range(3)) / 1024) < 1e-12   # 0.109
    assert mcnemar_exact(20, 0) < 1e-5
