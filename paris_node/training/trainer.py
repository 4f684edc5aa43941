"""Train one expert on one cluster's data, entirely locally (the loop reads top to bottom, like DiT's train.py).

setup -> model + EMA + optimizer (or resume) -> data -> loop (caption dropout, encode, noise, loss, step, EMA)
-> checkpoint (+ background publish) -> final checkpoint on stop or at `steps`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig
from paris_node.models.factory import build_expert
from paris_node.models.text import TextEncoder
from paris_node.models.vae import LatentCodec
from paris_node.training.data_order import batch_stream, step_generators
from paris_node.training.devices import any_rank_stopping, leave_group, setup_device
from paris_node.training.losses import OBJECTIVES, T_SAMPLING, objective_of, sample_t, training_losses
from paris_node.training.progress import Meter, progress_bar
from paris_node.training.publisher import BackgroundPublisher, Publish
from paris_node.training.state import optimizer_step, save_training_checkpoint, setup_training

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Training hyper-parameters (Paris/DDM recipe by default); written into every checkpoint's config.json.

    `batch` is per process and per micro-batch: one optimizer step sees batch * grad_accum * world samples.
    `objective` None means: follow the model's prediction ("velocity" -> rectified_flow, "epsilon" -> epsilon).
    """

    steps: int = 1000
    batch: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    warmup: int = 0
    weight_decay: float = 0.0
    ema: float = 0.9999
    clip: float = 1.0
    seed: int = 0
    t_sampling: str = "uniform"
    caption_dropout: float = 0.1
    objective: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    device: str = "auto"
    bf16: bool = True
    num_workers: int = 0
    publish_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.t_sampling not in T_SAMPLING:
            raise UsageError(f"--t-sampling {self.t_sampling!r}: use one of {T_SAMPLING}")
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise UsageError(f"--objective {self.objective!r}: use one of {OBJECTIVES}")
        if min(self.steps, self.batch, self.grad_accum, self.checkpoint_every) < 1 or self.warmup < 0:
            raise UsageError("steps, batch, grad_accum and checkpoint_every must all be >= 1, warmup >= 0")

    def checkpoints_at(self, step: int, stopping: bool) -> bool:
        """Checkpoint (and publish) every `checkpoint_every` steps, after the last step and when stopping."""
        return step % self.checkpoint_every == 0 or step == self.steps or stopping

    def logs_at(self, step: int, stopping: bool) -> bool:
        """Log every `log_every` steps and at every checkpoint, whose metrics are published with it."""
        return step % self.log_every == 0 or self.checkpoints_at(step, stopping)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What a training run ended with: its last step, newest checkpoint, logged metrics and published steps."""

    step: int
    checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    published: list[int] = field(default_factory=list)


def objective_for(cfg: TrainConfig, model_cfg: ExpertConfig) -> str:
    expected = objective_of(model_cfg.prediction)
    if cfg.objective is not None and cfg.objective != expected:
        raise UsageError(
            f"objective {cfg.objective!r} does not train a {model_cfg.prediction}-prediction expert; "
            f"use {expected!r} or change the model's prediction"
        )
    return expected


def autocast_for(device: torch.device, bf16: bool):
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(
    cfg: TrainConfig,
    model_cfg: ExpertConfig,
    dataset: Any,
    text_encoder: TextEncoder,
    codec: LatentCodec,
    out_dir: str | Path,
    publish: Publish | None = None,
    resume_from: str | Path | None = None,
    stop: threading.Event | None = None,
) -> TrainResult:
    """Train an expert on `dataset` (items: (image [C,H,W] in [-1, 1], caption str)) and checkpoint into out_dir.

    `publish(checkpoint_dir, step, metrics)` runs on a background thread (never blocks the loop). When `stop` is
    set, the current step finishes, a final checkpoint is written and published, and train returns.
    """
    # ---- setup
    out_dir = Path(out_dir)
    objective = objective_for(cfg, model_cfg)
    if text_encoder.dim != model_cfg.caption_channels:
        raise UsageError(
            f"text encoder {text_encoder.spec!r} gives {text_encoder.dim}-d tokens but the expert expects "
            f"{model_cfg.caption_channels}; use the expert's text_encoder {model_cfg.text_encoder!r}"
        )
    d = setup_device(cfg.device)
    torch.manual_seed(cfg.seed)  # model init: identical on every rank

    # ---- model, EMA, optimizer (or resume)
    model = build_expert(model_cfg, device="cpu").to(d.device)
    state = setup_training(model, d, cfg.lr, cfg.weight_decay, resume_from)

    # ---- data
    batches = batch_stream(dataset, cfg.batch, cfg.seed, state.samples_seen, d, cfg.num_workers)
    per_step = cfg.batch * cfg.grad_accum * d.world

    # ---- loop
    publisher = BackgroundPublisher(publish if d.main else None)
    meter, history, last_ckpt = Meter(), [], None
    config = {"kind": "expert", "model": model_cfg.to_dict(), "train": cfg.to_dict()}
    bar = progress_bar(cfg.steps, state.step, cfg.progress and d.main)
    finished = False
    try:
        while state.step < cfg.steps:
            for micro in range(cfg.grad_accum):
                images, captions = next(batches)
                cpu_gen, dev_gen = step_generators(cfg.seed, state.step, micro, d.rank, d.device)
                drop = torch.rand(len(captions), generator=cpu_gen) < cfg.caption_dropout
                captions = ["" if dropped else c for c, dropped in zip(captions, drop.tolist(), strict=True)]
                text, text_mask = text_encoder.encode(captions)
                text, text_mask = text.to(d.device, non_blocking=True), text_mask.to(d.device, non_blocking=True)
                x0 = codec.encode(images.to(d.device, non_blocking=True), generator=dev_gen)
                t = sample_t(x0.shape[0], cfg.t_sampling, dev_gen, d.device)
                noise = torch.randn(x0.shape, generator=dev_gen, device=d.device)
                sync = contextlib.nullcontext()
                if d.world > 1 and micro < cfg.grad_accum - 1:
                    sync = state.train_model.no_sync()
                with sync:
                    with autocast_for(d.device, cfg.bf16):
                        losses = training_losses(state.train_model, x0, t, text, text_mask, objective, noise=noise)
                    (losses["loss"] / cfg.grad_accum).backward()
                meter.add(losses["loss"], x0.shape[0] * d.world)
            optimizer_step(state, cfg.clip, cfg.ema, per_step, cfg.lr, cfg.warmup)
            bar.update(1)

            stopping = any_rank_stopping(stop, d)
            if cfg.logs_at(state.step, stopping):
                metrics = meter.read()
                meter.reset()
                history.append(dict(metrics, step=state.step))
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", sps=f"{metrics['samples_per_s']:.1f}")
            if d.main and cfg.checkpoints_at(state.step, stopping):
                last_ckpt = save_training_checkpoint(
                    state, out_dir, config, publisher, cfg.keep_checkpoints, history[-1]
                )
            if stopping:
                log.info("stop requested: stopped after step %d", state.step)
                break
        finished = True
    finally:
        state.train_model = state.model  # the DDP wrapper goes before its process group: its reducer uses it
        leave_group(d, finished)
        bar.close()
        publisher.close(cfg.publish_timeout)
    return TrainResult(state.step, last_ckpt, history, list(publisher.published))
