"""Image + caption datasets, opened by a spec string.

    shapes[:N]          procedural coloured shapes (built in, deterministic, default N = 10000)
    emoji[:FONT]        Noto Color Emoji glyphs with their Unicode names (~3,850 images)
    imagefolder:PATH    a folder of images, captions in metadata.jsonl or sidecar .txt files
    webdataset:GLOB     LAION / img2dataset tar shards (jpg|png|webp + txt), streamed

Every dataset yields `(PIL RGB image at resolution x resolution, caption)` in a fixed order and
counts what it had to skip (`.skipped`, reasons in `.skip_reasons`): a corrupt image never stops
a run, and a dataset where *everything* was skipped fails with a message saying why.
"""

from __future__ import annotations

from collections.abc import Iterator

from paris_node.data import emoji as emoji_font
from paris_node.data.dataset_base import ImageCaptionDataset, Item
from paris_node.data.folders import ImageFolderDataset, WebDataset
from paris_node.data.shapes import render_shape
from paris_node.errors import UsageError

KINDS = ("shapes", "emoji", "imagefolder", "webdataset")
DEFAULT_SHAPES = 10_000


class ShapesDataset(ImageCaptionDataset):
    def __init__(self, count: int, resolution: int, seed: int = 0) -> None:
        super().__init__(f"shapes:{count}", resolution)
        self.count = count
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> Item:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return render_shape(i, self.resolution, self.seed)

    def __iter__(self) -> Iterator[Item]:
        return (self[i] for i in range(self.count))


class EmojiDataset(ImageCaptionDataset):
    def __init__(self, resolution: int, font: str | None = None) -> None:
        self.font = str(emoji_font.find_font(font))
        super().__init__("emoji" if font is None else f"emoji:{font}", resolution)
        self.items = emoji_font.emoji_list(self.font)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        for text, caption in self.items:
            img = emoji_font.render_emoji(text, self.resolution, self.font)
            if img is None:
                self.skip("font draws nothing", caption)
                continue
            yield img, caption


def _parse_count(kind: str, arg: str) -> int:
    try:
        n = int(arg)
    except ValueError:
        raise UsageError(f"dataset '{kind}:{arg}': expected a sample count after ':', e.g. '{kind}:2000'") from None
    if n < 1:
        raise UsageError(f"dataset '{kind}:{arg}': the sample count must be at least 1")
    return n


def open_dataset(spec: str, resolution: int, center_crop: bool = True, seed: int = 0) -> ImageCaptionDataset:
    """Open a dataset by spec (see the module docstring). UsageError names a bad spec and the fix."""
    if not isinstance(resolution, int) or resolution < 8:
        raise UsageError(f"resolution must be an integer >= 8, got {resolution!r}")
    kind, _, arg = spec.partition(":")
    if kind == "shapes":
        return ShapesDataset(_parse_count(kind, arg) if arg else DEFAULT_SHAPES, resolution, seed)
    if kind == "emoji":
        return EmojiDataset(resolution, arg or None)
    if kind in ("imagefolder", "webdataset"):
        if not arg:
            raise UsageError(f"dataset '{kind}' needs a location: '{kind}:PATH'")
        cls = ImageFolderDataset if kind == "imagefolder" else WebDataset
        return cls(arg, resolution, center_crop)
    raise UsageError(f"unknown dataset {spec!r}: use one of shapes[:N], emoji, imagefolder:PATH, webdataset:GLOB")
