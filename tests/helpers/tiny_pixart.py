"""A diffusers PixArt transformer at the `tiny` expert preset's shape, saved by diffusers' own `save_pretrained`.

Shared by the checkpoint tests (import/export, seeding) and the seeded-swarm test; `tests/helpers` is on the
tests' import path (pyproject's pytest `pythonpath`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import PixArtTransformer2DModel

from paris_node.models.presets import expert_preset

TINY = expert_preset("tiny")


def save_tiny_pixart(path: Path, seed: int = 0, **overrides) -> PixArtTransformer2DModel:
    """Random weights (normal, std 0.05, seeded) at the tiny shape, `overrides` on diffusers' arguments."""
    torch.manual_seed(seed)
    args = dict(
        num_attention_heads=TINY.heads,
        attention_head_dim=TINY.hidden // TINY.heads,
        in_channels=TINY.in_channels,
        out_channels=TINY.in_channels,
        num_layers=TINY.depth,
        cross_attention_dim=TINY.hidden,
        sample_size=TINY.sample_size,
        patch_size=TINY.patch_size,
        caption_channels=TINY.caption_channels,
        use_additional_conditions=False,
    )
    net = PixArtTransformer2DModel(**{**args, **overrides})
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    net.save_pretrained(path, safe_serialization=True)
    return net


def tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items()}
