"""Read back what a `shapes` image shows: background colour, foreground colour and shape.

Deterministic and model-free, so a score means the same on every machine and cannot be gamed by training a
judge on the generator's own outputs. The generator (`data/shapes.py`) draws one shape of one palette colour on
a plain background of another, so the reader inverts exactly that:

1. background: the palette colour nearest to most pixels of the outer ring (the generator keeps every shape
   at least 2/64 of the side away from the edge, so the ring is background but for the odd blended pixel);
2. foreground: for each other palette colour c, every pixel is explained as a blend a*c + (1-a)*bg with
   a in [0, 1]; c is the colour that leaves the smallest total residual. If the blend weights cover less than
   a third of the smallest shape the generator draws, the image shows no shape and foreground = shape = None;
3. shape: the blend map is matched by least squares against the generator's own exact coverage masks for
   every shape, radius and centre on a half-pixel grid (one matrix product per batch of images).

Accuracy on held-out real images is measured by `reader_accuracy` (and asserted in the tests).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from paris_node.data.shapes import COLOURS, GRID, R_MAX, R_MIN, SHAPES, SUBSAMPLES, coverages

PALETTE_NAMES = tuple(COLOURS)
PALETTE = np.array([COLOURS[n] for n in PALETTE_NAMES], dtype=np.float32)
MAX_TEMPLATE_ENTRIES = 12_000_000  # templates x pixels kept in memory per resolution (float32: 48 MB)


@dataclass(frozen=True)
class Reading:
    """What the reader saw; None where it saw no shape."""

    background: str
    colour: str | None
    shape: str | None


@functools.lru_cache(maxsize=4)
def _templates(resolution: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(masks [T, R*R] float32 coverage in [0,1], their squared norms [T], the shape of each template)."""
    step = max(1, GRID // (2 * resolution))  # half-pixel centres
    while True:
        shapes, masks = [], []
        for r in range(R_MIN, R_MAX + 1, max(1, step // 4)):
            centres = range(r + 2, GRID - r - 1, step)
            grid = [(cx, cy) for cy in centres for cx in centres]
            for shape in SHAPES:
                shapes += [shape] * len(grid)
                masks.append(coverages(shape, r, resolution, grid).reshape(len(grid), -1))
        if len(shapes) * resolution * resolution <= MAX_TEMPLATE_ENTRIES:
            break
        step *= 2  # very large resolutions: a coarser centre grid is still far finer than a shape
    bank = np.concatenate(masks).astype(np.float32) / (SUBSAMPLES * SUBSAMPLES)
    return bank, (bank * bank).sum(axis=1), tuple(shapes)


def _nearest(pixels: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for each pixel ([..., 3] float)."""
    d = ((pixels[..., None, :] - PALETTE) ** 2).sum(axis=-1)
    return d.argmin(axis=-1)


def _ring(img: np.ndarray) -> np.ndarray:
    return np.concatenate([img[0], img[-1], img[1:-1, 0], img[1:-1, -1]])


def _blend(img: np.ndarray, bg: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, float]:
    """(blend weight per pixel in [0, 1], total squared residual) of img as a*fg + (1-a)*bg."""
    d = fg - bg
    a = np.clip(((img - bg) @ d) / float(d @ d), 0.0, 1.0)
    resid = img - bg - a[..., None] * d
    return a, float((resid * resid).sum())


def read_images(images: np.ndarray) -> list[Reading]:
    """Read a batch of uint8 RGB images [N, R, R, 3] (or one [R, R, 3]); see the module docstring."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"expected square RGB images [N, R, R, 3], got shape {images.shape}")
    resolution = images.shape[1]
    bank, bank_norm, bank_shapes = _templates(resolution)
    min_area = float(bank.sum(axis=1).min())
    out: list[Reading | None] = [None] * len(images)
    blends, todo = [], []
    for i, raw in enumerate(images.astype(np.float32)):
        bg_idx = int(np.bincount(_nearest(_ring(raw)), minlength=len(PALETTE)).argmax())
        bg = PALETTE[bg_idx]
        best = None
        for j, fg in enumerate(PALETTE):
            if j == bg_idx:
                continue
            a, resid = _blend(raw, bg, fg)
            if best is None or resid < best[0]:
                best = (resid, j, a)
        _, fg_idx, a = best
        if a.sum() < min_area / 3:
            out[i] = Reading(PALETTE_NAMES[bg_idx], None, None)
            continue
        out[i] = Reading(PALETTE_NAMES[bg_idx], PALETTE_NAMES[fg_idx], None)
        blends.append(a.reshape(-1))
        todo.append(i)
    if todo:
        a = np.stack(blends).astype(np.float32)
        # ||a - m||^2 = ||a||^2 - 2 a.m + ||m||^2: the first term is the same for every template of an image.
        score = 2.0 * (a @ bank.T) - bank_norm[None, :]
        for i, t in zip(todo, score.argmax(axis=1).tolist(), strict=True):
            r = out[i]
            out[i] = Reading(r.background, r.colour, bank_shapes[t])
    return out  # type: ignore[return-value]


def to_uint8(pixels) -> np.ndarray:
    """Sampler output in [-1, 1] ([N, 3, R, R] tensor or array) -> uint8 [N, R, R, 3], as `to_pil` rounds it."""
    x = np.asarray(pixels.detach().cpu() if hasattr(pixels, "detach") else pixels, dtype=np.float32)
    x = np.clip((x + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return x.transpose(0, 2, 3, 1)


ATTRIBUTES = ("background", "colour", "shape")


def agreement(readings: list[Reading], truths: list[tuple[str, str, str]]) -> dict[str, float]:
    """Fraction of images whose background, colour and shape match (shape, colour, background) truths."""
    if len(readings) != len(truths) or not readings:
        raise ValueError("agreement needs one truth per reading, and at least one")
    hits = {k: 0 for k in ATTRIBUTES}
    hits["all"] = 0
    for r, (shape, colour, background) in zip(readings, truths, strict=True):
        ok = {"background": r.background == background, "colour": r.colour == colour, "shape": r.shape == shape}
        for k, v in ok.items():
            hits[k] += int(v)
        hits["all"] += int(all(ok.values()))
    return {k: v / len(readings) for k, v in hits.items()}
