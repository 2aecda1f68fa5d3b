"""Pose backend registry: backends are named here and imported only when used (`realtime.plugins`).

Lazy import keeps `ia-live --help` and the default MoveNet path free of optional heavy
dependencies (openpifpaf pulls torch models and a C++ extension).
"""
from __future__ import annotations

import argparse

from realtime import defaults
from realtime.plugins import Registry
from realtime.pose.base import PoseBackend, PoseBackendError, add_common_cli

DEFAULT_BACKEND = defaults.POSE_BACKEND

BACKENDS: dict[str, str] = {
    "movenet": "realtime.pose.movenet:MoveNetBackend",
    "openpifpaf": "realtime.pose.openpifpaf_backend:OpenPifPafBackend",
    "file": "realtime.pose.file:FileBackend",
}

REGISTRY = Registry(
    "pose backend", BACKENDS,
    unknown=lambda name: PoseBackendError(f"unknown pose backend {name!r} (choose from: {', '.join(sorted(BACKENDS))})"),
    missing=lambda name, why: PoseBackendError(f"pose backend {name!r} {why}"),
)

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "PoseBackend", "PoseBackendError", "add_cli", "get_backend"]


def get_backend(name: str) -> type[PoseBackend]:
    """The backend class registered under ``name``; `PoseBackendError` if there is none."""
    return REGISTRY.get(name)


def add_cli(parser: argparse.ArgumentParser) -> None:
    """Add every registered backend's flags, the shared ones once (the pipeline owns ``--pose-backend``)."""
    add_common_cli(parser)
    REGISTRY.add_cli(parser)
