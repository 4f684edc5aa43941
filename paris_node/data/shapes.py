"""`shapes`: a procedural dataset of coloured shapes on coloured backgrounds.

Why procedural: the built-in demo run must produce the *same bytes* on every machine (its run id
is a CID over shard bytes), it must need no download, and its captions must be checkable by code
("a red circle on a blue background"). So rendering is integer arithmetic only (no Pillow drawing,
no float rounding that could differ between CPUs or library versions): each pixel is 4x4
sub-samples tested exactly against the shape, and the coverage blends shape and background colour.
"""

from __future__ import annotations

import re

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
R_MIN, R_MAX = 14, 26  # shape radius range, in 1/GRID of the side


def shape_params(index: int, seed: int = 0) -> tuple[str, str, str, int, int, int]:
    """(shape, colour, background, cx, cy, r) of item `index`: a pure function of (seed, index)."""
    rng = np.random.Generator(np.random.PCG64([seed, index]))
    names = list(COLOURS)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    colour = names[int(rng.integers(len(names)))]
    background = [n for n in names if n != colour][int(rng.integers(len(names) - 1))]
    r = int(rng.integers(R_MIN, R_MAX + 1))
    cx = int(rng.integers(r + 2, GRID - r - 1))
    cy = int(rng.integers(r + 2, GRID - r - 1))
    return shape, colour, background, cx, cy, r


def caption_of(shape: str, colour: str, background: str) -> str:
    return f"a {colour} {shape} on a {background} background"


CAPTION = re.compile(r"a (\w+) (\w+) on a (\w+) background")


def parse_caption(caption: str) -> tuple[str, str, str] | None:
    """(shape, colour, background) of a caption in the dataset's template, None if it is not one."""
    m = CAPTION.fullmatch(caption.strip().lower())
    if not m or m.group(1) not in COLOURS or m.group(2) not in SHAPES or m.group(3) not in COLOURS:
        return None
    if m.group(1) == m.group(3):
        return None
    return m.group(2), m.group(1), m.group(3)


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


def coverage(shape: str, cx: int, cy: int, r: int, resolution: int) -> np.ndarray:
    """Per-pixel coverage of a shape, integers in [0, SUBSAMPLES**2] ([resolution, resolution] int64).

    The evaluator's shape reader matches generated images against these same exact masks.
    """
    return coverages(shape, r, resolution, [(cx, cy)])[0]


def coverages(shape: str, r: int, resolution: int, centres: list[tuple[int, int]]) -> np.ndarray:
    """`coverage` for many centres of one shape and radius: [len(centres), resolution, resolution] int64.

    When a grid unit is a whole number of sub-samples, the sub-sample mask is drawn once on a grid three
    image sides wide and each centre is a shifted window of it (identical integers, much faster).
    """
    n = resolution * SUBSAMPLES
    unit = 2 * n
    per_unit, exact = divmod(n, GRID)
    if exact or not centres:
        # Sub-sample centres at (2j+1)/(2n) of the side; scale everything by 2n*GRID to stay integral.
        coords = (2 * np.arange(n, dtype=np.int64) + 1) * GRID
        masks = [
            _inside(shape, coords[None, :] - cx * unit, coords[:, None] - cy * unit, r * unit) for cx, cy in centres
        ]
    else:
        c0 = GRID // 2
        coords = (2 * np.arange(-n, 2 * n, dtype=np.int64) + 1) * GRID
        d = coords - c0 * unit
        big = _inside(shape, d[None, :], d[:, None], r * unit).astype(np.int64)
        side = 3 * resolution - 1  # whole pixels of the wide grid at any sub-sample phase
        phases: dict[tuple[int, int], np.ndarray] = {}
        out = np.empty((len(centres), resolution, resolution), dtype=np.int64)
        for k, (cx, cy) in enumerate(centres):
            (y_pix, y_phase), (x_pix, x_phase) = (divmod(n - (c - c0) * per_unit, SUBSAMPLES) for c in (cy, cx))
            block = phases.get((y_phase, x_phase))
            if block is None:
                window = big[y_phase : y_phase + side * SUBSAMPLES, x_phase : x_phase + side * SUBSAMPLES]
                block = window.reshape(side, SUBSAMPLES, side, SUBSAMPLES).sum(axis=(1, 3))
                phases[(y_phase, x_phase)] = block
            out[k] = block[y_pix : y_pix + resolution, x_pix : x_pix + resolution]
        return out
    m = np.stack(masks).reshape(len(masks), resolution, SUBSAMPLES, resolution, SUBSAMPLES)
    return m.sum(axis=(2, 4)).astype(np.int64)


def render_shape(index: int, resolution: int, seed: int = 0) -> tuple[Image.Image, str]:
    """Render item `index` at `resolution` x `resolution`; identical bytes on every machine."""
    shape, colour, background, cx, cy, r = shape_params(index, seed)
    cover = coverage(shape, cx, cy, r, resolution)
    full = SUBSAMPLES * SUBSAMPLES
    fg = np.array(COLOURS[colour], dtype=np.int64)
    bg = np.array(COLOURS[background], dtype=np.int64)
    rgb = (bg * (full - cover[..., None]) + fg * cover[..., None] + full // 2) // full
    return Image.fromarray(rgb.astype(np.uint8)), caption_of(shape, colour, background)
