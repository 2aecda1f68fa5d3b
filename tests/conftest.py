"""Shared test helpers: locate ../shared and skip (with the reason) when a real resource is absent; the
MoveNet model, small random checkpoints, and the process / shared-memory probes the live tests use."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IA_SHARED", REPO.parent / "shared"))
SHM = Path("/dev/shm")
MOVENET_FILE = "movenet_multipose_lightning.onnx"
MESSAGE_SCHEMA = REPO / "docs" / "messages.schema.json"


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the calling test naming the missing file."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path


@pytest.fixture
def shared():
    return shared_path


def movenet_path() -> Path:
    """The MoveNet MultiPose ONNX model committed in ./models (../shared/models as a fallback for a checkout
    made without it); skips the calling test when neither has it."""
    local = REPO / "models" / MOVENET_FILE
    return local if local.exists() else shared_path("models", MOVENET_FILE)


@pytest.fixture
def movenet_model() -> Path:
    return movenet_path()


def make_checkpoint(path: Path, preset: str = "fast", num_classes: int = 10, label: str = "action {}",
                    seed: int = 0, **overrides) -> Path:
    """A checkpoint of random weights (seeded) with class names ``label.format(i)``."""
    import torch

    from core.checkpoint import save_checkpoint
    from core.model import build_model

    torch.manual_seed(seed)
    model = build_model(preset, class_names=[label.format(i) for i in range(num_classes)], **overrides)
    return save_checkpoint(path, model.eval())


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    """The fast preset with random weights and 10 classes ``a0`` ... ``a9``."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "fast.pt", label="a{}")


# -- ia-live messages: every one a test reads is checked against docs/messages.schema.json ------------------


def _schema_validator():
    import json

    import jsonschema

    global _VALIDATOR
    if _VALIDATOR is None:
        schema = json.loads(MESSAGE_SCHEMA.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        _VALIDATOR = jsonschema.Draft202012Validator(schema)
    return _VALIDATOR


_VALIDATOR = None


def check_message(message) -> dict:
    """Fail the test unless ``message`` (a dict, or one JSON line) is valid under the published JSON Schema
    and the publisher's own strict check (`realtime.messages.validate_message`); returns the dict."""
    import json

    from realtime.messages import validate_message

    if isinstance(message, (str, bytes)):
        message = json.loads(message)
    errors = sorted(_schema_validator().iter_errors(message), key=lambda e: list(e.absolute_path))
    if errors:
        pytest.fail(f"message violates {MESSAGE_SCHEMA.name} at {list(errors[0].absolute_path)}: "
                    f"{errors[0].message}")
    validate_message(message)
    return message


def read_messages(path: Path, types: tuple[str, ...] | None = ("prediction",)) -> list[dict]:
    """Every line of an ``ia-live --dump-json`` file, each checked (`check_message`), of the given types
    (None: all)."""
    messages = [check_message(line) for line in Path(path).read_text().splitlines()]
    return messages if types is None else [m for m in messages if m["type"] in types]


# -- ia-live as a user runs it -------------------------------------------------------------------------------


def ia_live_env(**extra: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), **extra}


def ia_live_cmd(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "realtime.cli", *args]


def run_ia_live(args: list[str], timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(ia_live_cmd(args), cwd=REPO, env=ia_live_env(), capture_output=True, text=True,
                          timeout=timeout, **kwargs)


# -- processes and shared memory ------------------------------------------------------------------------------


def segments_of(pid: int) -> list[str]:
    """/dev/shm entries of the ia-live run whose parent is ``pid``: ring segments (``ia_live_<pid>_*``) and
    its named semaphores (``sem.ia_live_<pid>_*``). Another run's entries are not counted."""
    return sorted(p.name for pattern in (f"ia_live_{pid}_*", f"sem.ia_live_{pid}_*") for p in SHM.glob(pattern))


def ring_segments_of(pid: int) -> list[str]:
    return sorted(p.name for p in SHM.glob(f"ia_live_{pid}_*"))


def children_of(pid: int) -> dict[str, int]:
    """comm name -> pid of the direct children of ``pid`` (the pipeline names them ``ia-live:<role>``)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        if ppid == pid:
            out[comm] = int(stat.parent.name)
    return out


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


@pytest.fixture(scope="session", autouse=True)
def _isolated_engine_cache(tmp_path_factory):
    """Compiled-engine caches (ONNX exports) go to a per-run temp folder, never the user's ~/.cache;
    the variable is inherited by the `ia-live` subprocesses the tests start."""
    previous = os.environ.get("IA_LIVE_CACHE")
    os.environ["IA_LIVE_CACHE"] = str(tmp_path_factory.mktemp("ia_live_cache"))
    yield
    if previous is None:
        os.environ.pop("IA_LIVE_CACHE", None)
    else:
        os.environ["IA_LIVE_CACHE"] = previous
