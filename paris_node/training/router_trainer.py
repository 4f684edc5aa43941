"""Train the router p(k | x_t, t) on samples from every cluster, noised exactly as the experts noise them.

The same loop as `trainer.train` (`loop.run_loop`): setup -> model + EMA + optimizer (or resume) -> data -> loop ->
checkpoints with a background publish; this file holds what one micro-batch of the router does. The router is
independent of the experts and can train in parallel with them. Accuracy is reported overall and per t bucket: near 1
at small t, falling to chance (1/K) as t -> 1 where x_t is pure noise.
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
from paris_node.training.config import TrainConfig
from paris_node.training.data_order import step_generators
from paris_node.training.devices import autocast_for
from paris_node.training.loop import TrainResult, run_loop, start_run
from paris_node.training.losses import sample_t
from paris_node.training.publisher import Publish

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
    # ---- setup: device (and group), model + EMA + optimizer (or resume), data
    out_dir = Path(out_dir)
    run = start_run(cfg, lambda: build_router(router_cfg, device="cpu"), dataset, resume_from)
    d, state = run.d, run.state

    # ---- one micro-batch: encode, noise, classify, backward; accuracy counted per t bucket
    correct = torch.zeros(T_BUCKETS, device=d.device)
    count = torch.zeros(T_BUCKETS, device=d.device)

    def micro_step(batch: Any, step: int, micro: int) -> tuple[torch.Tensor, int]:
        images, labels = batch
        _, dev_gen = step_generators(cfg.seed, step, micro, d.rank, d.device)
        labels = labels.to(d.device, non_blocking=True)
        x0 = codec.encode(images.to(d.device, non_blocking=True), generator=dev_gen)
        t = sample_t(x0.shape[0], cfg.t_sampling, dev_gen, d.device)
        x_t = interpolate(x0, torch.randn(x0.shape, generator=dev_gen, device=d.device), t)
        with autocast_for(d.device, cfg.bf16):
            logits = state.train_model(x_t, t * T_SCALE)
            loss = F.cross_entropy(logits.float(), labels)
        (loss / cfg.grad_accum).backward()
        bucket = (t * T_BUCKETS).long().clamp(max=T_BUCKETS - 1)
        hit = (logits.detach().argmax(-1) == labels).float()
        correct.index_add_(0, bucket, hit)
        count.index_add_(0, bucket, torch.ones_like(hit))
        return loss, x0.shape[0] * d.world

    def log_point(metrics: dict[str, Any]) -> dict[str, str]:
        metrics["accuracy"] = float(correct.sum().item() / max(count.sum().item(), 1))
        metrics["accuracy_by_t"] = _bucket_accuracy(correct, count)
        correct.zero_()
        count.zero_()
        return {"loss": f"{metrics['loss']:.3f}", "acc": f"{metrics['accuracy']:.2f}"}

    # ---- loop
    config = {"kind": "router", "model": router_cfg.to_dict(), "train": cfg.to_dict()}
    prior = caption_prior_of(dataset)
    if prior is not None:  # the router reads every cluster: it alone can count their captions
        config["caption_prior"] = prior.to_dict()
    stopped = "stop requested: router stopped after step %d"
    return run_loop(
        run, out_dir, config, publish, stop, micro_step=micro_step, log_point=log_point, log=log, stopped=stopped
    )
