"""The abstention rule: nobody, the no_action class, and the threshold each make the output no_action."""
from __future__ import annotations

import numpy as np
import pytest

from core.decision import NO_ACTION, DecisionRule, calibrate_threshold

NAMES = ["waving", "squats", "kicking", NO_ACTION]


def test_confident_action_is_decided_with_its_probability():
    d = DecisionRule(threshold=0.5).decide([0.7, 0.1, 0.1, 0.1], NAMES, persons=1)
    assert (d.action, d.reason, d.abstained) == ("waving", "action", False)
    assert d.score == pytest.approx(0.7)


def test_nobody_in_the_window_abstains_whatever_the_probabilities():
    d = DecisionRule().decide([0.97, 0.01, 0.01, 0.01], NAMES, persons=0)
    assert (d.action, d.reason) == (NO_ACTION, "nobody")
    assert d.score == pytest.approx(0.03)


def test_no_action_class_wins_when_most_probable():
    d = DecisionRule().decide([0.3, 0.1, 0.1, 0.5], NAMES, persons=2)
    assert (d.action, d.reason) == (NO_ACTION, "no_action_class")
    assert d.score == pytest.approx(0.7)   # 1 - the best action's probability


def test_threshold_abstains_on_a_spread_distribution_and_ties_go_to_the_lower_index():
    spread = [0.34, 0.34, 0.2, 0.12]
    assert DecisionRule(threshold=0.4).decide(spread, NAMES).reason == "below_threshold"
    d = DecisionRule(threshold=0.3).decide(spread, NAMES)
    assert d.action == "waving"


def test_models_without_a_no_action_class_use_the_threshold_only():
    names = ["a", "b"]
    assert DecisionRule(threshold=0.6).decide([0.55, 0.45], names).action == NO_ACTION
    assert DecisionRule(threshold=0.5).decide([0.55, 0.45], names).action == "a"


def test_checkpoint_rule_and_override():
    extra = {"decision": {"threshold": 0.42, "calibration": "synthetic val"}}
    assert DecisionRule.from_checkpoint(extra).threshold == 0.42
    assert DecisionRule.from_checkpoint({}).threshold == 0.0
    assert DecisionRule.from_checkpoint(extra, threshold=0.9).threshold == 0.9
    with pytest.raises(ValueError, match="threshold"):
        DecisionRule(threshold=1.5)
    with pytest.raises(ValueError, match="probabilities"):
        DecisionRule().decide(np.ones(3) / 3, NAMES)


def _windows(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of n windows over NAMES, more or less confident in their (random) true class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), labels] += rng.uniform(0, 4, n)
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True), labels


def test_calibrated_threshold_keeps_the_asked_share_of_correct_action_windows():
    probs, labels = _windows(seed=0, n=400)
    t = calibrate_threshold(probs, labels, NAMES, keep=0.9)
    correct = (probs.argmax(1) == labels) & (labels != 3)          # no_action windows do not count
    kept = probs[correct, labels[correct]] >= t
    assert abs(kept.mean() - 0.9) < 0.01
    rule = DecisionRule(threshold=t)
    decided = [rule.decide(pv, NAMES).action for pv in probs[correct]]
    assert np.mean([d != NO_ACTION for d in decided]) <= kept.mean() + 1e-9
    with pytest.raises(ValueError, match="no correctly"):
        calibrate_threshold(probs[:5] * 0 + [0, 0, 0, 1], labels[:5] * 0, NAMES)


def test_calibrated_rule_records_the_threshold_and_what_it_costs():
    """The record a checkpoint stores (train.experiment, tools.calibrate): the threshold of
    `calibrate_threshold`, and the shares of action / no_action windows the whole rule abstains on."""
    from core.decision import calibrated_rule

    n = 300
    probs, labels = _windows(seed=1, n=n)
    record = calibrated_rule(probs, labels, NAMES, "test windows", keep=0.9)
    assert record["threshold"] == round(calibrate_threshold(probs, labels, NAMES, keep=0.9), 4)
    assert record["calibration"] == f"keeps 90% of correctly recognised action windows of test windows ({n} windows)"
    rule = DecisionRule(threshold=record["threshold"])
    abstained = np.array([rule.decide(p, NAMES).abstained for p in probs])
    assert record["val_action_abstained"] == round(abstained[labels != 3].mean(), 4)
    assert record["val_no_action_abstained"] == round(abstained[labels == 3].mean(), 4)
    assert 0 < record["val_action_abstained"] < record["val_no_action_abstained"] <= 1
