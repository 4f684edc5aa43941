"""The order of a run's data and randomness, a function of (seed, step) alone so a resumed run continues exactly.

Batches are drawn from a per-epoch permutation seeded by (seed, epoch) and addressed by a global sample counter,
and every random draw of a step (caption dropout, t, noise) comes from generators seeded by (seed, step,
micro-batch, rank). Resuming at step N therefore needs only N and the counter, not a saved RNG state, and step
N+1 sees exactly the data and randomness of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, default_collate

from paris_node.errors import UsageError
from paris_node.training.devices import Dist


def mix_seed(*parts: int) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def step_generators(
    seed: int, step: int, micro: int, rank: int, device: torch.device
) -> tuple[torch.Generator, torch.Generator]:
    """(cpu generator, device generator) for one micro-batch; the same on every resume."""
    s = mix_seed(seed, step, micro, rank)
    cpu = torch.Generator().manual_seed(s)
    if device.type == "cpu":
        return cpu, cpu
    return cpu, torch.Generator(device=device).manual_seed(s ^ 0x5EED)


class _ResumableSampler(Sampler[int]):
    """Endless indices from global sample `start` on: epoch e is randperm(n) seeded by (seed, e)."""

    def __init__(self, n: int, seed: int, start: int, batch: int, rank: int, world: int):
        self.n, self.seed, self.start, self.batch, self.rank, self.world = n, seed, start, batch, rank, world

    def __iter__(self) -> Iterator[int]:
        epoch, perm = -1, None
        s = self.start
        while True:
            for j in range(self.batch):
                e, pos = divmod(s + self.rank * self.batch + j, self.n)
                if e != epoch:
                    g = torch.Generator().manual_seed(mix_seed(self.seed, e))
                    epoch, perm = e, torch.randperm(self.n, generator=g)
                yield int(perm[pos])
            s += self.batch * self.world


def _iterable_batches(dataset: Any, batch: int, start: int, rank: int, world: int) -> Iterator[Any]:
    """Cycle an iterable dataset, skipping the `start` samples already consumed (resume costs a re-read)."""
    seen, buf = 0, []
    while True:
        empty = True
        for item in dataset:
            empty = False
            if seen >= start and (seen // batch) % world == rank:
                buf.append(item)
                if len(buf) == batch:
                    yield default_collate(buf)
                    buf = []
            seen += 1
        if empty:
            raise UsageError("the training dataset is empty")


def batch_stream(dataset: Any, batch: int, seed: int, start: int, d: Dist, num_workers: int = 0) -> Iterator[Any]:
    """Endless collated batches for this rank from global sample `start`; the same order after a resume."""
    if isinstance(dataset, Dataset) and not isinstance(dataset, IterableDataset) and hasattr(dataset, "__len__"):
        n = len(dataset)
        if n == 0:
            raise UsageError("the training dataset is empty")
        sampler = _ResumableSampler(n, seed, start, batch, d.rank, d.world)
        loader = DataLoader(
            dataset,
            batch_size=batch,
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=d.device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
        return iter(loader)
    return _iterable_batches(dataset, batch, start, d.rank, d.world)
