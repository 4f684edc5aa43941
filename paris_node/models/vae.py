"""Latent codecs: what the experts and router see instead of pixels.

`pixels` is the identity on images in [-1, 1] (tiny/small presets). `sd-vae:PATH_OR_ID` is the Stable Diffusion
VAE (diffusers `AutoencoderKL`, Paris: sd-vae-ft-mse) with the SD latent scale 0.18215: 256 px -> 4x32x32.
"""

from __future__ import annotations

import torch

from paris_node.errors import UsageError

SD_VAE_SCALE = 0.18215
SD_VAE_DEFAULT = "stabilityai/sd-vae-ft-mse"


class LatentCodec:
    def __init__(self, spec: str = "pixels", device: str | torch.device = "cpu"):
        self.spec, self.device = spec, torch.device(device)
        kind, _, arg = spec.partition(":")
        self.vae = None
        if kind == "pixels" and not arg:
            self.channels, self.factor, self.scale = 3, 1, 1.0
        elif kind == "sd-vae":
            from diffusers import AutoencoderKL

            try:
                self.vae = AutoencoderKL.from_pretrained(arg or SD_VAE_DEFAULT).to(self.device).eval()
            except OSError as e:
                raise UsageError(f"latent codec {spec!r}: cannot load an AutoencoderKL from {arg!r} ({e})") from e
            self.vae.requires_grad_(False)
            self.channels = int(self.vae.config.latent_channels)
            self.factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
            self.scale = SD_VAE_SCALE
        else:
            raise UsageError(f"unknown latent codec {spec!r}; use 'pixels' or 'sd-vae:PATH_OR_ID'")

    def latent_shape(self, image_size: int) -> tuple[int, int, int]:
        return (self.channels, image_size // self.factor, image_size // self.factor)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images [B,3,H,W] in [-1, 1] -> latents; SD latents are a posterior sample (as DiT trains)."""
        if self.vae is None:
            return images
        dist = self.vae.encode(images.to(self.device, self.vae.dtype)).latent_dist
        return dist.sample(generator=generator).float() * self.scale

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images [B,3,H,W] in [-1, 1]."""
        if self.vae is None:
            return latents.clamp(-1, 1)
        out = self.vae.decode(latents.to(self.device, self.vae.dtype) / self.scale).sample
        return out.float().clamp(-1, 1)


def codec_spec(latent: str, vae_path: str | None = None) -> str:
    """The codec spec for a model config's `latent` field ("pixels" or "sd-vae") on this node."""
    return "pixels" if latent == "pixels" else f"sd-vae:{vae_path or SD_VAE_DEFAULT}"
