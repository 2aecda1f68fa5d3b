"""Dataset readers (each turns a public dataset's layout into a clip index + pose caches) and the Dataset.

Readers only produce the two shared formats (``core.clipindex`` and ``core.posecache``); everything that
samples, crops or renders lives in ``core`` so training sees exactly what the live pipeline sees.
"""
from __future__ import annotations

from core.errors import UserError


class DatasetFormatError(UserError, ValueError):
    """An input dataset file is malformed or missing; the message is one line naming the file."""


__all__ = ["DatasetFormatError"]
