"""Shards: deterministic bytes, readable by the safetensors library, a torch Dataset in [-1, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from paris_node.content.cid import file_cid
from paris_node.data.shards import ShardDataset, shard_bytes, write_shard
from paris_node.errors import UsageError


def _items(n: int = 5) -> list[tuple[Image.Image, str]]:
    return [(Image.new("RGB", (8, 8), (i * 40, 255 - i * 40, 0)), f"caption {i} – ünïcode") for i in range(n)]


def test_same_items_same_bytes_same_cid(tmp_path):
    a = write_shard(tmp_path / "a.safetensors", _items(), [3, 1, 4, 1, 5], meta={"expert": "2", "split": "train"})
    b = write_shard(tmp_path / "b.safetensors", _items(), [3, 1, 4, 1, 5], meta={"split": "train", "expert": "2"})
    assert a == b
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert file_cid(tmp_path / "a.safetensors") == file_cid(tmp_path / "b.safetensors")
    other = shard_bytes(_items()[::-1])
    assert other != (tmp_path / "a.safetensors").read_bytes()


def test_reference_reader_and_dataset_agree(tmp_path):
    path = tmp_path / "s.safetensors"
    latents = np.arange(5 * 4 * 2 * 2, dtype=np.float32).reshape(5, 4, 2, 2)
    write_shard(path, _items(), latents=latents, meta={"expert": "1"})
    with safe_open(str(path), framework="pt") as f:  # the upstream reader parses our canonical writer
        assert f.get_tensor("images").shape == (5, 3, 8, 8) and f.get_tensor("images").dtype == torch.uint8
        assert f.get_tensor("latents").dtype == torch.float16
        assert f.metadata()["format"] == "paris-node/shard/v1"
    ds = ShardDataset(path)
    assert len(ds) == 5 and ds.expert == 1
    x, caption = ds[4]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32 and caption == "caption 4 – ünïcode"
    assert x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x[:, 0, 0], torch.tensor([160, 95, 0]) / 127.5 - 1)
    z, _ = ShardDataset(path, field="latents")[1]
    assert torch.equal(z, torch.from_numpy(latents[1]))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch[0].shape == (5, 3, 8, 8) and len(batch[1]) == 5


def test_bad_shards(tmp_path):
    with pytest.raises(UsageError, match="at least one"):
        write_shard(tmp_path / "empty.safetensors", [])
    assert not list(tmp_path.iterdir())  # nothing half-written
    with pytest.raises(UsageError, match="one size"):
        shard_bytes([(Image.new("RGB", (8, 8)), "a"), (Image.new("RGB", (9, 9)), "b")])
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(UsageError, match="not a shard"):
        ShardDataset(tmp_path / "junk.safetensors")
    with pytest.raises(UsageError, match="does not exist"):
        ShardDataset(tmp_path / "missing.safetensors")
    write_shard(tmp_path / "s.safetensors", _items(2))
    with pytest.raises(UsageError, match="no 'latents'"):
        ShardDataset(tmp_path / "s.safetensors", field="latents")
