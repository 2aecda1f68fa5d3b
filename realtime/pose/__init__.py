"""Pose backend registry: backends are named here and imported only when used.

Lazy import keeps `ia-live --help` and the default MoveNet path free of optional heavy
dependencies (openpifpaf pulls torch models and a C++ extension).
"""
from __future__ import annotations

import argparse
import importlib

from realtime.pose.base import PoseBackend, PoseBackendError, add_common_cli

DEFAULT_BACKEND = "movenet"

BACKENDS: dict[str, str] = {
    "movenet": "realtime.pose.movenet:MoveNetBackend",
    "openpifpaf": "realtime.pose.openpifpaf_backend:OpenPifPafBackend",
    "file": "realtime.pose.file:FileBackend",
}

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "PoseBackend", "PoseBackendError", "add_cli", "get_backend"]


def get_backend(name: str) -> type[PoseBackend]:
    """The backend class registered under ``name``; `PoseBackendError` if there is none."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise PoseBackendError(
            f"unknown pose backend {name!r} (choose from: {', '.join(sorted(BACKENDS))})"
        ) from None
    module_name, _, class_name = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def add_cli(parser: argparse.ArgumentParser) -> None:
    """Add every registered backend's flags, the shared ones once (the pipeline owns ``--pose``)."""
    add_common_cli(parser)
    for name in BACKENDS:
        get_backend(name).cli(parser)
