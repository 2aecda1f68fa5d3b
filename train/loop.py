"""The one training loop shared by stage 1 (single streams) and stage 2 (integration), with exact resume.

Why it looks the way it does:

* **Exact resume.** A run killed after epoch e and resumed must end with the same weights as an
  uninterrupted run. So the shuffle order is a pure function of (seed, epoch) (a `DistributedSampler`,
  also in a single process), DataLoader worker seeds come from a per-epoch generator, and the global
  torch / numpy / python RNG states (which drive augmentation in the main process) are saved after each
  epoch and restored on resume, next to the optimizer, scheduler and grad-scaler states.
* **Atomic, self-consistent files.** `checkpoint.pt` (the project format, `core.checkpoint`) and
  `resume.pt` are each written atomically; `resume.pt` also carries the weights, so a kill between the
  two writes can never pair weights of one epoch with optimizer state of another.
  Everything is tensors and plain values: both load with ``torch.load(weights_only=True)``.
* **Frozen streams** (stage 2, paper section 3.4) have ``requires_grad=False``; their BatchNorms stay in
  eval mode by default (``stream_bn="eval"``: frozen means frozen, running statistics included). The
  authors' released code kept the whole model in train mode, so frozen streams normalised with batch
  statistics and kept updating their running statistics: ``stream_bn="train"`` reproduces that.
* Batches are dicts: ``rgb``/``pose``/``label`` (clips), or ``fa``/``fp``/``label`` (pre-computed stream
  features, see `train.stage2.FeatureBank`); a test-mode item stacks ``n_clips`` clips and its
  probabilities are averaged over them.
"""
from __future__ import annotations

import json
import math
import os
import random
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from core.checkpoint import save_checkpoint
from core.errors import UserError
from core.model import IntegralAction, ModelOutput, StreamFeatures, gate_loss
from train.context_swap import swap_appearance
from train.distributed import DistContext, all_reduce_sum, barrier

RESUME_FORMAT = "integralaction-live-resume/1"
STREAM_BN_MODES = ("eval", "train")


class TrainingError(UserError, RuntimeError):
    """A problem the user must fix (bad resume file, mismatched settings); one-line message."""


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults: the paper's Kinetics50/NTU stage-1 schedule (section 3.5)."""

    epochs: int = 40
    lr: float = 1e-2
    milestones: tuple[int, ...] = (20, 30)
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4  # TSM's default; applied to every trainable parameter
    batch_size: int = 32  # per process
    workers: int = 4
    seed: int = 0
    gate_lambda: float = 0.0  # weight of L_gate (stage 2); 0 in stage 1
    amp: bool = True  # torch.autocast float16 + GradScaler, on CUDA only
    frozen_streams: bool = False
    stream_bn: str = "eval"  # frozen streams' BatchNorm mode: eval (default) | train (released code)
    clip_grad: float | None = None
    # stage 2: share of training clips given another class's appearance input (train.context_swap)
    context_swap: float = 0.0
    val_every: int = 1
    device: str = "auto"

    def __post_init__(self) -> None:
        self.milestones = tuple(int(m) for m in self.milestones)
        if self.stream_bn not in STREAM_BN_MODES:
            raise ValueError(f"stream_bn must be one of {STREAM_BN_MODES}, got {self.stream_bn!r}")
        if not 0.0 <= self.context_swap <= 1.0:
            raise ValueError(f"context_swap must be in [0, 1], got {self.context_swap}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs must be >= 0, batch size >= 1 and lr > 0")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["milestones"] = list(self.milestones)
        return out


# -- seeding and RNG state ------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain values (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_worker(worker_id: int) -> None:
    """DataLoader seeds torch and `random` per worker; numpy needs it too (augmentation uses it)."""
    np.random.seed(torch.initial_seed() % (2 ** 32))


# -- batches --------------------------------------------------------------------------------------
def as_sample(item: Any) -> dict[str, Any]:
    """A dataset item as a dict; accepts dicts and ``(rgb, pose, label)`` tuples."""
    if isinstance(item, dict):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 3:
        rgb, pose, label = item
        return {"rgb": rgb, "pose": pose, "label": label}
    raise TypeError(f"dataset items must be dicts or (rgb, pose, label) tuples, got {type(item).__name__}")


def collate(items: list[Any]) -> dict[str, Any]:
    """Stack the tensors of dict items; keys whose values are None (a stream the model lacks) stay None."""
    samples = [as_sample(item) for item in items]
    batch: dict[str, Any] = {}
    for key in ("rgb", "pose", "fa", "fp", "label"):
        if key not in samples[0]:
            continue
        values = [s[key] for s in samples]
        if any(v is None for v in values):
            batch[key] = None
        elif key == "label":
            batch[key] = torch.as_tensor([int(v) for v in values], dtype=torch.long)
        else:
            batch[key] = torch.stack([torch.as_tensor(v) for v in values])
    return batch


