"""A tiny in-memory image source for training tests: coloured squares on a dark background, captioned."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset
from torch_threads import one_torch_thread  # noqa: F401  (autouse: one torch thread per test)

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "yellow": (1.0, 1.0, -1.0)}


class Squares(Dataset):
    """n images of `size` px: a square of a named colour at a seeded position; caption "a <colour> square"."""

    def __init__(self, n: int = 64, size: int = 16, colours: tuple[str, ...] = tuple(COLOURS), seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            name = colours[i % len(colours)]
            img = torch.full((3, size, size), -0.8)
            side = size // 2
            y, x = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
            img[:, y : y + side, x : x + side] = torch.tensor(COLOURS[name])[:, None, None]
            self.items.append((img, f"a {name} square"))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


@pytest.fixture
def squares() -> Squares:
    return Squares()
