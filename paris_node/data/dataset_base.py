"""What every image + caption dataset shares: `(image, caption)` items, skip counting, `take`, spec paths.

The concrete datasets are in `datasets.py` (built in) and `folders.py` (image folders, webdataset tars);
`datasets.open_dataset` opens any of them by spec.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from paris_node.errors import UsageError

log = logging.getLogger(__name__)

Item = tuple[Image.Image, str]


class ImageCaptionDataset:
    """Base: iterate `(image, caption)`; `len()` is the number of candidates (streams: unknown)."""

    def __init__(self, spec: str, resolution: int, center_crop: bool = True) -> None:
        self.spec = spec
        self.resolution = resolution
        self.center_crop = center_crop
        self.skip_reasons: Counter[str] = Counter()

    @property
    def skipped(self) -> int:
        return sum(self.skip_reasons.values())

    def skip(self, reason: str, what: str) -> None:
        self.skip_reasons[reason] += 1
        log.debug("skipping %s: %s", what, reason)

    def __iter__(self) -> Iterator[Item]:
        raise NotImplementedError

    def take(self, n: int | None) -> list[Item]:
        """The first `n` good items (all when n is None); UsageError if there are none at all."""
        out: list[Item] = []
        for item in self:
            out.append(item)
            if n is not None and len(out) >= n:
                break
        if not out:
            why = ", ".join(f"{k}: {v}" for k, v in self.skip_reasons.items()) or "it holds no images"
            raise UsageError(f"dataset {self.spec!r} gave no usable image+caption pairs ({why})")
        return out


def resolve_path(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{path} does not exist: check the path in the dataset spec")
    return p
