"""Build a model from its config: the one place that maps a config class (or a `config.json` kind) to a network."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig, RouterConfig
from paris_node.models.expert import PixArtExpert
from paris_node.models.router import DiTRouter


def build_expert(cfg: ExpertConfig, device: str | torch.device = "cpu") -> nn.Module:
    """Build an expert with fresh weights; `device="meta"` allocates nothing (parameter counts of XL/2)."""
    with torch.device(device):
        return PixArtExpert(cfg)


def build_router(cfg: RouterConfig, device: str | torch.device = "cpu") -> nn.Module:
    with torch.device(device):
        return DiTRouter(cfg)


def build_model(kind: str, config: dict[str, Any], device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild from a `config.json` model section; `kind` is "expert" or "router"."""
    if kind == "expert":
        return build_expert(ExpertConfig.from_dict(config), device)
    if kind == "router":
        return build_router(RouterConfig.from_dict(config), device)
    raise UsageError(f"unknown model kind {kind!r} in config.json (expected 'expert' or 'router')")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
