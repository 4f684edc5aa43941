"""Expert shards: one safetensors file per (expert, split), byte-deterministic so it has one CID.

Format `paris-node/shard/v1` (protocol/run-manifest.md):
    tensors   images   uint8 [N, 3, H, W]   RGB, the training resolution
              indices  int64 [N]            position of each sample in the dataset's order
              latents  float16 [N, C, h, w] optional: pre-computed VAE latents (already scaled)
    metadata  format "paris-node/shard/v1", captions (canonical JSON list, one per sample),
              count, resolution, and what the writer adds (dataset, expert, split, seed)
Written with the canonical writer in `tensorfile` (sorted tensors, sorted header keys), so the same
samples always give the same bytes. Loading never unpickles: the header is JSON, the tensors are
memory-mapped raw bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from paris_node.canonical import canonical_json
from paris_node.data.images import to_uint8_chw
from paris_node.data.tensorfile import NUMPY_OF, read_header, safetensors_bytes
from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write

FORMAT = "paris-node/shard/v1"


def shard_bytes(
    items: Sequence[tuple[Image.Image | np.ndarray, str]],
    indices: Sequence[int] | None = None,
    *,
    latents: np.ndarray | None = None,
    meta: dict[str, str] | None = None,
) -> bytes:
    """Encode samples as a shard. Images are PIL RGB or uint8 [3, H, W]; all the same size."""
    if not items:
        raise UsageError("a shard needs at least one sample")
    arrays = [
        to_uint8_chw(img) if isinstance(img, Image.Image) else np.asarray(img, dtype=np.uint8) for img, _ in items
    ]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3 or arrays[0].shape[0] != 3:
        raise UsageError(f"shard images must all be RGB [3, H, W] of one size, got shapes {sorted(shapes)}")
    captions = [str(c) for _, c in items]
    idx = np.arange(len(items), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.shape != (len(items),):
        raise UsageError(f"shard indices: expected {len(items)} entries, got {idx.shape}")
    tensors = {"images": np.stack(arrays), "indices": idx}
    if latents is not None:
        if len(latents) != len(items):
            raise UsageError(f"shard latents: expected {len(items)} rows, got {len(latents)}")
        tensors["latents"] = np.asarray(latents, dtype=np.float16)
    metadata = {
        **(meta or {}),
        "format": FORMAT,
        "captions": canonical_json(captions).decode(),
        "count": str(len(items)),
        "resolution": str(arrays[0].shape[1]),
    }
    return safetensors_bytes(tensors, metadata)


def write_shard(
    path: str | os.PathLike,
    items: Sequence[tuple[Image.Image | np.ndarray, str]],
    indices: Sequence[int] | None = None,
    *,
    latents: np.ndarray | None = None,
    meta: dict[str, str] | None = None,
) -> int:
    """Write a shard atomically to `path`; returns its size in bytes."""
    data = shard_bytes(items, indices, latents=latents, meta=meta)
    atomic_write(Path(path), data)
    return len(data)


class ShardDataset(Dataset):
    """A shard as a torch Dataset of `(image float [3, H, W] in [-1, 1], caption)`.

    `field="latents"` yields the pre-computed latents instead (float32). Tensors are memory-mapped,
    so opening a large shard is cheap and several DataLoader workers share the page cache.
    """

    def __init__(self, path: str | os.PathLike, field: str = "images") -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UsageError(f"shard {self.path} does not exist: fetch it first (its CID is in the run manifest)")
        with open(self.path, "rb") as f:
            head = f.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            header_bytes = head + f.read(min(size, 100 << 20))
        try:
            header, base = read_header(header_bytes)
        except ValueError as e:
            raise UsageError(f"{self.path} is not a shard: {e}") from None
        self.meta: dict[str, str] = header.pop("__metadata__", None) or {}
        if self.meta.get("format") != FORMAT:
            raise UsageError(f"{self.path} is not a {FORMAT} shard (format {self.meta.get('format')!r})")
        if field not in header:
            raise UsageError(f"shard {self.path} has no {field!r} tensor (it has {sorted(header)})")
        self.captions: list[str] = json.loads(self.meta["captions"])
        self._arrays = {name: self._map(base, info) for name, info in header.items()}
        self.field = field
        if not all(len(a) == len(self.captions) for a in self._arrays.values()):
            raise UsageError(f"shard {self.path}: tensors and captions disagree on the number of samples")

    def _map(self, base: int, info: dict) -> np.ndarray:
        dtype = NUMPY_OF[info["dtype"]].newbyteorder("<")
        start, end = info["data_offsets"]
        shape = tuple(info["shape"])
        if end - start != int(np.prod(shape)) * dtype.itemsize:
            raise UsageError(f"shard {self.path}: a tensor's byte range does not match its shape")
        if end == start:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(self.path, dtype=dtype, mode="r", offset=base + start, shape=shape)

    @property
    def images(self) -> np.ndarray:
        """uint8 [N, 3, H, W] (memory-mapped)."""
        return self._arrays["images"]

    @property
    def indices(self) -> np.ndarray:
        return self._arrays["indices"]

    @property
    def expert(self) -> int | None:
        """The cluster this shard belongs to (the router's class label), when the writer recorded it."""
        return int(self.meta["expert"]) if "expert" in self.meta else None

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        x = torch.from_numpy(np.array(self._arrays[self.field][i]))
        if self.field == "images":
            x = x.float() / 127.5 - 1.0
        else:
            x = x.float()
        return x, self.captions[i]
