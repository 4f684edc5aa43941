"""Score a sampler on a dataset: prompt fidelity (for `shapes`) and a feature-space FID against held-out real images.

Held-out here means never in any run's training data: `shapes` items are drawn from an index range (from
`HELD_OUT_START`) that no run reaches (runs use items 0..samples-1), so the prompts are caption combinations with
new positions and sizes, and the real images FID compares against are new renderings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paris_node.data.shapes import COLOURS, SHAPES, parse_caption, render_shape, shape_params
from paris_node.errors import UsageError
from paris_node.evaluate.features import features, frechet_distance, label_accuracy, train_feature_net
from paris_node.evaluate.shapes_reader import agreement, read_images

log = logging.getLogger(__name__)

HELD_OUT_START = 1_000_000_000  # shapes items at or above this index are never training data
FEATURE_TRAIN_START = 2_000_000_000  # the feature classifier's own training images
FEATURE_TRAIN_N = 2048
FID_REAL_N = 512


def vocabulary() -> str:
    return f"colours {', '.join(COLOURS)}; shapes {', '.join(SHAPES)}; as 'a COLOUR SHAPE on a COLOUR background'"


def check_prompts(prompts: list[str]) -> list[tuple[str, str, str]]:
    """(shape, colour, background) of each prompt; UsageError listing the vocabulary for any other prompt."""
    truths = []
    for p in prompts:
        t = parse_caption(p)
        if t is None:
            raise UsageError(f"prompt {p!r} is outside the shapes vocabulary ({vocabulary()}; colours differ)")
        truths.append(t)
    return truths


def held_out_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` held-out caption combinations (distinct where possible), deterministic in `seed`."""
    out: list[str] = []
    seen: set[str] = set()
    i = HELD_OUT_START + seed * 100_000
    while len(out) < n:
        caption = render_shape(i, 8)[1]
        i += 1
        if caption in seen and i < HELD_OUT_START + seed * 100_000 + 50 * n:
            continue
        seen.add(caption)
        out.append(caption)
    return out


def real_images(start: int, n: int, resolution: int) -> tuple[np.ndarray, list[str]]:
    items = [render_shape(i, resolution) for i in range(start, start + n)]
    return np.stack([np.asarray(img) for img, _ in items]), [c for _, c in items]


def reader_accuracy(resolution: int, n: int = 500) -> dict[str, float]:
    """The reader's accuracy per attribute on `n` held-out real images at `resolution` (goal >= 0.98)."""
    idx = range(HELD_OUT_START + 900_000, HELD_OUT_START + 900_000 + n)
    images = np.stack([np.asarray(render_shape(i, resolution)[0]) for i in idx])
    return agreement(read_images(images), [shape_params(i)[:3] for i in idx])


@dataclass
class FeatureSpace:
    """The FID feature classifier for one dataset and resolution, with its real reference features."""

    net: Any
    real: np.ndarray
    label_accuracy: list[float]
    real_images: np.ndarray  # uint8 [N, R, R, 3]: the reference FID-Inception compares with too

    @classmethod
    def for_shapes(cls, resolution: int, cache_dir: Path | None) -> FeatureSpace:
        imgs, caps = real_images(FEATURE_TRAIN_START, FEATURE_TRAIN_N, resolution)
        net = train_feature_net(imgs, caps, cache_dir)
        ref, ref_caps = real_images(HELD_OUT_START + 500_000, FID_REAL_N, resolution)
        return cls(net, features(net, ref), label_accuracy(net, ref, ref_caps), ref)

    def fid(self, images: np.ndarray) -> float:
        return frechet_distance(features(self.net, images), self.real)


@dataclass
class Score:
    """One strategy's scores: fidelity per attribute (None without a reader) and feature FID."""

    strategy: str
    n: int
    fidelity: dict[str, float] | None
    fid: float | None
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "n": self.n,
            "fidelity": self.fidelity,
            "fid": self.fid,
            "seconds": round(self.seconds, 2),
            **self.extra,
        }


def score_images(
    strategy: str,
    images: np.ndarray,
    prompts: list[str],
    space: FeatureSpace | None,
    seconds: float = 0.0,
) -> Score:
    """Fidelity (when every prompt is a shapes caption) and FID (when a feature space is given) of uint8 images."""
    truths = [parse_caption(p) for p in prompts]
    fidelity = agreement(read_images(images), truths) if all(t is not None for t in truths) else None
    fid = space.fid(images) if space is not None and len(images) >= 2 else None
    return Score(strategy, len(images), fidelity, fid, seconds)
