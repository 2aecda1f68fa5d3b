"""Shared test helpers: locate ../shared and skip (with the reason) when a real resource is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IA_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path inside ../shared, or skip the calling test naming the missing file."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path


@pytest.fixture
def shared():
    return shared_path


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
