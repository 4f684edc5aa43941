"""Train one expert on one cluster's data, entirely locally (the loop reads top to bottom, like DiT's train.py).

setup -> model + EMA + optimizer (or resume) -> data -> loop (caption dropout, encode, noise, loss, step, EMA)
-> checkpoint (+ background publish) -> final checkpoint on stop or at `steps`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from paris_node.errors import UsageError
from paris_node.models.presets import ExpertConfig, build_expert
from paris_node.models.text import TextEncoder
from paris_node.models.vae import LatentCodec
from paris_node.training.checkpoint import WEIGHTS, load_training_state, save_checkpoint
from paris_node.training.losses import OBJECTIVES, T_SAMPLING, sample_t, training_losses
from paris_node.training.runtime import (
    BackgroundPublisher,
    Meter,
    Publish,
    any_rank_stopping,
    batch_stream,
    ema_decay,
    ema_update,
    optimizer_state_from,
    prune_checkpoints,
    resolve_resume,
    setup_device,
    step_dir,
    step_generators,
    unwrap,
    write_latest,
)

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
        if min(self.steps, self.batch, self.grad_accum, self.checkpoint_every) < 1:
            raise UsageError("steps, batch, grad_accum and checkpoint_every must all be >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    step: int
    checkpoint: Path | None
    history: list[dict[str, float]] = field(default_factory=list)
    published: list[int] = field(default_factory=list)


def objective_for(cfg: TrainConfig, model_cfg: ExpertConfig) -> str:
    expected = "rectified_flow" if model_cfg.prediction == "velocity" else "epsilon"
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

    # ---- model, EMA, optimizer
    model = build_expert(model_cfg, device="cpu").to(d.device)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, samples_seen = 0, 0
    if resume_from is not None:
        ckpt = resolve_resume(resume_from)
        state = load_training_state(ckpt)
        model.load_state_dict(state["model"])
        ema.load_state_dict(load_file(str(ckpt / WEIGHTS), device=str(d.device)))
        opt.load_state_dict(optimizer_state_from(state["optimizer"]))
        step, samples_seen = int(state["step"]), int(state["samples_seen"])
        log.info("resumed from %s at step %d", ckpt, step)
    train_model = model
    if d.world > 1:
        ids = [d.device] if d.device.type == "cuda" else None
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    model.train()

    # ---- data
    batches = batch_stream(dataset, cfg.batch, cfg.seed, samples_seen, d, cfg.num_workers)
    per_step = cfg.batch * cfg.grad_accum * d.world

    # ---- loop
    publisher = BackgroundPublisher(publish if d.main else None)
    meter, history, last_ckpt = Meter(), [], None
    bar = tqdm(total=cfg.steps, initial=step, disable=not (cfg.progress and d.main), unit="step", dynamic_ncols=True)

    def checkpoint(metrics: dict[str, float]) -> Path:
        train_state = {
            "step": step,
            "samples_seen": samples_seen,
            "model": unwrap(model).state_dict(),
            "optimizer": opt.state_dict(),
        }
        config = {"kind": "expert", "model": model_cfg.to_dict(), "train": cfg.to_dict(), "step": step}
        path = save_checkpoint(step_dir(out_dir, step), ema, config, train_state)
        write_latest(out_dir, path)
        publisher.submit(path, step, dict(metrics, step=step))
        prune_checkpoints(out_dir, cfg.keep_checkpoints, publisher.in_use())
        return path

    try:
        while step < cfg.steps:
            for micro in range(cfg.grad_accum):
                images, captions = next(batches)
                cpu_gen, dev_gen = step_generators(cfg.seed, step, micro, d.rank, d.device)
                drop = torch.rand(len(captions), generator=cpu_gen) < cfg.caption_dropout
                captions = ["" if dropped else c for c, dropped in zip(captions, drop.tolist(), strict=True)]
                text, text_mask = text_encoder.encode(captions)
                text, text_mask = text.to(d.device, non_blocking=True), text_mask.to(d.device, non_blocking=True)
                x0 = codec.encode(images.to(d.device, non_blocking=True), generator=dev_gen)
                t = sample_t(x0.shape[0], cfg.t_sampling, dev_gen, d.device)
                noise = torch.randn(x0.shape, generator=dev_gen, device=d.device)
                sync = contextlib.nullcontext()
                if d.world > 1 and micro < cfg.grad_accum - 1:
                    sync = train_model.no_sync()
                with sync:
                    with autocast_for(d.device, cfg.bf16):
                        loss = training_losses(train_model, x0, t, text, text_mask, objective, noise=noise)["loss"]
                    (loss / cfg.grad_accum).backward()
                meter.add(loss, x0.shape[0] * d.world)
            if cfg.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            ema_update(ema, model, ema_decay(cfg.ema, step))
            step += 1
            samples_seen += per_step
            bar.update(1)

            stopping = any_rank_stopping(stop, d)
            if step % cfg.log_every == 0 or step == cfg.steps or stopping or step % cfg.checkpoint_every == 0:
                metrics = meter.read()
                meter.reset()
                history.append(dict(metrics, step=step))
                bar.set_postfix(loss=f"{metrics['loss']:.4f}", sps=f"{metrics['samples_per_s']:.1f}")
            if d.main and (step % cfg.checkpoint_every == 0 or step == cfg.steps or stopping):
                last_ckpt = checkpoint(history[-1])
            if stopping:
                log.info("stop requested: stopped after step %d", step)
                break
    finally:
        bar.close()
        publisher.close(cfg.publish_timeout)
    return TrainResult(step, last_ckpt, history, list(publisher.published))
