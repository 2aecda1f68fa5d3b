"""Engine registry and the PyTorch CPU engine (random-weight model, fast preset)."""
from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch

from core.model import build_model
from realtime.engines import EngineError, EngineUnavailable, create_engine, engine_names


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("fast", class_names=[f"c{i}" for i in range(10)]).eval()


def _inputs(config, seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.random((1, config.frames, 3, config.rgb_size, config.rgb_size), dtype=np.float32)
    pose = rng.random((1, config.pose_frames, config.num_pose_channels, config.map_size, config.map_size),
                      dtype=np.float32)
    return rgb, pose


def test_torch_engine_matches_model(model):
    engine = create_engine("torch", model, None, argparse.Namespace(threads=1))
    rgb, pose = _inputs(model.config)
    result = engine(rgb, pose)
    with torch.inference_mode():
        ref = model(torch.from_numpy(rgb), torch.from_numpy(pose))
    assert result.probs.shape == (10,)
    np.testing.assert_allclose(result.probs, ref.probs[0].numpy(), rtol=1e-5, atol=1e-7)
    assert abs(result.probs.sum() - 1) < 1e-5
    assert 0.0 <= result.gate <= 1.0 and math.isclose(result.gate, float(ref.gate.mean()), rel_tol=1e-5)
    # different inputs give different outputs (the engine really runs the network)
    other = engine(*_inputs(model.config, seed=1))
    assert not np.allclose(other.probs, result.probs)
    engine.close()


def test_gateless_variant_reports_nan_gate():
    model = build_model("fast", variant="feature_fuse").eval()
    result = create_engine("torch", model, None, argparse.Namespace(threads=1))(*_inputs(model.config))
    assert math.isnan(result.gate)


def test_registry_errors_and_auto(model):
    with pytest.raises(EngineError, match="unknown engine 'nope'"):
        create_engine("nope", model, None, argparse.Namespace())
    if not torch.cuda.is_available():
        for name in ("tensorrt", "cuda"):
            with pytest.raises(EngineUnavailable):
                create_engine(name, model, None, argparse.Namespace(threads=1))
    auto = create_engine("auto", model, None, argparse.Namespace(threads=1))
    assert auto.name in engine_names()
