"""A look at a run's partition: one row of sample images per expert cluster, with the cluster sizes.

So a person can see what each expert will learn before spending compute on it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from paris_node.data.runspec import RunManifest
from paris_node.data.shards import ShardDataset
from paris_node.fsutil import atomic_write

LABEL_WIDTH = 150
PAD = 4
MIN_CELL = 64


def preview_image(manifest: RunManifest, shards: list[ShardDataset], per_row: int = 8) -> Image.Image:
    """Grid image: row k = `per_row` training images of expert k, evenly spread, labelled with sizes."""
    assert len(shards) == manifest.experts
    res = manifest.resolution
    cell = res * max(1, -(-MIN_CELL // res))  # integer upscale of small images so they stay crisp
    width = LABEL_WIDTH + per_row * (cell + PAD) + PAD
    height = PAD + manifest.experts * (cell + PAD)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for k, (entry, shard) in enumerate(zip(manifest.shards, shards, strict=True)):
        top = PAD + k * (cell + PAD)
        label = f"expert {k}\n{entry.train.samples} train\n{entry.val.samples} val"
        draw.multiline_text((PAD, top + 2), label, fill=(0, 0, 0), font=font, spacing=4)
        picks = np.unique(np.linspace(0, len(shard) - 1, min(per_row, len(shard))).round().astype(int))
        for j, i in enumerate(picks):  # spread over the shard, not its first few (shards keep dataset order)
            arr = np.asarray(shard.images[i]).transpose(1, 2, 0)
            tile = Image.fromarray(np.ascontiguousarray(arr)).resize((cell, cell), Image.Resampling.NEAREST)
            canvas.paste(tile, (LABEL_WIDTH + j * (cell + PAD), top))
    return canvas


def write_preview(manifest: RunManifest, shards: list[ShardDataset], out: str | Path, per_row: int = 8) -> Path:
    """Render the grid and write it as PNG atomically."""
    buf = io.BytesIO()
    preview_image(manifest, shards, per_row).save(buf, format="PNG")
    out = Path(out)
    atomic_write(out, buf.getvalue())
    return out