def _clip_ndim(key: str) -> int:
    return 3 if key in ("fa", "fp") else 5  # (B, T, C) features; (B, T, C, H, W) clips


def forward_batch(model: nn.Module, batch: dict[str, Any], device: torch.device) -> tuple[ModelOutput, int]:
    """Run the model on a batch; test-mode stacks (B, n_clips, ...) are flattened to B * n_clips clips.

    Returns the output and n_clips (1 for ordinary batches)."""
    features = "fa" in batch or "fp" in batch
    keys = ("fa", "fp") if features else ("rgb", "pose")
    inputs = []
    n_clips = 1
    for key in keys:
        x = batch.get(key)
        if x is not None:
            x = x.to(device, non_blocking=True)
            if x.dim() == _clip_ndim(key) + 1:
                n_clips = x.shape[1]
                x = x.reshape(x.shape[0] * n_clips, *x.shape[2:])
        inputs.append(x)
    if features:
        head = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        return head.forward_head(StreamFeatures(inputs[0], inputs[1])), n_clips
    return model(inputs[0], inputs[1]), n_clips


# -- modes and freezing ---------------------------------------------------------------------------
def freeze_streams(model: IntegralAction) -> None:
    for module in model.stream_modules():
        for p in module.parameters():
            p.requires_grad_(False)


def set_train_mode(model: IntegralAction, cfg: TrainConfig) -> None:
    model.train()
    if cfg.frozen_streams and cfg.stream_bn == "eval":
        for module in model.stream_modules():
            module.eval()


def _unwrap(model: nn.Module) -> IntegralAction:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# -- prediction -----------------------------------------------------------------------------------
@dataclass
class Predictions:
    """Video-level results: probabilities averaged over each video's clips, and the per-video mean gate."""

    probs: np.ndarray  # (N, K)
    labels: np.ndarray  # (N,)
    gate: np.ndarray | None = None  # (N,) G averaged over channels, frames and clips
    clip_gate: np.ndarray | None = None  # (N, n_clips) G averaged over channels and frames


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable[dict[str, Any]], device: torch.device,
            progress: Callable[[int], None] | None = None, amp: bool = False) -> Predictions:
    model.eval()
    probs, labels, gates, clip_gates = [], [], [], []
    for batch in loader:
        with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
            out, n = forward_batch(model, batch, device)
        b = batch["label"].shape[0]
        probs.append(out.probs.float().reshape(b, n, -1).mean(1).cpu())
        labels.append(batch["label"])
        if out.gate is not None:
            g = out.gate.float().mean((1, 2)).reshape(b, n).cpu()
            clip_gates.append(g)
            gates.append(g.mean(1))
        if progress is not None:
            progress(b)
    if not probs:
        raise TrainingError("the evaluation set is empty")
    return Predictions(torch.cat(probs).numpy(), torch.cat(labels).numpy(),
                       torch.cat(gates).numpy() if gates else None,
                       torch.cat(clip_gates).numpy() if clip_gates else None)


def accuracy(pred: Predictions) -> dict[str, float]:
    from train.metrics import topk_accuracy

    out = {"top1": topk_accuracy(pred.probs, pred.labels, 1), "top5": topk_accuracy(pred.probs, pred.labels, 5)}
    if pred.gate is not None:
        out["gate_mean"] = float(pred.gate.mean())
    return out


