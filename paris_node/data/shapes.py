"""`shapes`: a procedural dataset of coloured shapes on coloured backgrounds.

Why procedural: the built-in demo run must produce the *same bytes* on every machine (its run id
is a CID over shard bytes), it must need no download, and its captions must be checkable by code
("a red circle on a blue background"). So rendering is integer arithmetic only (no Pillow drawing,
no float rounding that could differ between CPUs or library versions): each pixel is 4x4
sub-samples tested exactly against the shape, and the coverage blends shape and background colour.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 70),
    "blue": (40, 80, 220),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring")
SUBSAMPLES = 4  # per axis
GRID = 64  # shape centre and radius are integers in 1/64 of the image side


def shape_params(index: int, seed: int = 0) -> tuple[str, str, str, int, int, int]:
    """(shape, colour, background, cx, cy, r) of item `index`: a pure function of (seed, index)."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    names = list(COLOURS)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = names[int(rng.integers(len(names)))]
    background = [n for n in names if n != colour][int(rng.integers(len(names) - 1))]
    r = int(rng.integers(14, 27))
    cx = int(rng.integers(r + 2, GRID - r - 1))
    cy = int(rng.integers(r + 2, GRID - r - 1))
    return shape, colour, background, cx, cy, r


def caption_of(shape: str, colour: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


def _inside(shape: str, dx: np.ndarray, dy: np.ndarray, r: int) -> np.ndarray:
    """Exact integer inside-tests; dx, dy, r share one integer unit, y grows downwards."""
    ax, ay = np.abs(dx), np.abs(dy)
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return np.maximum(ax, ay) * 10 <= r * 8
    if shape == "diamond":
        return ax + ay <= r
    if shape == "cross":
        return (np.maximum(ax, ay) <= r) & (np.minimum(ax, ay) * 3 <= r)
    if shape == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 * 100 >= r * r * 36)
    if shape == "triangle":  # apex up, base at dy = r/2 ... apex at dy = -r
        return (dy * 2 <= r) & (2 * ax * 10 <= (dy + r) * 12)
    raise ValueError(f"unknown shape {shape!r}")


def render_shape(index: int, resolution: int, seed: int = 0) -> tuple[Image.Image, str]:
    """Render item `index` at `resolution` x `resolution`; identical bytes on every machine."""
    shape, colour, background, cx, cy, r = shape_params(index, seed)
    n = resolution * SUBSAMPLES
    # Sub-sample centres at (2j+1)/(2n) of the side; scale everything by 2n*GRID to stay integral.
    coords = (2 * np.arange(n, dtype=np.int64) + 1) * GRID
    unit = 2 * n
    dx = coords[None, :] - cx * unit
    dy = coords[:, None] - cy * unit
    mask = _inside(shape, dx, dy, r * unit)
    cover = mask.reshape(resolution, SUBSAMPLES, resolution, SUBSAMPLES).sum(axis=(1, 3)).astype(np.int64)
    full = SUBSAMPLES * SUBSAMPLES
    fg = np.array(COLOURS[colour], dtype=np.int64)
    bg = np.array(COLOURS[background], dtype=np.int64)
    rgb = (bg * (full - cover[..., None]) + fg * cover[..., None] + full // 2) // full
    return Image.fromarray(rgb.astype(np.uint8)), caption_of(shape, colour, background)
