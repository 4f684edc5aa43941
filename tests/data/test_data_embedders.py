"""Embedders: the built-in colour layout, and the transformers loaders on tiny random models."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from paris_node.data.embedders import colour_layout, get_embedder
from paris_node.errors import UsageError


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (32, 32), (10 * i, 200 - 10 * i, 50)) for i in range(3)]


def test_pixels_colour_layout():
    img = Image.new("RGB", (32, 32), (255, 0, 0))
    img.paste((0, 0, 255), (16, 0, 32, 32))  # right half blue
    v = colour_layout(img).reshape(8, 8, 3)
    assert v.dtype == np.uint8 and tuple(v[0, 0]) == (255, 0, 0) and tuple(v[7, 7]) == (0, 0, 255)
    e = get_embedder("pixels").embed(_images())
    assert e.shape == (3, 192) and e.dtype == np.uint8 and tuple(e[1, :3]) == (10, 190, 50)


def test_unknown_embedders():
    with pytest.raises(UsageError, match="unknown embedder"):
        get_embedder("resnet")
    with pytest.raises(UsageError, match="needs a model"):
        get_embedder("dinov2")


@pytest.mark.slow  # the first transformers import takes seconds
def test_dinov2_tiny_random_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=28, patch_size=14
    )
    transformers.Dinov2Model(cfg).save_pretrained(tmp_path)
    transformers.BitImageProcessor(
        size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}, do_convert_rgb=True
    ).save_pretrained(tmp_path)
    e = get_embedder(f"dinov2:{tmp_path}").embed(_images())
    assert e.shape == (3, 32) and e.dtype == np.float32 and np.isfinite(e).all()
    assert not np.allclose(e[0], e[2])


def test_clip_tiny_random_model(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        projection_dim=16,
    )
    transformers.CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path)
    transformers.CLIPImageProcessor(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(
        tmp_path
    )
    e = get_embedder(f"clip:{tmp_path}").embed(_images())
    assert e.shape == (3, 16) and np.isfinite(e).all()


def test_missing_model_folder(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(UsageError, match="cannot load"):
        get_embedder(f"clip:{tmp_path / 'nothing'}")
