"""The plugin convention shared by pose backends (`realtime.pose`) and inference engines (`realtime.engines`).

openpifpaf style: a plugin is a class that owns its command-line flags and turns parsed flags into a
configured, picklable object:

    class MyPlugin:
        name = "mine"
        @classmethod
        def cli(cls, parser): ...           # add this plugin's own flags (--pose-* / engine flags)
        @classmethod
        def configure(cls, args, ...): ...  # validate the flags, return a configured instance

The configured instance travels to the worker process (inside `realtime.settings.Settings`) and builds its
heavy runtime state (ONNX sessions, networks) there, lazily. A `Registry` names plugins by
``"module:Class"`` strings and imports a module only when that plugin is asked for, so `--help` and the
default path never import optional heavy packages, and adding a plugin is one file plus one registry line.
"""
from __future__ import annotations

import argparse
import importlib
from typing import Callable

from core.errors import UserError, one_line

__all__ = ["Registry"]


class Registry:
    """``name -> "module:Class"`` with lazy import. ``unknown``/``missing`` build the errors raised for an
    unregistered name and for a plugin whose module (or one of its packages) cannot be imported."""

    def __init__(self, kind: str, entries: dict[str, str], unknown: Callable[[str], UserError],
                 missing: Callable[[str, str], UserError]) -> None:
        self.kind = kind
        self.entries = entries
        self._unknown = unknown
        self._missing = missing

    def names(self) -> list[str]:
        return list(self.entries)

    def get(self, name: str) -> type:
        """The plugin class registered as ``name`` (imported now)."""
        try:
            target = self.entries[name]
        except KeyError:
            raise self._unknown(name) from None
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                raise self._missing(name, f"{module_name} does not exist in this build") from None
            raise self._missing(name, f"needs the Python package {exc.name!r}, which is not installed") from None
        except ImportError as exc:
            raise self._missing(name, f"cannot be imported here: {one_line(str(exc).splitlines()[0] if str(exc) else exc)}") from None
        return getattr(module, class_name)

    def add_cli(self, parser: argparse.ArgumentParser) -> None:
        """Every importable plugin adds its flags (one that cannot import is skipped: it has no flags to offer)."""
        for name in self.entries:
            try:
                cls = self.get(name)
            except UserError:
                continue
            cls.cli(parser)
