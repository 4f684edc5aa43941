"""Train the router p(k | x_t, t) on samples from every cluster, noised exactly as the experts noise them.

Same shape as `trainer.train`: setup -> model + EMA + optimizer (or resume) -> data -> loop -> checkpoints with a
background publish. The router is independent of the experts and can train in parallel with them. Accuracy is
reported overall and per t bucket: near 1 at small t, falling to chance (1/K) as t -> 1 where x_t is pure noise.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from paris_node.models.config import RouterConfig
from paris_node.models.factory import build_router
from paris_node.models.flow import T_SCALE, interpolate
from paris_node.models.vae import LatentCodec
from paris_node.sampling.caption_prior import CaptionPrior
from paris_node.training.data_order import batch_stream, step_generators
from paris_node.training.devices import any_rank_stopping, leave_group, setup_device
from paris_node.training.losses import sample_t
from paris_node.training.progress import Meter, progress_bar
from paris_node.training.publisher import BackgroundPublisher, Publish
from paris_node.training.state import optimizer_step, save_training_checkpoint, setup_training
from paris_node.training.trainer import TrainConfig, TrainResult, autocast_for

log = logging.getLogger(__name__)
T_BUCKETS = 5


class LabelledClusters(Dataset):
    """Concatenate per-cluster datasets (items (image, caption) or image) into (image, cluster index) items.

    The index is the position in `clusters`, which must be the expert index (the router's class = the expert).
    """

    def __init__(self, clusters: list[Any]):
        self.clusters = clusters
        self.offsets = [0]
        for c in clusters:
            self.offsets.append(self.offsets[-1] + len(c))

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, i: int):
        k = next(j for j in range(len(self.clusters)) if i < self.offsets[j + 1])
        item = self.clusters[k][i - self.offsets[k]]
        image = item[0] if isinstance(item, (tuple, list)) else item
        return image, k


def caption_prior_of(dataset: Any) -> CaptionPrior | None:
    """The caption prior of a LabelledClusters whose clusters know their captions (shards do); else None."""
    clusters = getattr(dataset, "clusters", None)
    if not clusters or not all(isinstance(getattr(c, "captions", None), list) for c in clusters):
        return None
    return CaptionPrior.from_captions([c.captions for c in clusters])


RouterResult = TrainResult  # the same record: last step, last checkpoint, logged metrics, published steps


def _bucket_accuracy(correct: torch.Tensor, count: torch.Tensor) -> list[float | None]:
    return [None if n == 0 else c / n for c, n in zip(correct.tolist(), count.tolist(), strict=True)]


def train_router(
    cfg: TrainConfig,
    router_cfg: RouterConfig,
    dataset: Any,
    codec: LatentCodec,
    out_dir: str | Path,
    publish: Publish | None = None,
    resume_from: str | Path | None = None,
    stop: threading.Event | None = None,
) -> RouterResult:
    """Train the router on `dataset` items (image [C,H,W] in [-1, 1], cluster index); see `LabelledClusters`."""
    # ---- setup
    out_dir = Path(out_dir)
    d = setup_device(cfg.device)
    torch.manual_seed(cfg.seed)

    # ---- model, EMA, optimizer (or resume)
    model = build_router(router_cfg, device="cpu").to(d.device)
    state = setup_training(model, d, cfg.lr, cfg.weight_decay, resume_from)

    # ---- data
    batches = batch_stream(dataset, cfg.batch, cfg.seed, state.samples_seen, d, cfg.num_workers)
    per_step = cfg.batch * cfg.grad_accum * d.world

    # ---- loop
    publisher = BackgroundPublisher(publish if d.main else None)
    meter, history, last_ckpt = Meter(), [], None
    correct = torch.zeros(T_BUCKETS, device=d.device)
    count = torch.zeros(T_BUCKETS, device=d.device)
    config = {"kind": "router", "model": router_cfg.to_dict(), "train": cfg.to_dict()}
    prior = caption_prior_of(dataset)
    if prior is not None:  # the router reads every cluster: it alone can count their captions
        config["caption_prior"] = prior.to_dict()
    bar = progress_bar(cfg.steps, state.step, cfg.progress and d.main)
    finished = False
    try:
        while state.step < cfg.steps:
            for micro in range(cfg.grad_accum):
                images, labels = next(batches)
                _, dev_gen = step_generators(cfg.seed, state.step, micro, d.rank, d.device)
                labels = labels.to(d.device, non_blocking=True)
                x0 = codec.encode(images.to(d.device, non_blocking=True), generator=dev_gen)
                t = sample_t(x0.shape[0], cfg.t_sampling, dev_gen, d.device)
                x_t = interpolate(x0, torch.randn(x0.shape, generator=dev_gen, device=d.device), t)
                with autocast_for(d.device, cfg.bf16):
                    logits = state.train_model(x_t, t * T_SCALE)
                    loss = F.cross_entropy(logits.float(), labels)
                (loss / cfg.grad_accum).backward()
                meter.add(loss, x0.shape[0] * d.world)
                bucket = (t * T_BUCKETS).long().clamp(max=T_BUCKETS - 1)
                hit = (logits.detach().argmax(-1) == labels).float()
                correct.index_add_(0, bucket, hit)
                count.index_add_(0, bucket, torch.ones_like(hit))
            optimizer_step(state, cfg.clip, cfg.ema, per_step, cfg.lr, cfg.warmup)
            bar.update(1)

            stopping = any_rank_stopping(stop, d)
            if cfg.logs_at(state.step, stopping):
                metrics: dict[str, Any] = dict(meter.read())
                metrics["accuracy"] = float(correct.sum().item() / max(count.sum().item(), 1))
                metrics["accuracy_by_t"] = _bucket_accuracy(correct, count)
                meter.reset()
                correct.zero_()
                count.zero_()
                history.append(dict(metrics, step=state.step))
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", acc=f"{metrics['accuracy']:.2f}")
            if d.main and cfg.checkpoints_at(state.step, stopping):
                last_ckpt = save_training_checkpoint(
                    state, out_dir, config, publisher, cfg.keep_checkpoints, history[-1]
                )
            if stopping:
                log.info("stop requested: router stopped after step %d", state.step)
                break
        finished = True
    finally:
        state.train_model = state.model  # the DDP wrapper goes before its process group: its reducer uses it
        leave_group(d, finished)
        bar.close()
        publisher.close(cfg.publish_timeout)
    return RouterResult(state.step, last_ckpt, history, list(publisher.published))
