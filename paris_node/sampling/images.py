"""Pixels -> PIL images -> a PNG (a grid when there are several), written atomically.

Latents become pixels through `paris_node.models.vae.LatentCodec.decode` (the identity for pixel-space presets).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write


def to_pil(pixels: Tensor) -> list[Image.Image]:
    """[B, C, H, W] pixels in [-1, 1] (C = 1 or 3) -> 8-bit images; values outside the range are clipped."""
    if pixels.ndim != 4 or pixels.shape[1] not in (1, 3):
        raise ValueError(f"to_pil wants [B, 1 or 3, H, W] pixels, got {tuple(pixels.shape)}")
    arr = ((pixels.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arr = arr.permute(0, 2, 3, 1).numpy()
    mode = "L" if pixels.shape[1] == 1 else "RGB"
    return [Image.fromarray(a[..., 0] if mode == "L" else a, mode=mode) for a in arr]


def make_grid(images: Sequence[Image.Image], cols: int | None = None, pad: int = 2) -> Image.Image:
    """Tile images row-major (near-square by default) with a white gap; one image comes back unchanged."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    if len(images) == 1:
        return images[0]
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    grid = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), "white")
    for i, im in enumerate(images):
        r, c = divmod(i, cols)
        grid.paste(im.convert("RGB"), (c * (w + pad), r * (h + pad)))
    return grid


def save_png(images: Sequence[Image.Image] | Image.Image, path: str | os.PathLike, cols: int | None = None) -> Path:
    """Write one image, or a grid of several, to `path` (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"--out {path}: give a .png file name")
    image = images if isinstance(images, Image.Image) else make_grid(list(images), cols)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))
    return path
