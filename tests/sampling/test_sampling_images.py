"""Pixels -> PNG (single image and grid), written atomically."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from paris_node.errors import UsageError
from paris_node.sampling.images import make_grid, save_png, to_pil


def test_to_pil_maps_minus_one_to_one_onto_0_255_and_clips() -> None:
    px = torch.tensor([-1.0, 0.0, 1.0, 3.0]).reshape(1, 1, 1, 4).expand(1, 3, 1, 4)
    (im,) = to_pil(px)
    assert im.mode == "RGB" and im.size == (4, 1)
    assert [im.getpixel((i, 0))[0] for i in range(4)] == [0, 128, 255, 255]
    assert to_pil(torch.zeros(2, 1, 5, 6))[1].mode == "L"
    with pytest.raises(ValueError):
        to_pil(torch.zeros(1, 4, 8, 8))


def test_grid_tiles_near_square_with_padding() -> None:
    ims = to_pil(torch.rand(5, 3, 8, 10) * 2 - 1)
    grid = make_grid(ims, pad=2)
    assert grid.size == (3 * 10 + 2 * 2, 2 * 8 + 1 * 2)  # 3 columns, 2 rows
    assert grid.getpixel((10 + 2, 8 + 2)) == ims[4].getpixel((0, 0))  # 5th image at row 1, col 1
    assert make_grid(ims[:1]) is ims[0]


def test_save_png_writes_a_grid_and_leaves_no_temp_file(tmp_path) -> None:
    ims = to_pil(torch.rand(4, 3, 8, 8) * 2 - 1)
    out = save_png(ims, tmp_path / "sub" / "out.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (2 * 8 + 2, 2 * 8 + 2)
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.png"]
    with pytest.raises(UsageError, match="png"):
        save_png(ims, tmp_path / "out.jpg")
