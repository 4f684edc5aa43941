"""Build an EnsembleSampler from checkpoint directories (the fetched cache), checking they belong together.

This is the only part of `sampling/` that reads files; it goes through `paris_node.checkpoint.load_model`
(strictly checked safetensors + JSON, never pickle), so sampling does not depend on training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paris_node.checkpoint import load_model
from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig, RouterConfig
from paris_node.models.text import build_text_encoder
from paris_node.sampling.caption_prior import CaptionPrior
from paris_node.sampling.ensemble import EnsembleSampler
from paris_node.sampling.routing import RoutingMode


def load_ensemble(
    expert_dirs: Mapping[int, str | os.PathLike],
    router_dir: str | os.PathLike | None,
    text_encoder_spec: str | None = None,
    routing: RoutingMode | str = "top2",
    cfg_scale: float = 7.5,
    steps: int = 50,
    device: str | torch.device = "cpu",
    autocast_dtype: torch.dtype | None = None,
    caption_prior: bool = True,
) -> EnsembleSampler:
    """Load experts (id -> checkpoint dir) and the router, and wire them with the experts' text encoder.

    With `caption_prior` (the default) and a router whose config carries one, routing also weighs how well the
    prompt matches each cluster's captions (`sampling/caption_prior.py`); False gives Paris's routing exactly.

    The text encoder is the spec recorded in the experts' configs unless `text_encoder_spec` overrides it (e.g.
    a local path for the same CLIP model). Every mismatch (latent shape, text encoder, router classes) is a
    UsageError naming the directory, since it means the cache mixes runs or is incomplete.
    """
    if not expert_dirs:
        raise UsageError("no expert checkpoints to sample from; run `paris-node fetch --all` first")
    experts: dict[int, nn.Module] = {}
    configs: dict[int, ExpertConfig] = {}
    for k, d in sorted(expert_dirs.items()):
        model, config = load_model(d, device=device)
        _expect_kind(config, "expert", d)
        experts[int(k)], configs[int(k)] = model, ExpertConfig.from_dict(config["model"])
    first_id, first = next(iter(configs.items()))
    for k, cfg in configs.items():
        for field in ("latent_shape", "latent", "text_encoder", "caption_channels"):
            if getattr(cfg, field) != getattr(first, field):
                raise UsageError(
                    f"expert {k} ({expert_dirs[k]}) has {field} {getattr(cfg, field)!r} but expert {first_id} has "
                    f"{getattr(first, field)!r}; the cache mixes checkpoints of different runs"
                )

    router, prior = None, None
    if router_dir is not None:
        router, rconfig = load_model(router_dir, device=device)
        _expect_kind(rconfig, "router", router_dir)
        rcfg = RouterConfig.from_dict(rconfig["model"])
        if caption_prior and rconfig.get("caption_prior") is not None:
            prior = CaptionPrior.from_dict(rconfig["caption_prior"], rcfg.num_experts)
        if rcfg.latent_shape != first.latent_shape:
            raise UsageError(
                f"router ({router_dir}) works on {rcfg.latent_shape} but the experts on {first.latent_shape}"
            )
        if rcfg.num_experts != len(experts):
            raise UsageError(
                f"router ({router_dir}) routes between {rcfg.num_experts} experts but {len(experts)} are loaded "
                f"({sorted(experts)}); fetch every expert (`paris-node fetch --all`)"
            )

    encoder = build_text_encoder(text_encoder_spec or first.text_encoder, device=device)
    if encoder.dim != first.caption_channels:
        raise UsageError(
            f"text encoder {encoder.spec!r} gives {encoder.dim}-d tokens "
            f"but the experts expect {first.caption_channels}-d (their encoder is {first.text_encoder!r})"
        )
    return EnsembleSampler(
        experts,
        router,
        encoder,
        first.latent_shape,
        routing=routing,
        cfg_scale=cfg_scale,
        steps=steps,
        predictions={k: cfg.prediction for k, cfg in configs.items()},
        device=device,
        autocast_dtype=autocast_dtype,
        latent=first.latent,
        caption_prior=prior,
    )


def _expect_kind(config: dict[str, Any], kind: str, directory: str | os.PathLike) -> None:
    if config.get("kind") != kind:
        raise UsageError(f"{Path(directory)} holds a {config.get('kind')!r} checkpoint, expected {kind!r}")
