"""Held-out scores of a checkpoint, computed the same way by the publisher and by every fetcher.

Experts: the flow-matching (or epsilon) loss on the cluster's validation shard at fixed seeds, and the loss
of the zero predictor on the very same draws. Their ratio must beat "nothing" (1.0) by the selection margin
(node/selection.py: the run's `val_loss_threshold` if below 1.0, else 0.9): random, garbage or all-zero weights
are rejected, whatever step they claim.
Router: cross-entropy on every cluster's validation shard against log K, the uniform guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paris_node.checkpoint import load_model
from paris_node.models.flow import T_SCALE, interpolate
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.training.losses import objective_of, training_losses

EVAL_SEED = 20251003  # fixed so that publisher and fetchers compute the same number


@dataclass(frozen=True)
class Score:
    loss: float
    baseline: float

    @property
    def ratio(self) -> float:
        return self.loss / self.baseline if self.baseline > 0 else math.inf


def _zero(x: torch.Tensor, *_: Any) -> torch.Tensor:
    return torch.zeros_like(x)


def _take(dataset: Any, limit: int) -> list:
    return [dataset[i] for i in range(min(len(dataset), limit))]


@torch.no_grad()
def expert_score(
    model: nn.Module,
    objective: str,
    dataset: Any,
    text_encoder: Any,
    codec: LatentCodec,
    *,
    limit: int = 64,
    batch: int = 32,
) -> Score:
    """Mean loss of `model` on up to `limit` samples of `dataset`, and of the zero predictor on the same draws."""
    model.eval()
    g = torch.Generator().manual_seed(EVAL_SEED)
    items = _take(dataset, limit)
    if not items:
        raise ValueError("validation shard is empty")
    total = base = 0.0
    for s in range(0, len(items), batch):
        chunk = items[s : s + batch]
        x0 = codec.encode(torch.stack([c[0] for c in chunk]), generator=g)  # a VAE posterior sample: seeded too
        text, mask = text_encoder.encode([c[1] for c in chunk])
        t = torch.rand(len(chunk), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        total += training_losses(model, x0, t, text, mask, objective, noise=noise)["loss"].item() * len(chunk)
        base += training_losses(_zero, x0, t, text, mask, objective, noise=noise)["loss"].item() * len(chunk)
    return Score(total / len(items), base / len(items))


def score_checkpoint(ckpt_dir: Path, val_sets: list[Any], router: bool, text_encoder: Any = None) -> Score:
    """Score the checkpoint in `ckpt_dir` (weights loaded strictly from safetensors) on its validation shard(s).

    An expert is scored on `val_sets[0]` with the text encoder its config names (or `text_encoder`, already
    built); the router on every cluster's set, index = class.
    """
    model, config = load_model(ckpt_dir)
    codec = LatentCodec(codec_spec(config["model"].get("latent", "pixels")))
    if router:
        return router_score(model, val_sets, codec)
    text = text_encoder or build_text_encoder(config["model"]["text_encoder"])
    objective = objective_of(config["model"].get("prediction", "velocity"))
    return expert_score(model, objective, val_sets[0], text, codec)


@torch.no_grad()
def router_score(router: nn.Module, datasets: list[Any], codec: LatentCodec, *, limit: int = 32) -> Score:
    """Cross-entropy of `router` on up to `limit` samples per cluster (label = cluster index) vs log K."""
    router.eval()
    g = torch.Generator().manual_seed(EVAL_SEED)
    losses, n = 0.0, 0
    for k, ds in enumerate(datasets):
        items = _take(ds, limit)
        if not items:
            continue
        x0 = codec.encode(torch.stack([c[0] for c in items]), generator=g)
        t = torch.rand(len(items), generator=g)
        x_t = interpolate(x0, torch.randn(x0.shape, generator=g), t)
        logits = router(x_t, t * T_SCALE).float()
        target = torch.full((len(items),), k, dtype=torch.long)
        losses += torch.nn.functional.cross_entropy(logits, target, reduction="sum").item()
        n += len(items)
    if n == 0:
        raise ValueError("no validation samples for the router")
    return Score(losses / n, math.log(len(datasets)))
