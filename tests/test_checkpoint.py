"""The project checkpoint format: round trip, weights_only safety, one-line errors."""
from __future__ import annotations

import pickle

import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from core.model import build_model

torch.set_num_threads(2)


def _model():
    return build_model("fast", class_names=[f"c{i}" for i in range(4)], appearance_width=16, pose_width=16,
                       feature_dim=32).eval()


def test_round_trip_same_outputs_and_metadata(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "m.pt", model, extra={"trained_by": "test"})
    payload = torch.load(path, weights_only=True)  # plain data only
    assert payload["config"]["skeleton"] == "coco17" and payload["class_names"][0] == "c0"
    assert payload["preprocess"]["spatial"] == {"short_side": 128, "center_crop": 112, "pose_map_size": 28}
    loaded = load_checkpoint(path)
    assert loaded.config == model.config and loaded.class_names == model.class_names
    assert loaded.checkpoint_extra == {"trained_by": "test"} and not loaded.training
    c = model.config
    rgb = torch.rand(2, c.frames, 3, c.rgb_size, c.rgb_size)
    pose = torch.rand(2, c.pose_frames, c.num_pose_channels, c.map_size, c.map_size)
    with torch.no_grad():
        assert torch.equal(model(rgb, pose).probs, loaded(rgb, pose).probs)


def test_errors_are_one_line(tmp_path):
    cases = {}
    cases["missing"] = tmp_path / "nope.pt"
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.pt"
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 10)
    cases["garbage"] = tmp_path / "garbage.pt"
    torch.save({"network": {"module.x": torch.zeros(1)}}, tmp_path / "release.pth")
    cases["release"] = tmp_path / "release.pth"
    with open(tmp_path / "evil.pt", "wb") as handle:  # arbitrary objects must never be unpickled
        pickle.dump({"format": "integralaction-live/1", "x": object()}, handle)
    cases["evil"] = tmp_path / "evil.pt"
    messages = {}
    for name, path in cases.items():
        with pytest.raises(CheckpointError) as info:
            read_checkpoint(path)
        messages[name] = str(info.value)
        assert "\n" not in messages[name] and str(path) in messages[name]
    assert "not found" in messages["missing"] and "empty" in messages["empty"]
    assert "import_official" in messages["release"]
    assert "weights_only" in messages["evil"]
    assert "not a PyTorch checkpoint" in messages["garbage"]     # not "KeyError(101)" or a miniz internal


def test_incompatible_weights_are_reported(tmp_path):
    model = _model()
    path = save_checkpoint(tmp_path / "m.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["head.weight"] = torch.zeros(3, 3)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="incompatible checkpoint"):
        load_checkpoint(path)
    payload["config"]["variant"] = "bogus"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="variant"):
        load_checkpoint(path)


def test_class_name_count_must_match(tmp_path):
    with pytest.raises(CheckpointError, match="class names"):
        save_checkpoint(tmp_path / "m.pt", _model(), class_names=["a"])
