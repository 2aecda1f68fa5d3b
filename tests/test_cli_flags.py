"""Issue 9 item 4: the command lines share one flag scheme (docs/cli.md): deprecated aliases that warn and
still work, ``--config FILE`` (TOML) under command-line flags, ``--log-level``, ``--version``, ``--device`` /
``--pose-device``, camera flags, and a help text that states each default once."""
from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, ia_live_cmd, ia_live_env
from core.cliflags import CliError, HelpFormatter, package_version, parse_args
from realtime.camera import CameraSettings, CameraSettingsError


def _ia_live_parser() -> argparse.ArgumentParser:
    from realtime.cli import build_parser

    return build_parser()


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every entry point's parser, by its program name."""
    from realtime.subscribe import build_parser as ia_sub
    from tools.extract_poses import build_parser as extract_poses
    from tools.synth.__main__ import build_parser as synth
    from train.evaluate import build_parser as evaluate
    from train.experiment import build_parser as experiment
    from train.stage1 import build_parser as stage1
    from train.stage2 import build_parser as stage2

    parsers = [_ia_live_parser(), ia_sub(), stage1(), stage2(), evaluate(), experiment(), synth(),
               extract_poses(["--videos", "x", "--out", "y"])]
    return {p.prog: p for p in parsers}


# -- one scheme everywhere -------------------------------------------------------------------------------------


def test_every_entry_point_has_the_general_flags_and_one_formatter() -> None:
    for prog, parser in _parsers().items():
        flags = parser._option_string_actions
        assert {"--config", "--log-level", "--version"} <= set(flags), prog
        assert parser.formatter_class is HelpFormatter, prog


def test_help_states_each_default_once() -> None:
    for prog, parser in _parsers().items():
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                continue
            text = formatter._expand_help(action)
            assert text.lower().count("(default") + text.lower().count(", default") <= 1, (prog, text)
        assert not re.search(r"\(default: [^)]*\)\s*\(default:", parser.format_help()), prog


