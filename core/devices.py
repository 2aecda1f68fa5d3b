"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``) for the inference engines (``--device``) and for
MoveNet's onnxruntime session (``--pose-device``).

Why here: the same spelling is accepted by ia-live, the training stages and the tools, is checked in one
place (a typo is a one-line error at start-up, not a CUDA error inside a worker), and maps to both torch
devices and onnxruntime execution providers.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

from core.errors import UserError

__all__ = ["Device", "DeviceError", "parse_device", "device_arg", "onnxruntime_providers"]

_PATTERN = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(UserError, ValueError):
    """A device that is misspelt or not present here."""


@dataclass(frozen=True)
class Device:
    """``kind`` is auto, cpu or cuda; ``index`` the CUDA ordinal (0 when not given)."""

    kind: str
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.kind == "cuda" else self.kind


def parse_device(value: str) -> Device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> `Device` (`DeviceError` otherwise)."""
    match = _PATTERN.match(str(value).strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"unknown device {value!r}; use auto, cpu, cuda or cuda:N")
    return Device(match.group(1), int(match.group(2) or 0))


def device_arg(value: str) -> str:
    """argparse ``type=`` for device flags: validates and normalises (``CUDA`` -> ``cuda:0``)."""
    try:
        return str(parse_device(value))
    except DeviceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def onnxruntime_providers(device: str | Device, what: str = "--pose-device") -> list:
    """The execution providers for an onnxruntime session on ``device``: CPU, or CUDA (with the CPU provider
    behind it for unsupported ops). ``cuda`` when onnxruntime has no CUDA provider here is a one-line
    `DeviceError`; ``auto`` uses CUDA only where it is present."""
    import onnxruntime as ort

    dev = parse_device(device) if isinstance(device, str) else device
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if dev.kind == "cuda" and not has_cuda:
        raise DeviceError(f"{what} {dev}: this onnxruntime ({ort.__version__}) has no CUDAExecutionProvider "
                          f"(install onnxruntime-gpu on a CUDA machine, or use {what} cpu)")
    if dev.kind == "cpu" or not has_cuda:
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": dev.index}), "CPUExecutionProvider"]
