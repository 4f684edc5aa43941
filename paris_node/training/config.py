"""What a training run is asked to do: `TrainConfig`, written into every checkpoint's config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from paris_node.errors import UsageError
from paris_node.training.losses import OBJECTIVES, T_SAMPLING


@dataclass
class TrainConfig:
    """Training hyper-parameters (Paris/DDM recipe by default); written into every checkpoint's config.json.

    `batch` is per process and per micro-batch: one optimizer step sees batch * grad_accum * world samples.
    `objective` None means: follow the model's prediction ("velocity" -> rectified_flow, "epsilon" -> epsilon).
    """

    steps: int = 1000
    batch: int = 16
    grad_accum: int = 1
    lr: float = 1e-4
    warmup: int = 0
    weight_decay: float = 0.0
    ema: float = 0.9999
    clip: float = 1.0
    seed: int = 0
    t_sampling: str = "uniform"
    caption_dropout: float = 0.1
    objective: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    progress: bool = True
    device: str = "auto"
    bf16: bool = True
    num_workers: int = 0
    publish_timeout: float = 300.0

    def __post_init__(self) -> None:
        if self.t_sampling not in T_SAMPLING:
            raise UsageError(f"--t-sampling {self.t_sampling!r}: use one of {T_SAMPLING}")
        if self.objective is not None and self.objective not in OBJECTIVES:
            raise UsageError(f"--objective {self.objective!r}: use one of {OBJECTIVES}")
        if min(self.steps, self.batch, self.grad_accum, self.checkpoint_every) < 1 or self.warmup < 0:
            raise UsageError("steps, batch, grad_accum and checkpoint_every must all be >= 1, warmup >= 0")

    def checkpoints_at(self, step: int, stopping: bool) -> bool:
        """Checkpoint (and publish) every `checkpoint_every` steps, after the last step and when stopping."""
        return step % self.checkpoint_every == 0 or step == self.steps or stopping

    def logs_at(self, step: int, stopping: bool) -> bool:
        """Log every `log_every` steps and at every checkpoint, whose metrics are published with it."""
        return step % self.log_every == 0 or self.checkpoints_at(step, stopping)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
