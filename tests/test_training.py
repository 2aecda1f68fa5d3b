"""Training loop: exact resume, frozen stage 2, feature-bank equivalence, CLI errors (tiny random data)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from core.checkpoint import load_checkpoint, save_checkpoint
from core.model import build_model
from train.loop import TrainConfig, TrainingError, fit, predict
from train.stage2 import FeatureBank, assemble, compute_features

REPO = Path(__file__).resolve().parents[1]
NAMES = ["a", "b", "c"]
TINY = dict(frames=2, tau=4, pose_frames=2, pose_tau=4, rgb_size=32, map_size=8, short_side=36,
            appearance_width=8, pose_width=8, feature_dim=16)


class RandomClips(Dataset):
    """Fixed random clips plus per-item noise from the *global* torch RNG (like in-process augmentation),
    so resuming must restore RNG state to reproduce an uninterrupted run."""

    def __init__(self, n: int = 6, seed: int = 0, channels: int = 17 + 2 * 19, noise: bool = True) -> None:
        g = torch.Generator().manual_seed(seed)
        self.rgb = torch.rand(n, 2, 3, 32, 32, generator=g)
        self.pose = torch.rand(n, 2, channels, 8, 8, generator=g)
        self.labels = [i % 3 for i in range(n)]
        self.noise = noise

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        jitter = 0.05 * torch.randn(()) if self.noise else 0.0
        return {"rgb": (self.rgb[i] + jitter).clamp(0, 1), "pose": self.pose[i] + jitter, "label": self.labels[i]}


def tiny_model(variant: str = "integral", seed: int = 0, **kw):
    torch.manual_seed(seed)
    return build_model("fast", class_names=NAMES, variant=variant, **TINY, **kw)


def _cfg(**kw) -> TrainConfig:
    base = dict(epochs=2, lr=0.05, milestones=(1,), batch_size=4, workers=0, seed=3, amp=False, val_every=1)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_equals_uninterrupted_run(tmp_path):
    data, val = RandomClips(6), RandomClips(3, seed=1, noise=False)
    straight = tiny_model()
    fit(straight, data, val, _cfg(epochs=2), tmp_path / "straight", class_names=NAMES, quiet=True)

    interrupted = tiny_model()
    fit(interrupted, data, val, _cfg(epochs=1), tmp_path / "resumed", class_names=NAMES, quiet=True)
    # "kill": a brand new process state, different global RNG, fresh model; only the files survive
    torch.manual_seed(12345)
    np.random.seed(999)
    resumed = tiny_model(seed=77)
    result = fit(resumed, data, val, _cfg(epochs=2), tmp_path / "resumed", class_names=NAMES, resume=True, quiet=True)
    assert result.resumed_from_epoch == 1

    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # and the checkpoint on disk holds the final weights, loadable with weights_only=True
    reloaded = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    for key, value in reloaded.state_dict().items():
        assert torch.equal(value, a[key]), key
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    assert list((tmp_path / "straight" / "tb").iterdir()), "TensorBoard events missing"
    torch.load(tmp_path / "resumed" / "resume.pt", weights_only=True)


def test_resume_refuses_changed_settings(tmp_path):
    data = RandomClips(4)
    fit(tiny_model(), data, None, _cfg(epochs=1), tmp_path, class_names=NAMES, quiet=True)
    with pytest.raises(TrainingError, match="lr"):
        fit(tiny_model(), data, None, _cfg(epochs=2, lr=0.5), tmp_path, class_names=NAMES, resume=True, quiet=True)


def _stage1_pair(tmp_path: Path) -> tuple[Path, Path]:
    paths = []
    for stream in ("appearance", "pose"):
        model = tiny_model(stream, seed=1 if stream == "pose" else 0)
        with torch.no_grad():  # non-trivial BN statistics, so a BN update would be visible
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.1, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        paths.append(save_checkpoint(tmp_path / f"{stream}.pt", model))
    return paths[0], paths[1]


def test_frozen_stage2_trains_only_integration(tmp_path):
    app, pose = _stage1_pair(tmp_path)
    model = assemble(app, pose, "integral", gate_lambda=1.5)
    a_state = torch.load(app, weights_only=True)["state_dict"]
    for key, value in model.state_dict().items():
        if key.startswith("appearance."):
            assert torch.equal(value, a_state[key]), key
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = _cfg(epochs=1, gate_lambda=1.5, frozen_streams=True, lr=0.1)
    fit(model, RandomClips(4), None, cfg, tmp_path / "s2", class_names=NAMES, quiet=True)
    for module in model.stream_modules():
        assert all(not p.requires_grad for p in module.parameters())
    after = model.state_dict()
    integration = {f"{name}." for name in ("fusion", "head")}
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed, "nothing trained"
    assert all(k.startswith(tuple(integration)) for k in changed), sorted(changed)[:5]  # BN stats included
    assert any(k.startswith("fusion.gate.") for k in changed)

    # the gate loss alone reaches only the integration parameters
    model.zero_grad(set_to_none=True)
    from core.model import gate_loss

    batch = RandomClips(2)
    out = model(torch.stack([batch[i]["rgb"] for i in range(2)]), torch.stack([batch[i]["pose"] for i in range(2)]))
    gate_loss(out.gate).backward()
    for name, p in model.named_parameters():
        if name.startswith(("appearance.", "pose.")):
            assert p.grad is None, name
    assert model.fusion.gate.fc.weight.grad is not None and model.fusion.gate.fc.weight.grad.abs().sum() > 0


def test_released_stream_bn_mode_updates_running_stats(tmp_path):
    app, pose = _stage1_pair(tmp_path)
    model = assemble(app, pose, "integral")
    before = {k: v.clone() for k, v in model.pose.backbone.state_dict().items()}
    cfg = _cfg(epochs=1, frozen_streams=True, stream_bn="train")
    fit(model, RandomClips(4), None, cfg, tmp_path / "s2", class_names=NAMES, quiet=True)
    after = model.pose.backbone.state_dict()
    stats = [k for k in after if k.endswith("running_mean")]
    assert any(not torch.equal(before[k], after[k]) for k in stats)
    weights = [k for k in after if k.endswith("weight")]
    assert all(torch.equal(before[k], after[k]) for k in weights)


def test_score_average_uses_stage1_classifiers(tmp_path):
    app, pose = _stage1_pair(tmp_path)
    model = assemble(app, pose, "score_average").eval()
    a, p = load_checkpoint(app), load_checkpoint(pose)
    data = RandomClips(3, noise=False)
    rgb = torch.stack([data[i]["rgb"] for i in range(3)])
    maps = torch.stack([data[i]["pose"] for i in range(3)])
    with torch.no_grad():
        expected = 0.5 * a(rgb, None).probs + 0.5 * p(None, maps).probs
        assert torch.allclose(model(rgb, maps).probs, expected, atol=1e-6)


def test_feature_bank_training_matches_full_forward(tmp_path):
    """Frozen eval-mode streams: training on pre-computed features == training through the streams."""
    app, pose = _stage1_pair(tmp_path)

    class Seeded(RandomClips):  # augmentation from (epoch, index), like ClipDataset
        epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(1000 * self.epoch + i)
            j = 0.05 * torch.randn((), generator=g)
            return {"rgb": (self.rgb[i] + j).clamp(0, 1), "pose": self.pose[i] + j, "label": self.labels[i]}

    data = Seeded(6)
    cfg = _cfg(epochs=2, gate_lambda=1.5, frozen_streams=True)
    torch.manual_seed(5)
    full = assemble(app, pose, "integral")
    fit(full, data, None, cfg, tmp_path / "full", class_names=NAMES, quiet=True)

    torch.manual_seed(5)
    banked = assemble(app, pose, "integral")
    fa, fp, labels = compute_features(banked, data, views=2)
    fit(banked, FeatureBank(fa, fp, labels), None, cfg, tmp_path / "bank", class_names=NAMES, quiet=True)
    for (k, v), w in zip(full.state_dict().items(), banked.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-5), k
    # evaluation through the bank matches evaluation through the streams
    test = RandomClips(3, seed=2, noise=False)
    from torch.utils.data import DataLoader
    from train.loop import collate

    p_full = predict(full, DataLoader(test, batch_size=2, collate_fn=collate), torch.device("cpu"))
    fa, fp, labels = compute_features(full, test)
    p_bank = predict(full, DataLoader(FeatureBank(fa, fp, labels), batch_size=2, collate_fn=collate),
                     torch.device("cpu"))
    np.testing.assert_allclose(p_full.probs, p_bank.probs, atol=1e-5)
    np.testing.assert_allclose(p_full.gate, p_bank.gate, atol=1e-5)


def test_predict_averages_probabilities_over_clips():
    model = tiny_model().eval()
    data = RandomClips(2, noise=False)

    class Stacked(Dataset):  # test mode: (n_clips, ...) stacks
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return {"rgb": torch.stack([data[0]["rgb"], data[1]["rgb"]]),
                    "pose": torch.stack([data[0]["pose"], data[1]["pose"]]), "label": 0}

    from torch.utils.data import DataLoader
    from train.loop import collate

    pred = predict(model, DataLoader(Stacked(), collate_fn=collate), torch.device("cpu"))
    with torch.no_grad():
        out = model(torch.stack([data[0]["rgb"], data[1]["rgb"]]), torch.stack([data[0]["pose"], data[1]["pose"]]))
    np.testing.assert_allclose(pred.probs[0], out.probs.mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(pred.gate[0], out.gate.mean().item(), atol=1e-6)


def test_stage_cli_bad_input_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.stage1", "--stream", "pose", "--index",
                           str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("python -m train.stage1: error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "clip index not found" in proc.stderr and "missing.jsonl" in proc.stderr   # not "classes.txt"
    (tmp_path / "file").write_text("x")      # --out naming a file: refused at parse time, not a tensorboard trace
    proc = subprocess.run([sys.executable, "-m", "train.stage1", "--stream", "pose", "--index",
                           str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "file")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "exists and is not a folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "train.stage2", "--appearance-checkpoint", str(tmp_path / "nope.pt"),
                           "--pose-checkpoint", str(tmp_path / "nope.pt"), "--index", str(tmp_path / "missing.jsonl"),
                           "--out", str(tmp_path / "o")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.timeout(600)  # ~1 min CPU (54 s user measured); generous for shared runners
def test_smoke_experiment_rows(tmp_path):
    """CI: the whole Table 4/6/7 pipeline on the `smoke` synthetic benchmark (structure only, not the pattern)."""
    proc = subprocess.run([sys.executable, "-m", "train.experiment", "--preset", "smoke", "--data",
                           str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--seed", "0", "--quiet",
                           "--stage2-seeds", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads((tmp_path / "run" / "results.json").read_text())
    methods = [r["method"] for r in rows]
    # Table 4 (7 rows) + lambda 5 + 2 gate drivers, then 4 context-swap rows (2 at lambda 1.5, lambda 0 and 5)
    assert len(rows) == 14 and len(set(methods)) == 14
    assert {"appearance-only model", "pose-only model", "feature fuse", "score average"} <= set(methods)
    paper = [r for r in rows if not r.get("context_swap")]
    assert sorted(r["lambda"] for r in paper if r["gate_driver"] == "pose") == [0.0, 1.5, 5.0]
    assert {r["gate_driver"] for r in paper if r["lambda"] == 1.5} == {"pose", "appearance", "both"}
    assert sorted(r["context_swap"] for r in rows if r.get("context_swap")) == [0.25, 0.5, 0.5, 0.5]
    for row in rows:
        keys = {"method", "lambda", "gate_driver", "in_context", "out_of_context", "mean_gate"}
        if row["method"] not in ("appearance-only model", "pose-only model"):     # stage-2 rows
            keys |= {"context_swap"}
        if row.get("lambda") == 1.5 and row["gate_driver"] == "pose":   # the default checkpoint's candidates
            keys |= {"val"}
            assert set(row["val"]) == {"in_context", "out_of_context", "swapped"}
        if row["gate_driver"] == "pose" and row["lambda"] in (1.5, 5.0) and row["context_swap"] in (0.0, 0.25, 0.5) \
                and not (row["lambda"] == 5.0 and row["context_swap"]):   # --stage2-seeds 2: the spread rows
            keys |= {"seed_spread"}
            spread = row["seed_spread"]
            assert spread["seeds"] == [0, 1] and [r["seed"] for r in spread["runs"]] == [0, 1]
            assert spread["runs"][0]["out_of_context"] == row["out_of_context"]["top1"]
            assert set(spread["runs"][0]["vs_pose_out_of_context"]) == {"reference_only", "row_only", "p_value"}
            for split in ("in_context", "out_of_context"):   # the first seed is the row itself
                assert spread[split]["min"] <= row[split]["top1"] <= spread[split]["max"]
                assert spread[split]["min"] <= spread[split]["mean"] <= spread[split]["max"]
        assert set(row) == keys, row
        gated = row["gate_driver"] is not None
        assert (row["mean_gate"] is not None) == gated, row
        if gated:
            assert all(0.0 <= row["mean_gate"][s] <= 1.0 for s in ("in_context", "out_of_context"))
        for split in ("in_context", "out_of_context"):
            for k in ("top1", "top5"):
                value = row[split][k]
                assert isinstance(value, (int, float)) and 0.0 <= value <= 100.0
            assert row[split]["top5"] >= row[split]["top1"]
    report = (tmp_path / "run" / "results.md").read_text()
    assert "| IntegralAction (ours) | 1.5 | pose |" in report and "(chosen)" in report
    assert load_checkpoint(tmp_path / "run" / "stage2_integral_l1.5" / "checkpoint.pt").config.variant == "integral"
    # the second stage-2 seed is a separate run from another initialisation, on the same streams
    first = load_checkpoint(tmp_path / "run" / "stage2_integral_l1.5" / "checkpoint.pt").state_dict()
    second = load_checkpoint(tmp_path / "run" / "stage2_integral_l1.5_seed1" / "checkpoint.pt").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first if ".stream" in k or k.startswith(("appearance", "pose")))
    assert any(not torch.equal(first[k], second[k]) for k in first if "gate" in k)
    assert "Stage-2 seed spread" in report and "--stage2-seeds 2" in report


@pytest.mark.timeout(600)
def test_pose_warm_restart_starts_from_the_first_runs_weights(tmp_path, monkeypatch):
    """A preset's `pose_restart` continues the pose stream from the first run's weights (a 0-epoch restart
    must reproduce them exactly; a fresh initialisation would not)."""
    from dataclasses import replace

    import train.experiment as X

    monkeypatch.setitem(X.PRESETS, "smoke_restart", replace(X.PRESETS["smoke"], pose_restart=(0, 1e-2, ())))
    out = tmp_path / "run"
    assert X.main(["--preset", "smoke_restart", "--data", str(tmp_path / "data"), "--out", str(out),
                   "--seed", "0", "--only-stage1", "pose", "--quiet"]) == 0
    first = load_checkpoint(out / "stage1_pose" / "checkpoint.pt").state_dict()
    restart = load_checkpoint(out / "stage1_pose_restart" / "checkpoint.pt").state_dict()
    fresh = X.build_model("fast", class_names=X.class_names_for(tmp_path / "data" / "train.jsonl"), variant="pose",
                          **X.PRESETS["smoke"].model_overrides).state_dict()
    assert first.keys() == restart.keys()
    assert all(torch.equal(first[k], restart[k]) for k in first)
    assert any(not torch.equal(first[k], fresh[k]) for k in first if first[k].is_floating_point())
    # --pose-first-run: the restart starts from a first run trained elsewhere, and no first run is trained here
    other = tmp_path / "other"
    assert X.main(["--preset", "smoke_restart", "--data", str(tmp_path / "data"), "--out", str(other), "--seed", "0",
                   "--only-stage1", "pose", "--quiet", "--pose-first-run", str(out / "stage1_pose" / "checkpoint.pt")]) == 0
    assert not (other / "stage1_pose").exists()
    again = load_checkpoint(other / "stage1_pose_restart" / "checkpoint.pt").state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    # the whole run then records where its pose stream started, in the report and beside the default checkpoint
    first_run = out / "stage1_pose" / "checkpoint.pt"
    assert X.main(["--preset", "smoke_restart", "--data", str(tmp_path / "data"), "--out", str(other), "--seed", "0",
                   "--quiet", "--pose-first-run", str(first_run), "--default-checkpoint", str(tmp_path / "d.pt")]) == 0
    meta = json.loads((tmp_path / "d.json").read_text())
    assert meta["pose_first_run"]["checkpoint"] == str(first_run)
    assert "--only-stage1 pose" not in meta["training_command"] and "--preset smoke_restart" in meta["pose_first_run"]["command"]
    assert f"--pose-first-run {first_run}" in meta["training_command"]
    assert f"pose `{first_run}` (trained elsewhere)" in (other / "results.md").read_text()
    # ... and needs a preset with a restart and an existing file
    assert X.main(["--preset", "smoke", "--data", str(tmp_path / "data"), "--out", str(other), "--quiet",
                   "--pose-first-run", str(out / "stage1_pose" / "checkpoint.pt")]) == 2
    assert X.main(["--preset", "smoke_restart", "--data", str(tmp_path / "data"), "--out", str(other), "--quiet",
                   "--pose-first-run", str(tmp_path / "nope.pt")]) == 2


def test_paired_comparison_counts_videos_and_gives_the_exact_mcnemar_p():
    """`paired_vs` compares two models video by video on the same test videos (the stage-2 seed spread's
    IntegralAction vs pose-only column)."""
    from train.experiment import paired_vs
    from train.loop import Predictions

    labels = np.arange(10) % 3
    eye = np.eye(3, dtype=np.float32)
    ref = Predictions(eye[labels], labels, None, None)           # the reference gets all 10 right
    wrong = labels.copy()
    wrong[:5] = (labels[:5] + 1) % 3                             # the row misses the first 5
    row = Predictions(eye[wrong], labels, None, None)
    assert paired_vs(row, ref) == {"reference_only": 5, "row_only": 0, "p_value": 0.0625}   # 2 * 0.5 ** 5
    assert paired_vs(ref, row) == {"reference_only": 0, "row_only": 5, "p_value": 0.0625}
    assert paired_vs(ref, ref)["p_value"] == 1.0
    mixed = wrong.copy()
    mixed[5] = (labels[5] + 1) % 3                               # 6 vs 0 discordant ...
    ref2 = Predictions(eye[np.where(np.arange(10) == 9, (labels + 1) % 3, labels)], labels, None, None)
    # ... row misses 0-5, ref2 misses 9: b = 6, c = 1 -> p = 2 * (1 + 7) / 128
    assert paired_vs(Predictions(eye[mixed], labels, None, None), ref2) == {"reference_only": 6, "row_only": 1,
                                                                             "p_value": 0.125}
    with pytest.raises(ValueError):
        paired_vs(row, Predictions(eye[labels[::-1]], labels[::-1], None, None))


def test_experiment_refuses_a_benchmark_made_before_val_out(tmp_path, capsys):
    """An older benchmark folder (no val_out split) gets a one-line error, and is not regenerated in place
    with the preset's flags (which could overwrite a benchmark made with other flags)."""
    import train.experiment as X

    data = tmp_path / "old"
    data.mkdir()
    for split in ("train", "val", "test_in", "test_out"):
        (data / f"{split}.jsonl").write_text("")
    assert X.main(["--preset", "smoke", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no val_out.jsonl" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in data.iterdir()) == ["test_in.jsonl", "test_out.jsonl", "train.jsonl", "val.jsonl"]

