"""The training loop both trainers run; each supplies only what one micro-batch does and what it logs.

`start_run`: device (and process group) -> model + EMA + optimizer (or resume) -> data. `run_loop`: steps of
`grad_accum` micro-batches -> optimizer step -> log points -> checkpoints (+ background publish) -> stop on any rank;
then the teardown in its one safe order: DDP wrapper, process group, progress bar, publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paris_node.training.config import TrainConfig
from paris_node.training.data_order import batch_stream
from paris_node.training.devices import Dist, any_rank_stopping, leave_group, setup_device
from paris_node.training.progress import Meter, progress_bar
from paris_node.training.publisher import BackgroundPublisher, Publish
from paris_node.training.state import TrainingState, optimizer_step, save_training_checkpoint, setup_training

# (batch, step, micro) -> (loss, samples it counts over all ranks): forward and backward of one micro-batch
MicroStep = Callable[[Any, int, int], tuple[torch.Tensor, int]]
# at a log point: add the trainer's own metrics to the meter's (in place), reset its counters, give the bar postfix
LogPoint = Callable[[dict[str, Any]], dict[str, str]]


@dataclass
class TrainResult:
    """What a training run ended with: its last step, newest checkpoint, logged metrics and published steps."""

    step: int
    checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)
    published: list[int] = field(default_factory=list)


@dataclass
class Run:
    """A run ready to train: where it runs, what it trains (fresh or resumed) and its endless batch stream."""

    cfg: TrainConfig
    d: Dist
    state: TrainingState
    batches: Iterator[Any]


def start_run(
    cfg: TrainConfig, build: Callable[[], nn.Module], dataset: Any, resume_from: str | Path | None = None
) -> Run:
    """Join the device (and group), build the model on CPU from the seed, set up EMA + optimizer, open the data.

    The order is part of a run's randomness: the seed, then the model init, then the loader's base seed.
    """
    d = setup_device(cfg.device)
    torch.manual_seed(cfg.seed)  # model init: identical on every rank
    model = build().to(d.device)
    state = setup_training(model, d, cfg.lr, cfg.weight_decay, resume_from)
    batches = batch_stream(dataset, cfg.batch, cfg.seed, state.samples_seen, d, cfg.num_workers)
    return Run(cfg, d, state, batches)


def run_loop(
    run: Run,
    out_dir: Path,
    config: dict[str, Any],
    publish: Publish | None,
    stop: threading.Event | None,
    *,
    micro_step: MicroStep,
    log_point: LogPoint,
    log: logging.Logger,
    stopped: str,
) -> TrainResult:
    """Train `run` to `cfg.steps` (or until `stop` on any rank), checkpointing `config` (kind, model, train) into
    out_dir. `publish` runs on a background thread on rank 0; `stopped` (with %d for the step) goes to `log`.
    """
    cfg, d, state = run.cfg, run.d, run.state
    per_step = cfg.batch * cfg.grad_accum * d.world
    publisher = BackgroundPublisher(publish if d.main else None)
    meter, history, last_ckpt = Meter(), [], None
    bar = progress_bar(cfg.steps, state.step, cfg.progress and d.main)
    finished = False
    try:
        while state.step < cfg.steps:
            for micro in range(cfg.grad_accum):
                loss, samples = micro_step(next(run.batches), state.step, micro)
                meter.add(loss, samples)
            optimizer_step(state, cfg.clip, cfg.ema, per_step, cfg.lr, cfg.warmup)
            bar.update(1)

            stopping = any_rank_stopping(stop, d)
            if cfg.logs_at(state.step, stopping):
                metrics: dict[str, Any] = dict(meter.read())
                meter.reset()
                postfix = log_point(metrics)
                history.append(dict(metrics, step=state.step))
                bar.set_postfix(**postfix)
            if d.main and cfg.checkpoints_at(state.step, stopping):
                last_ckpt = save_training_checkpoint(
                    state, out_dir, config, publisher, cfg.keep_checkpoints, history[-1]
                )
            if stopping:
                log.info(stopped, state.step)
                break
        finished = True
    finally:
        state.train_model = state.model  # the DDP wrapper goes before its process group: its reducer uses it
        leave_group(d, finished)
        bar.close()
        publisher.close(cfg.publish_timeout)
    return TrainResult(state.step, last_ckpt, history, list(publisher.published))
