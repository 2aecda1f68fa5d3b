"""`Settings`: everything the pipeline's processes need, as typed, frozen, picklable option records.

`realtime.cli.prepare` builds one from the command line after validating everything a user can get wrong;
tools and tests may build or `dataclasses.replace` one directly. It holds no open handle and is pickled to
every child process. The checkpoint is read (and hashed) once, by `prepare`: its bytes ride along in
`Settings.checkpoint` but are left out when Settings is pickled; the supervisor hands them to the inference
process alone (`realtime.supervisor.run`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from realtime import defaults

if TYPE_CHECKING:  # heavy modules stay out of processes that do not need them
    from core.checkpoint import CheckpointBlob
    from core.decision import DecisionRule
    from core.model import ModelConfig
    from realtime.engines.base import EnginePlugin
    from realtime.pose.base import PoseBackend
    from realtime.sources import SourceInfo, SourceSpec

__all__ = ["ModelInfo", "PoseOptions", "PredictionOptions", "OutputOptions", "Settings"]


@dataclass(frozen=True)
class ModelInfo:
    """What the processes need to know about the checkpoint (not its weights)."""

    config: ModelConfig
    class_names: tuple[str, ...]
    name: str               # the `model` field of messages (file name)
    path: str
    sha256: str
    decision: DecisionRule


@dataclass(frozen=True)
class PoseOptions:
    """The configured pose backend (a `realtime.plugins` plugin instance) and how many workers run it."""

    backend: PoseBackend
    workers: int = defaults.POSE_WORKERS

    @property
    def name(self) -> str:
        return self.backend.name


@dataclass(frozen=True)
class PredictionOptions:
    """When to predict and how to smooth and report it."""

    stride: int = defaults.STRIDE
    average: int = defaults.AVERAGE
    topk: int = defaults.TOPK
    ref_fps: float = 30.0   # the frame rate the checkpoint's tau refers to


@dataclass(frozen=True)
class OutputOptions:
    zmq: str | None = defaults.ZMQ_ENDPOINT
    zmq_allow_remote: bool = False    # the user named a non-loopback endpoint explicitly
    topic: str = defaults.TOPIC
    jsonl: str | None = None
    video_out: str | None = None
    quiet: bool = False
    print_labels: bool = False        # one human line per prediction on stdout (--demo)
    heartbeat: float = defaults.HEARTBEAT_S   # ZeroMQ heartbeat after this many idle seconds; 0: none
    wait_subscribers: int = 0         # hold the run until this many ZeroMQ subscribers listen
    wait_timeout: float = defaults.WAIT_TIMEOUT_S   # ... for at most this long, then fail


@dataclass(frozen=True)
class Settings:
    source: SourceSpec
    info: SourceInfo
    model: ModelInfo
    engine: EnginePlugin
    pose: PoseOptions
    prediction: PredictionOptions = field(default_factory=PredictionOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    threads: int = 1                  # intra-op threads of the inference process
    tick_slots: int = 0               # 0 = derived from the window plan
    checkpoint: CheckpointBlob | None = field(default=None, repr=False, compare=False)  # None: read at run

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["checkpoint"] = None   # the weights travel to the inference process only
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def tick_interval_s(self) -> float:
        """Stream seconds between two sampled frames (the pose stream's step)."""
        return float(self.model.config.pose_tau) / float(self.prediction.ref_fps)

    @property
    def gap_s(self) -> float:
        """A live stream that jumps by more than this between two kept frames has a gap (`realtime.flow`)."""
        return max(defaults.GAP_MIN_S, defaults.GAP_TICKS * self.tick_interval_s)
