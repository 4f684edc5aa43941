"""Model configs: the expert (PixArt-alpha DiT) and the router (DiT-B/2 classifier), as frozen dataclasses.

A config's fields are exactly the constructor arguments of the model; it is written as `config.json` beside the
weights, so a checkpoint rebuilds without code guessing (the diffusers convention). This module is pure (no torch):
the registry of sizes is `models/presets.py`, building a model from a config is `models/factory.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from paris_node.errors import UsageError

PREDICTIONS = ("velocity", "epsilon")
LATENTS = ("pixels", "sd-vae")

_C = TypeVar("_C", bound="_ModelConfig")


@dataclass(frozen=True)
class _ModelConfig:
    """What every model config shares: a DiT trunk over [in_channels, sample_size, sample_size] inputs, JSON.

    Subclasses append their own fields, so positional construction is preset, in_channels, sample_size, patch_size,
    hidden, depth, heads, then the subclass's fields (the registries in `presets.py` rely on this order).
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
    def from_dict(cls: type[_C], d: dict[str, Any]) -> _C:
        """Unknown keys are ignored so a newer node's config still loads on an older one."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class ExpertConfig(_ModelConfig):
    """A PixArt-alpha style text-conditioned DiT expert.

    `sample_size` is the spatial size the model sees (pixels for "pixels", latent size for "sd-vae": 256 px -> 32).
    `prediction` is what the network outputs: "velocity" (rectified flow, Paris) or "epsilon" (DDPM, HDDM experts
    that join the ensemble through `models.flow.epsilon_to_velocity`). `text_encoder` is the spec the experts were
    trained with; its dim and length must equal `caption_channels` and `max_text_len`.
    """

    caption_channels: int
    max_text_len: int
    text_encoder: str
    latent: str = "pixels"
    prediction: str = "velocity"

    def __post_init__(self) -> None:
        check_prediction(self.prediction, "expert prediction")
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


def check_prediction(prediction: str, what: str) -> None:
    """UsageError unless `prediction` is one of PREDICTIONS; `what` names the value in the message."""
    if prediction not in PREDICTIONS:
        raise UsageError(f"{what} {prediction!r} is not one of {PREDICTIONS}")
