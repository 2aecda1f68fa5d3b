"""Process-group setup for `torchrun` (single GPU, multi-GPU, multi-node) detected from its env vars.

Training scripts call `setup()` once: without `WORLD_SIZE`/`RANK` in the environment it returns a
single-process context, so the same command runs under plain `python -m` and under `torchrun`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Only rank 0 writes checkpoints, logs and reports, so files are never written twice."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    if requested == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda requested but CUDA is not available")
    return device


def setup(requested_device: str = "auto") -> DistContext:
    """Join the process group if launched by torchrun (NCCL on GPUs, Gloo on CPU)."""
    if not launched_by_torchrun():
        return DistContext(device=pick_device(requested_device))
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = pick_device(requested_device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a small tensor of counters over ranks (identity in a single process)."""
    if ctx.distributed:
        values = values.to(ctx.device)
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values.cpu()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
