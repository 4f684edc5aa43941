"""The preset registry: named sizes of the expert and the router (DiT's `DiT_models`), not size flags.

The configs themselves are `models/config.py`; building a model from one is `models/factory.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig, RouterConfig

CLIP_L14 = "clip:openai/clip-vit-large-patch14"

# tiny: unit tests (tens of ms per step on one CPU core). small: the CPU demo (several experts on 2 cores).
# B/2, XL/2: Paris scales, in SD-VAE latent space (256 px -> 4x32x32) with CLIP ViT-L/14 text (77x768).
EXPERT_PRESETS: dict[str, ExpertConfig] = {
    "tiny": ExpertConfig("tiny", 3, 16, 2, 64, 2, 4, 64, 16, "hash:64x16"),
    # small: the CPU demo. 16 px with patch 2 (64 tokens); see docs/models.md for the steps-to-quality evidence.
    "small": ExpertConfig("small", 3, 16, 2, 128, 4, 4, 128, 16, "hash:128x16"),
    "B/2": ExpertConfig("B/2", 4, 32, 2, 768, 12, 12, 768, 77, CLIP_L14, latent="sd-vae"),
    "XL/2": ExpertConfig("XL/2", 4, 32, 2, 1152, 28, 16, 768, 77, CLIP_L14, latent="sd-vae"),
}

ROUTER_PRESETS: dict[str, RouterConfig] = {
    "tiny": RouterConfig("tiny", 3, 16, 2, 64, 2, 4),
    # small: sized like Paris (B/2 router : XL/2 expert = 0.21x) so routing adds ~20% to an expert call.
    "small": RouterConfig("small", 3, 16, 2, 64, 3, 4),
    "B/2": RouterConfig("B/2", 4, 32, 2, 768, 12, 12, latent="sd-vae"),
}


def expert_preset(name: str, **overrides: Any) -> ExpertConfig:
    """A registry entry, optionally with fields replaced (e.g. `prediction="epsilon"`)."""
    if name not in EXPERT_PRESETS:
        raise UsageError(f"unknown expert preset {name!r}; choose one of {sorted(EXPERT_PRESETS)}")
    return dataclasses.replace(EXPERT_PRESETS[name], **overrides)


def router_preset(name: str, **overrides: Any) -> RouterConfig:
    if name not in ROUTER_PRESETS:
        raise UsageError(f"unknown router preset {name!r}; choose one of {sorted(ROUTER_PRESETS)}")
    return dataclasses.replace(ROUTER_PRESETS[name], **overrides)
