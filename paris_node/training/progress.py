"""What a training loop shows while it runs: a progress bar and a running loss / throughput meter."""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm


def progress_bar(total: int, initial: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not enabled, unit="step", dynamic_ncols=True)


class Meter:
    """Running loss and throughput between log points (one host sync per log point, not per step)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.loss_sum, self.n, self.samples, self.t0 = None, 0, 0, time.perf_counter()

    def add(self, loss: torch.Tensor, samples: int) -> None:
        loss = loss.detach().float()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.n += 1
        self.samples += samples

    def read(self) -> dict[str, float]:
        dt = max(time.perf_counter() - self.t0, 1e-9)
        loss = float(self.loss_sum.item() / self.n) if self.n else float("nan")
        return {"loss": loss, "samples_per_s": self.samples / dt}
