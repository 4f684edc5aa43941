"""Train one expert on one cluster's data, entirely locally (the loop reads top to bottom, like DiT's train.py).

setup -> model + EMA + optimizer (or resume) -> data -> loop (caption dropout, encode, noise, loss, step, EMA)
-> checkpoint (+ background publish) -> final checkpoint on stop or at `steps`. The loop itself is `loop.run_loop`,
shared with the router; this file holds what one micro-batch of an expert does.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from pathlib import Path
from typing import Any

import torch

from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig
from paris_node.models.factory import build_expert
from paris_node.models.text import TextEncoder
from paris_node.models.vae import LatentCodec
from paris_node.training.config import TrainConfig
from paris_node.training.data_order import step_generators
from paris_node.training.devices import autocast_for
from paris_node.training.loop import TrainResult, run_loop, start_run
from paris_node.training.losses import objective_of, sample_t, training_losses
from paris_node.training.publisher import Publish

log = logging.getLogger(__name__)


def objective_for(cfg: TrainConfig, model_cfg: ExpertConfig) -> str:
    expected = objective_of(model_cfg.prediction)
    if cfg.objective is not None and cfg.objective != expected:
        raise UsageError(
            f"objective {cfg.objective!r} does not train a {model_cfg.prediction}-prediction expert; "
            f"use {expected!r} or change the model's prediction"
        )
    return expected


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
    # ---- setup: device (and group), model + EMA + optimizer (or resume), data
    out_dir = Path(out_dir)
    objective = objective_for(cfg, model_cfg)
    if text_encoder.dim != model_cfg.caption_channels:
        raise UsageError(
            f"text encoder {text_encoder.spec!r} gives {text_encoder.dim}-d tokens but the expert expects "
            f"{model_cfg.caption_channels}; use the expert's text_encoder {model_cfg.text_encoder!r}"
        )
    run = start_run(cfg, lambda: build_expert(model_cfg, device="cpu"), dataset, resume_from)
    d, state = run.d, run.state

    # ---- one micro-batch: caption dropout, encode, noise, loss, backward
    def micro_step(batch: Any, step: int, micro: int) -> tuple[torch.Tensor, int]:
        images, captions = batch
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
            sync = state.train_model.no_sync()
        with sync:
            with autocast_for(d.device, cfg.bf16):
                losses = training_losses(state.train_model, x0, t, text, text_mask, objective, noise=noise)
            (losses["loss"] / cfg.grad_accum).backward()
        return losses["loss"], x0.shape[0] * d.world

    def log_point(metrics: dict[str, Any]) -> dict[str, str]:
        return {"loss": f"{metrics['loss']:.4f}", "sps": f"{metrics['samples_per_s']:.1f}"}

    # ---- loop
    config = {"kind": "expert", "model": model_cfg.to_dict(), "train": cfg.to_dict()}
    stopped = "stop requested: stopped after step %d"
    return run_loop(
        run, out_dir, config, publish, stop, micro_step=micro_step, log_point=log_point, log=log, stopped=stopped
    )