@pytest.mark.parametrize("argv, dest, value, old", [
    (["--topk", "3"], "topk", 3, "--topk"),
    (["--pose", "file"], "pose", "file", "--pose"),
])
def test_ia_live_aliases_warn_and_work(argv, dest, value, old, capsys) -> None:
    args = parse_args(_ia_live_parser(), argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert f"{old} is deprecated" in err and len(err.strip().splitlines()) == 1


def test_new_names_do_not_warn(capsys) -> None:
    args = parse_args(_ia_live_parser(), ["--top-k", "3", "--pose-backend", "file"])
    assert (args.topk, args.pose) == (3, "file")
    assert "deprecated" not in capsys.readouterr().err


def test_other_tools_aliases(capsys) -> None:
    from realtime.subscribe import build_parser as ia_sub
    from tools.extract_poses import build_parser as extract_poses
    from train.stage2 import build_parser as stage2

    args = parse_args(ia_sub(), ["--connect", "tcp://127.0.0.1:7000", "--json", "--top", "2"])
    assert (args.connect, args.json, args.top) == ("tcp://127.0.0.1:7000", True, 2)
    args = parse_args(ia_sub(), ["--zmq", "tcp://127.0.0.1:7001", "--dump-json", "--top-k", "4"])
    assert (args.connect, args.json, args.top) == ("tcp://127.0.0.1:7001", True, 4)
    args = parse_args(stage2(), ["--appearance", "a.pt", "--pose", "p.pt", "--index", "i.jsonl", "--out", "o"])
    assert (args.appearance, args.pose) == (Path("a.pt"), Path("p.pt"))
    argv = ["--videos", "v", "--out", "o", "--backend", "file"]
    assert parse_args(extract_poses(argv), argv).backend == "file"
    err = capsys.readouterr().err
    for old in ("--connect", "--json", "--top", "--appearance", "--pose", "--backend"):
        assert f"{old} is deprecated" in err, old


# -- --config -------------------------------------------------------------------------------------------------


def test_config_file_values_and_command_line_precedence(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text('top_k = 2\n"pose-workers" = 3\nno-zmq = true\ndump-json = "out.jsonl"\n')
    args = parse_args(_ia_live_parser(), ["--config", str(config), "--top-k", "4"])
    assert args.topk == 4               # the command line wins
    assert args.pose_workers == 3 and args.no_zmq is True and args.dump_json == "out.jsonl"


def test_config_fills_required_flags(tmp_path: Path) -> None:
    from train.stage1 import build_parser

    config = tmp_path / "stage1.toml"
    config.write_text('stream = "pose"\nindex = "data/train.jsonl"\nout = "runs/x"\nepochs = 2\nmilestones = [1]\n')
    args = parse_args(build_parser(), ["--config", str(config)])
    assert (args.stream, args.index, args.out, args.epochs, args.milestones) == \
        ("pose", Path("data/train.jsonl"), Path("runs/x"), 2, [1])


@pytest.mark.parametrize("text, match", [
    ("topkk = 2\n", r"unknown key 'topkk'"),
    ("top-k = \"many\"\n", r"top-k = 'many'"),
    ("engine = \"warp\"\n", r"not one of"),
    ("no-zmq = 1\n", r"switch"),
    ("top-k = [\n", r"not valid TOML"),
])
def test_bad_config_is_one_line(tmp_path: Path, text: str, match: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(CliError, match=match) as info:
        parse_args(_ia_live_parser(), ["--config", str(config)])
    assert str(config) in str(info.value) and "\n" not in str(info.value)


def test_bad_config_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("frobnicate = 1\n")
    proc = subprocess.run(ia_live_cmd(["--config", str(config), "--demo"]), cwd=REPO, env=ia_live_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"ia-live: error: config {config}: unknown key 'frobnicate' "
                                               f"(no flag --frobnicate in ia-live)"]
    proc = subprocess.run(ia_live_cmd(["--config", str(tmp_path / "absent.toml")]), cwd=REPO, env=ia_live_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "config file not found" in proc.stderr and "Traceback" not in proc.stderr


# -- --version, --log-level ----------------------------------------------------------------------------------


@pytest.mark.parametrize("module, prog", [("realtime.cli", "ia-live"), ("realtime.subscribe", "ia-sub"),
                                          ("train.stage1", "python -m train.stage1")])
def test_version(module: str, prog: str) -> None:
    proc = subprocess.run([sys.executable, "-m", module, "--version"], cwd=REPO, env=ia_live_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"{prog} {package_version()}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", package_version())


def test_log_level_goes_through_rich_logging() -> None:
    from rich.logging import RichHandler

    try:
        parse_args(_ia_live_parser(), ["--log-level", "debug"])
        root = logging.getLogger()
        assert root.level == logging.DEBUG and any(isinstance(h, RichHandler) for h in root.handlers)
        parse_args(_ia_live_parser(), [])
        assert root.level == logging.WARNING
        with pytest.raises(CliError, match="--log-level"):
            parse_args(_ia_live_parser(), ["--log-level", "chatty"])
    finally:
        logging.getLogger().setLevel(logging.WARNING)


# -- devices --------------------------------------------------------------------------------------------------


def test_device_selects_the_engines() -> None:
    from realtime.engines import EngineError, configure_engine

    args = parse_args(_ia_live_parser(), ["--device", "cpu"])
    assert [c.name for c in configure_engine("auto", args).candidates] == ["onnxruntime", "torch"]
    args = parse_args(_ia_live_parser(), ["--device", "cuda:1"])
    candidates = configure_engine("auto", args).candidates
    assert [c.name for c in candidates] == ["tensorrt", "cuda"] and candidates[1].device == "cuda:1"
    with pytest.raises(EngineError, match="runs on a GPU, not on --device cpu"):
        configure_engine("cuda", parse_args(_ia_live_parser(), ["--device", "cpu"]))
    with pytest.raises(EngineError, match="runs on the CPU"):
        configure_engine("torch", parse_args(_ia_live_parser(), ["--device", "cuda"]))
    with pytest.raises(CliError, match="unknown device 'gpu'"):
        parse_args(_ia_live_parser(), ["--device", "gpu"])


def test_device_cpu_runs_the_torch_engine(random_checkpoint: Path) -> None:
    import numpy as np

    from core.checkpoint import load_checkpoint
    from realtime.engines import configure_engine

    model = load_checkpoint(random_checkpoint)
    args = parse_args(_ia_live_parser(), ["--device", "cpu", "--engine", "torch"])
    engine = configure_engine("torch", args).create(model, random_checkpoint)
    c = model.config
    result = engine(np.zeros((1, c.frames, 3, c.rgb_size, c.rgb_size), np.float32),
                    np.zeros((1, c.pose_frames, c.num_pose_channels, c.map_size, c.map_size), np.float32))
    assert result.probs.shape == (10,) and abs(result.probs.sum() - 1) < 1e-5


def test_pose_device_cuda_without_the_provider_is_one_line(movenet_model: Path) -> None:
    import onnxruntime as ort

    from realtime.pose.base import PoseBackendError
    from realtime.pose.movenet import MoveNetBackend

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider (the manual GPU check in docs/cli.md applies)")
    args = parse_args(_ia_live_parser(), ["--pose-model", str(movenet_model), "--pose-device", "cuda"])
    with pytest.raises(PoseBackendError, match="no CUDAExecutionProvider") as info:
        MoveNetBackend.configure(args, "test")
    assert "\n" not in str(info.value)
    args = parse_args(_ia_live_parser(), ["--pose-model", str(movenet_model), "--pose-device", "auto"])
    assert MoveNetBackend.configure(args, "test").device == "auto"   # auto falls back to the CPU


def test_pose_device_cuda_from_the_command_line() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    proc = subprocess.run(ia_live_cmd(["--demo", "--pose-device", "cuda", "--no-zmq", "--quiet"]), cwd=REPO,
                          env=ia_live_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--pose-device cuda:0" in lines[0] and "CUDAExecutionProvider" in lines[0]


# -- camera flags ---------------------------------------------------------------------------------------------


def test_camera_flags_parse_and_validate() -> None:
    args = parse_args(_ia_live_parser(), ["--camera", "0", "--camera-width", "1280", "--camera-height", "720",
                                          "--camera-fps", "30", "--camera-fourcc", "mjpg"])
    assert CameraSettings.configure(args) == CameraSettings(1280, 720, 30.0, "MJPG")
    assert CameraSettings.configure(parse_args(_ia_live_parser(), ["--camera", "0"])) is None
    for bad in (["--camera-width", "0"], ["--camera-fps", "-5"], ["--camera-fourcc", "MJPEG"]):
        with pytest.raises(CliError):
            parse_args(_ia_live_parser(), ["--camera", "0", *bad])
    with pytest.raises(CameraSettingsError, match="--camera N only"):
        CameraSettings.configure(parse_args(_ia_live_parser(), ["--video", "x.mp4", "--camera-width", "640"]))


class _Camera:
    """A stand-in for an opened cv2.VideoCapture of a camera that only does 640x480 YUYV at 30 fps."""

    def __init__(self) -> None:
        import cv2

        self.cv2 = cv2
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640.0, cv2.CAP_PROP_FRAME_HEIGHT: 480.0, cv2.CAP_PROP_FPS: 30.0,
                      cv2.CAP_PROP_FOURCC: float(cv2.VideoWriter_fourcc(*"YUYV"))}
        self.asked: list[int] = []

    def set(self, prop: int, value: float) -> bool:
        self.asked.append(prop)
        if prop == self.cv2.CAP_PROP_FPS:
            self.props[prop] = min(value, 30.0)
        return True

    def get(self, prop: int) -> float:
        return self.props[prop]


def test_camera_settings_report_what_the_camera_refuses(caplog) -> None:
    import cv2

    cam = _Camera()
    with caplog.at_level(logging.WARNING):
        notes = CameraSettings(1920, 480, 25.0, "MJPG").report(cam, "camera 0")
    assert cam.asked[0] == cv2.CAP_PROP_FOURCC           # the format first: it decides which sizes exist
    assert notes == ["asked for MJPG, gives YUYV", "asked for width 1920, gives 640"]
    assert [r.getMessage() for r in caplog.records] == [f"camera 0 refused a setting: {n}" for n in notes]
    assert CameraSettings(640, 480, 30.0, "YUYV").apply(_Camera()) == []
