"""ONNX and torch.export of the model: dynamic batch, numerical equality with eager PyTorch.

Exports are made once per preset (module-scoped fixture) and every check reuses them. Weights are random
but the BatchNorm running statistics are randomised too, so an exporter that ignored eval mode, dropped a
temporal shift or mixed the batch and time axes would show up as a mismatch.
"""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch

from core.export import ExportWrapper, example_inputs, export_onnx, export_program, input_names
from core.model import build_model

PRESETS = ("table14", "released_kinetics50", "fast")


def _randomise_bn(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model.eval()


@pytest.fixture(scope="module", params=PRESETS)
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    model = _randomise_bn(build_model(request.param), seed=1)
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx", dynamic_batch=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return request.param, model, session


def _eager(model, inputs):
    with torch.no_grad():
        return [t.numpy() for t in ExportWrapper(model)(*inputs)]


@pytest.mark.parametrize("batch", [1, 2])
def test_onnx_matches_eager_dynamic_batch(exported, batch):
    preset, model, session = exported
    assert [i.name for i in session.get_inputs()] == input_names(model)
    inputs = example_inputs(model, batch=batch, seed=10 + batch)
    ref = _eager(model, inputs)
    out = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})
    for name, a, b in zip(("probs", "logits", "gate_mean"), out, ref):
        assert a.shape == b.shape, (preset, name)
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0, err_msg=f"{preset} {name} batch {batch}")
    assert ref[0].shape == (batch, model.config.num_classes)
    assert np.all((ref[2] > 0) & (ref[2] < 1))  # integral variant: a real gate
    if batch == 2:  # the two clips really differ, so batch 2 is not batch 1 repeated
        assert not np.allclose(out[0][0], out[0][1])


def test_torch_export_matches_eager(exported):
    preset, model, _ = exported
    program = export_program(model, dynamic_batch=True)
    for batch in (1, 3):
        inputs = example_inputs(model, batch=batch, seed=20 + batch)
        with torch.no_grad():
            got = [t.numpy() for t in program.module()(*inputs)]
        for a, b in zip(got, _eager(model, inputs)):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=0, err_msg=f"{preset} torch.export batch {batch}")


def test_table13_torch_export_shapes():
    """ResNet-50 appearance + 32-frame pose stream: the largest preset exports with a dynamic batch."""
    model = build_model("table13").eval()
    program = export_program(model, dynamic_batch=True)
    rgb, pose = example_inputs(model, batch=1)
    assert pose.shape[1] == 32 and rgb.shape[1] == 8
    with torch.no_grad():
        probs, logits, gate = program.module()(rgb, pose)
    assert probs.shape == logits.shape == (1, 400) and gate.shape == (1,)
    assert torch.allclose(probs.sum(1), torch.ones(1), atol=1e-5)
    assert 0 < float(gate) < 1


def test_gateless_variant_exports_nan_gate(tmp_path):
    model = build_model("fast", variant="feature_fuse").eval()
    path = export_onnx(model, tmp_path / "ff.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(model, batch=2)
    probs, _, gate = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})
    assert gate.shape == (2,) and all(math.isnan(g) for g in gate)
    np.testing.assert_allclose(probs, _eager(model, inputs)[0], atol=1e-4)


def test_single_stream_variant_takes_one_input(tmp_path):
    model = build_model("fast", variant="pose").eval()
    assert input_names(model) == ["pose"]
    path = export_onnx(model, tmp_path / "pose.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pose"]
    (pose,) = example_inputs(model, batch=1)
    np.testing.assert_allclose(session.run(None, {"pose": pose.numpy()})[0], _eager(model, (pose,))[0], atol=1e-4)
    with pytest.raises(TypeError, match="expected 1 input"):
        ExportWrapper(model)(pose, pose)