# -- files ----------------------------------------------------------------------------------------
def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_resume(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainingError(f"cannot read resume file {path}: {first[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise TrainingError(f"{path} is not a resume file ({RESUME_FORMAT})")
    return state


_RESUME_MUST_MATCH = ("lr", "milestones", "gamma", "momentum", "weight_decay", "batch_size", "seed",
                      "gate_lambda", "frozen_streams", "stream_bn", "context_swap")


@dataclass
class FitResult:
    checkpoint: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_epoch: int = 0


# -- the loop -------------------------------------------------------------------------------------
def fit(model: IntegralAction, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig, out_dir: str | Path,
        *, class_names: list[str], ctx: DistContext | None = None, extra: dict[str, Any] | None = None,
        resume: bool = False, quiet: bool = False) -> FitResult:
    """Train `model` on `train_set` for ``cfg.epochs`` epochs; writes ``checkpoint.pt`` and ``resume.pt``
    into `out_dir` after every epoch, ``metrics.jsonl`` and TensorBoard events under ``tb/``."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    ctx = ctx or DistContext()
    out_dir = Path(out_dir)
    device = ctx.device
    console = Console(stderr=True, quiet=quiet or not ctx.is_main)
    seed_everything(cfg.seed + ctx.rank)
    model.to(device)
    if cfg.frozen_streams:
        freeze_streams(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay) \
        if trainable else None
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma) if optimizer else None
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    history: list[dict[str, Any]] = []
    start_epoch = 0
    resume_path = out_dir / "resume.pt"
    if resume and resume_path.is_file():
        state = load_resume(resume_path)
        saved = state["train_config"]
        # a setting added after the file was written had its default then
        defaults, now = TrainConfig().to_dict(), cfg.to_dict()
        diffs = [k for k in _RESUME_MUST_MATCH if saved.get(k, defaults[k]) != now[k]]
        if diffs:
            raise TrainingError(f"cannot resume {resume_path}: settings differ from the interrupted run ({', '.join(diffs)})")
        model.load_state_dict(state["model"])
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        start_epoch = int(state["epoch"])
        history = [json.loads(h) for h in state["history"]]
        console.print(f"[bold]resuming[/] {out_dir} after epoch {start_epoch}/{cfg.epochs}")
    elif resume:
        console.print(f"[yellow]no resume file in {out_dir}; starting at epoch 1[/]")

    net: nn.Module = model
    if ctx.distributed and trainable:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    sampler = DistributedSampler(train_set, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed)
    writer = None
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out_dir / "tb"), purge_step=start_epoch + 1 if start_epoch else None)
    extra = dict(extra or {})
    extra["train_config"] = cfg.to_dict()

    def save(epoch: int, metrics: dict[str, Any]) -> None:
        if not ctx.is_main:
            return
        save_checkpoint(out_dir / "checkpoint.pt", model, class_names, {**extra, "epoch": epoch, "metrics": metrics})
        _atomic_torch_save({
            "format": RESUME_FORMAT, "epoch": epoch, "train_config": cfg.to_dict(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict() if optimizer else {},
            "scheduler": scheduler.state_dict() if scheduler else {},
            "scaler": scaler.state_dict(), "rng": rng_state(),
            "history": [json.dumps(h) for h in history],
        }, resume_path)

    if start_epoch == 0 and ctx.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.jsonl").write_text("")
    if cfg.epochs == 0 or optimizer is None:
        save(start_epoch, {})
        barrier(ctx)
        return FitResult(out_dir / "checkpoint.pt", history, start_epoch)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn())
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                            collate_fn=collate, worker_init_fn=_seed_worker, drop_last=False,
                            generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch),
                            persistent_workers=False, pin_memory=device.type == "cuda")
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        set_train_mode(model, cfg)
        sums = torch.zeros(5, dtype=torch.float64)  # loss*n, cls*n, gate*n, correct, n
        swap_gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch + 1)  # a pure function of (seed, epoch)
        started = time.monotonic()
        with Progress(*columns, console=console, transient=True, disable=quiet or not ctx.is_main) as bar:
            task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(loader), info="")
            for batch in loader:
                batch = swap_appearance(batch, cfg.context_swap, swap_gen)
                labels = batch["label"].to(device)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    out, _ = forward_batch(net, batch, device)
                    l_cls = F.cross_entropy(out.logits.float(), labels)
                l_gate = gate_loss(out.gate) if out.gate is not None else l_cls.new_zeros(())
                loss = l_cls + cfg.gate_lambda * l_gate if cfg.gate_lambda else l_cls
                if not torch.isfinite(loss):
                    raise TrainingError(f"loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.clip_grad:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(trainable, cfg.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                n = labels.shape[0]
                correct = (out.logits.detach().argmax(1) == labels).sum().item()
                sums += torch.tensor([loss.item() * n, l_cls.item() * n, l_gate.item() * n, correct, n],
                                     dtype=torch.float64)
                bar.update(task, advance=1, info=f"loss {sums[0] / sums[4]:.3f}")
        sums = all_reduce_sum(sums, ctx)
        count = max(sums[4].item(), 1.0)
        metrics: dict[str, Any] = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"],
                                   "loss": sums[0].item() / count, "loss_cls": sums[1].item() / count,
                                   "loss_gate": sums[2].item() / count, "train_top1": 100.0 * sums[3].item() / count,
                                   "seconds": round(time.monotonic() - started, 2)}
        scheduler.step()
        last = epoch + 1 == cfg.epochs
        if val_set is not None and ctx.is_main and (last or (epoch + 1) % max(cfg.val_every, 1) == 0):
            val_loader = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                                    collate_fn=collate, generator=torch.Generator().manual_seed(cfg.seed),
                                    worker_init_fn=_seed_worker)
            metrics.update({f"val_{k}": v for k, v in accuracy(predict(model, val_loader, device, amp=use_amp)).items()})
        barrier(ctx)
        history.append(metrics)
        if ctx.is_main:
            for key, value in metrics.items():
                if key != "epoch" and isinstance(value, (int, float)) and math.isfinite(value):
                    writer.add_scalar(key.replace("val_", "val/").replace("loss", "train/loss", 1)
                                      if key.startswith(("loss", "val_")) else f"train/{key}", value, epoch + 1)
            writer.flush()
            with (out_dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(metrics) + "\n")
            shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
            console.print(f"[green]{out_dir.name}[/] {shown}")
        save(epoch + 1, metrics)
        barrier(ctx)
    if writer is not None:
        writer.close()
    return FitResult(out_dir / "checkpoint.pt", history, start_epoch)
