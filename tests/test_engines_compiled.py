"""Compiled engines: ONNX Runtime (fp32 equality with the torch engine, on-disk cache, int8), the TensorRT
cache logic up to the compile call, and clear unavailability of the GPU engines on CPU machines."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import save_checkpoint
from core.export import input_shapes, model_digest
from core.model import build_model
from realtime.engines import EngineError, EngineUnavailable, create_engine
from realtime.engines import onnxruntime_cpu, tensorrt


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("fast", class_names=[f"c{i}" for i in range(10)]).eval()
    # a head with real spread, so that top-1 is a meaningful thing to compare across precisions
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fast.pt", model)


@pytest.fixture(scope="module")
def model(checkpoint):
    from core.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("engines")


def _inputs(config, seed):
    rng = np.random.default_rng(seed)
    rgb = rng.random((1, config.frames, 3, config.rgb_size, config.rgb_size), dtype=np.float32)
    pose = (rng.random((1, config.pose_frames, config.num_pose_channels, config.map_size, config.map_size),
                       dtype=np.float32) > 0.9).astype(np.float32)  # sparse, like rendered maps
    return rgb, pose


def _args(cache, **kw):
    return argparse.Namespace(threads=1, engine_cache=str(cache), **kw)


def test_onnxruntime_fp32_equals_torch_and_reuses_cache(model, checkpoint, cache):
    before = dict(onnxruntime_cpu.STATS)
    engine = create_engine("onnxruntime", model, checkpoint, _args(cache, precision="fp32"))
    torch_engine = create_engine("torch", model, checkpoint, _args(cache))
    for seed in range(3):
        rgb, pose = _inputs(model.config, seed)
        got, ref = engine(rgb, pose), torch_engine(rgb, pose)
        assert got.probs.shape == ref.probs.shape == (10,)
        np.testing.assert_allclose(got.probs, ref.probs, atol=1e-4, rtol=0)
        assert abs(got.gate - ref.gate) < 1e-4
    assert onnxruntime_cpu.STATS["exports"] == before["exports"] + 1
    path = engine.path
    assert path.parent == cache and path.name.startswith(model_digest(model, checkpoint))
    mtime = path.stat().st_mtime_ns
    again = create_engine("onnxruntime", model, checkpoint, _args(cache, precision="fp32"))
    assert again.path == path and path.stat().st_mtime_ns == mtime
    assert onnxruntime_cpu.STATS["exports"] == before["exports"] + 1  # no second export
    np.testing.assert_array_equal(again(*_inputs(model.config, 0)).probs, engine(*_inputs(model.config, 0)).probs)


def test_new_weights_get_a_new_cache_entry(model, cache, tmp_path):
    other = build_model("fast", class_names=model.class_names).eval()
    ckpt = save_checkpoint(tmp_path / "other.pt", other)
    assert onnxruntime_cpu.onnx_cache_path(other, ckpt, cache) != onnxruntime_cpu.onnx_cache_path(model, None, cache)


def test_onnxruntime_int8_agrees_with_fp32(model, checkpoint, cache, tmp_path):
    from realtime.engines.quantize import save_clips

    calib = save_clips(tmp_path / "calib.npz", [_inputs(model.config, 100 + i) for i in range(4)])
    int8 = create_engine("onnxruntime", model, checkpoint, _args(cache, precision="int8", calibration=str(calib)))
    fp32 = create_engine("onnxruntime", model, checkpoint, _args(cache, precision="fp32"))
    assert "int8" in int8.path.name and int8.path != fp32.path
    agree = 0
    for seed in range(6):
        a, b = fp32(*_inputs(model.config, seed)), int8(*_inputs(model.config, seed))
        assert abs(b.probs.sum() - 1) < 1e-3 and 0 <= b.gate <= 1
        agree += int(a.probs.argmax() == b.probs.argmax())
        assert np.abs(a.probs - b.probs).max() < 0.15
    assert agree >= 5  # tolerance: at most one flip in six inputs drawn like the calibration set


def test_int8_without_calibration_is_a_clear_error(model, cache):
    with pytest.raises(EngineError, match="--calibration"):
        create_engine("onnxruntime", model, None, _args(cache, precision="int8"))


def test_tensorrt_cache_key():
    shapes = [(1, 8, 3, 224, 224), (1, 8, 52, 56, 56)]
    key = tensorrt.cache_key("a" * 64, shapes, "trt10.3", "fp16")
    assert key == tensorrt.cache_key("a" * 64, [tuple(s) for s in shapes], "trt10.3", "fp16")
    others = {tensorrt.cache_key("b" * 64, shapes, "trt10.3", "fp16"),
              tensorrt.cache_key("a" * 64, [(1, 8, 3, 112, 112), shapes[1]], "trt10.3", "fp16"),
              tensorrt.cache_key("a" * 64, shapes, "trt10.4", "fp16"),
              tensorrt.cache_key("a" * 64, shapes, "trt10.3", "fp32")}
    assert key not in others and len(others) == 4


def test_tensorrt_compiles_the_exported_program_once(model, checkpoint, tmp_path):
    """The real export + cache path with a CPU stand-in for `torch_tensorrt.compile` (the exported program
    itself) and torch.export's own save/load: a second creation loads the file and never compiles."""
    compiled_programs = []

    def fake_compile(program, shapes, precision):
        compiled_programs.append((program, shapes, precision))
        return program

    backend = tensorrt.Backend(version="fake-trt-1", compile=fake_compile,
                               save=lambda program, path, inputs: torch.export.save(program, str(path)),
                               load=lambda path: torch.export.load(str(path)).module())
    module, path, hit = tensorrt.compiled_module(model, checkpoint, tmp_path, backend, "fp16", device="cpu")
    assert not hit and path.is_file() and len(compiled_programs) == 1
    program, shapes, precision = compiled_programs[0]
    assert isinstance(program, torch.export.ExportedProgram) and shapes == input_shapes(model) and precision == "fp16"
    rgb, pose = _inputs(model.config, 0)
    ref = create_engine("torch", model, None, argparse.Namespace(threads=1))(rgb, pose)
    with torch.no_grad():  # the program handed to the compiler is exactly the model
        probs, _, gate = program.module()(torch.from_numpy(rgb), torch.from_numpy(pose))
    np.testing.assert_allclose(probs[0].numpy(), ref.probs, atol=1e-5)
    mtime = path.stat().st_mtime_ns
    module2, path2, hit2 = tensorrt.compiled_module(model, checkpoint, tmp_path, backend, "fp16", device="cpu")
    assert hit2 and path2 == path and len(compiled_programs) == 1 and path.stat().st_mtime_ns == mtime
    engine = tensorrt.TensorRTEngine(module2, ["rgb", "pose"], "fp16", path2, device="cpu")
    np.testing.assert_allclose(engine(rgb, pose).probs, ref.probs, atol=1e-5)
    # another TensorRT version must not reuse that file
    newer = tensorrt.Backend("fake-trt-2", fake_compile, backend.save, backend.load)
    _, path3, hit3 = tensorrt.compiled_module(model, checkpoint, tmp_path, newer, "fp16", device="cpu")
    assert not hit3 and path3 != path and len(compiled_programs) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the GPU engines may be available")
@pytest.mark.parametrize("name", ["tensorrt", "cuda"])
def test_gpu_engines_unavailable_on_cpu(model, cache, name):
    with pytest.raises(EngineUnavailable) as info:
        create_engine(name, model, None, _args(cache))
    message = str(info.value)
    assert "\n" not in message and name in message and ("GPU" in message or "not installed" in message)
