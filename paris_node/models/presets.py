"""Model configs and the preset registry: the expert (PixArt-alpha DiT) and the router (DiT-B/2 classifier).

A config is a frozen dataclass whose fields are exactly the constructor arguments of the model; it is written as
`config.json` beside the weights, so a checkpoint rebuilds without code guessing (the diffusers convention).
Sizes are registry entries, not flags (DiT's `DiT_models`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

import torch
from torch import nn

from paris_node.errors import UsageError

PREDICTIONS = ("velocity", "epsilon")
LATENTS = ("pixels", "sd-vae")


@dataclass(frozen=True)
class _ModelConfig:
    """What every model config shares: a DiT trunk over [in_channels, sample_size, sample_size] inputs, JSON.

    Subclasses append their own fields, so positional construction is preset, in_channels, sample_size, patch_size,
    hidden, depth, heads, then the subclass's fields (the registries below rely on this order).
    """

    preset: str
    in_channels: int
    sample_size: int
    patch_size: int
    hidden: int
    depth: int
    heads: int

    def _check_shape(self, kind: str) -> None:
        if self.hidden % self.heads or self.sample_size % self.patch_size:
            raise UsageError(f"{kind} config {self.preset!r}: hidden % heads and sample_size % patch_size must be 0")

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.sample_size, self.sample_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        """Unknown keys are ignored so a newer node's config still loads on an older one."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class ExpertConfig(_ModelConfig):
    """A PixArt-alpha style text-conditioned DiT expert.

    `sample_size` is the spatial size the model sees (pixels for "pixels", latent size for "sd-vae": 256 px -> 32).
    `prediction` is what the network outputs: "velocity" (rectified flow, Paris) or "epsilon" (DDPM, HDDM experts
    that join the ensemble through `epsilon_to_velocity`). `text_encoder` is the spec the experts were trained with;
    its dim and length must equal `caption_channels` and `max_text_len`.
    """

    caption_channels: int
    max_text_len: int
    text_encoder: str
    latent: str = "pixels"
    prediction: str = "velocity"

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise UsageError(f"expert prediction {self.prediction!r} is not one of {PREDICTIONS}")
        if self.latent not in LATENTS:
            raise UsageError(f"expert latent {self.latent!r} is not one of {LATENTS}")
        self._check_shape("expert")

    @property
    def image_size(self) -> int:
        """Pixel size of the images this expert is trained on (the SD VAE downsamples by 8)."""
        return self.sample_size * (8 if self.latent == "sd-vae" else 1)


@dataclass(frozen=True)
class RouterConfig(_ModelConfig):
    """A DiT classifier over (x_t, t): AdaLN-Zero blocks, a learned CLS token, an MLP head to K logits."""

    num_experts: int = 8
    latent: str = "pixels"

    def __post_init__(self) -> None:
        if self.num_experts < 2:
            raise UsageError(f"router needs at least 2 experts, got num_experts={self.num_experts}")
        if self.latent not in LATENTS:
            raise UsageError(f"router latent {self.latent!r} is not one of {LATENTS}")
        self._check_shape("router")


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


def build_expert(cfg: ExpertConfig, device: str | torch.device = "cpu") -> nn.Module:
    """Build an expert with fresh weights; `device="meta"` allocates nothing (parameter counts of XL/2)."""
    from paris_node.models.expert import PixArtExpert

    with torch.device(device):
        return PixArtExpert(cfg)


def build_router(cfg: RouterConfig, device: str | torch.device = "cpu") -> nn.Module:
    from paris_node.models.router import DiTRouter

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
