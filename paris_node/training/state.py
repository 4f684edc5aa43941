"""One run's trainable state: model, EMA and optimizer; setup (or resume), one optimizer step, one checkpoint."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from paris_node.checkpoint import WEIGHTS, load_training_state, save_checkpoint
from paris_node.training.devices import Dist
from paris_node.training.publisher import BackgroundPublisher
from paris_node.training.run_dir import prune_checkpoints, resolve_resume, step_dir, write_latest

log = logging.getLogger(__name__)


def ema_decay(target: float, updates: int) -> float:
    """Warm-up: min(target, (1 + n) / (10 + n)); early checkpoints of a 0.9999 EMA are otherwise the init."""
    return min(target, (1 + updates) / (10 + updates))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def optimizer_state_from(saved: dict[str, Any]) -> dict[str, Any]:
    """Undo JSON's string keys in a saved `optimizer.state_dict()`."""
    return {"state": {int(k): v for k, v in saved["state"].items()}, "param_groups": saved["param_groups"]}


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


@dataclass
class TrainingState:
    """What a training loop owns and advances; saved (with the EMA as the published weights) at each checkpoint.

    `model` is the raw module: gradients are clipped, the EMA follows and checkpoints save from it. `train_model` is
    what the forward pass calls: the DDP wrapper when world > 1 (so backward all-reduces), else `model` itself.
    """

    model: nn.Module
    train_model: nn.Module
    ema: nn.Module
    opt: torch.optim.Optimizer
    step: int = 0
    samples_seen: int = 0


def setup_training(
    model: nn.Module, d: Dist, lr: float, weight_decay: float, resume_from: str | Path | None = None
) -> TrainingState:
    """EMA copy and AdamW for a freshly built `model` on d.device; restored from `resume_from` (a checkpoint or run
    directory) when given, so step N+1 continues exactly; DDP-wrapped when world > 1; left in train mode."""
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    step, samples_seen = 0, 0
    if resume_from is not None:
        ckpt = resolve_resume(resume_from)
        saved = load_training_state(ckpt)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(load_file(str(ckpt / WEIGHTS), device=str(d.device)))
        opt.load_state_dict(optimizer_state_from(saved["optimizer"]))
        step, samples_seen = int(saved["step"]), int(saved["samples_seen"])
        log.info("%s resumed from %s at step %d", type(model).__name__, ckpt, step)
    train_model = model
    if d.world > 1:
        ids = [d.device] if d.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    model.train()
    return TrainingState(model, train_model, ema, opt, step, samples_seen)


def lr_at(step: int, lr: float, warmup: int) -> float:
    """The learning rate of optimizer step `step` (0-based): linear warm-up over `warmup` steps, then constant."""
    return lr if warmup <= 0 else lr * min(1.0, (step + 1) / warmup)


def optimizer_step(
    state: TrainingState, clip: float, ema_target: float, samples: int, lr: float | None = None, warmup: int = 0
) -> None:
    """Finish a step whose micro-batches have run backward: clip (if clip > 0), step, clear grads, EMA, counters.

    With `lr` given, the step's learning rate is `lr_at(step, lr, warmup)` (a function of the step alone, so a
    resumed run follows the same schedule).
    """
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), clip)
    if lr is not None:
        for group in state.opt.param_groups:
            group["lr"] = lr_at(state.step, lr, warmup)
    state.opt.step()
    state.opt.zero_grad(set_to_none=True)
    ema_update(state.ema, state.model, ema_decay(ema_target, state.step))
    state.step += 1
    state.samples_seen += samples


def save_training_checkpoint(
    state: TrainingState,
    out_dir: Path,
    config: dict[str, Any],
    publisher: BackgroundPublisher,
    keep: int,
    metrics: dict[str, Any],
) -> Path:
    """Write `step-N` (EMA weights to publish + raw weights and optimizer to resume), point `latest` at it, hand it
    to the background publisher and prune to the newest `keep`. `config` holds kind, model and train; step is added.
    """
    train_state = {
        "step": state.step,
        "samples_seen": state.samples_seen,
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.opt.state_dict(),
    }
    path = save_checkpoint(step_dir(out_dir, state.step), state.ema, dict(config, step=state.step), train_state)
    write_latest(out_dir, path)
    publisher.submit(path, state.step, dict(metrics, step=state.step))
    prune_checkpoints(out_dir, keep, publisher.in_use())
    return path
