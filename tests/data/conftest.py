"""Fixtures for the data tests: tiny images made on the fly, never downloaded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def encode():
    """encode(img, fmt="PNG") -> bytes."""

    def _encode(img: Image.Image, fmt: str = "PNG") -> bytes:
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        return buf.getvalue()

    return _encode


@pytest.fixture
def odd_mode_images() -> dict[str, Image.Image]:
    """One image per awkward mode a real collection holds."""
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))
    rgba.paste((0, 0, 255, 255), (4, 4, 12, 12))
    palette = Image.new("RGB", (16, 16), (0, 200, 0)).convert("P", palette=Image.Palette.ADAPTIVE)
    palette_t = palette.copy()
    palette_t.info["transparency"] = 0
    grey16 = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    return {
        "rgba": rgba,
        "palette": palette,
        "palette_transparent": palette_t,
        "grey16": grey16,
        "la": Image.new("LA", (16, 16), (128, 255)),
        "cmyk": Image.new("CMYK", (16, 16), (0, 255, 255, 0)),
        "bilevel": Image.new("1", (16, 16), 1),
    }
