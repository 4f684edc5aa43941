"""The machinery both training loops share, kept out of the loops so they read top to bottom.

Determinism for resume: batches are drawn from a per-epoch permutation seeded by (seed, epoch) and addressed by
a global sample counter, and every random draw of a step (caption dropout, t, noise) comes from generators seeded
by (seed, step, micro-batch, rank). Resuming at step N therefore needs only N and the counter, not a saved RNG
state, and step N+1 sees exactly the data and randomness of an uninterrupted run.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, default_collate
from tqdm.auto import tqdm

from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write
from paris_node.training.checkpoint import STATE_JSON, WEIGHTS, load_training_state, save_checkpoint

log = logging.getLogger(__name__)

LATEST = "latest"
Publish = Callable[[Path, int, dict], None]


# ----------------------------------------------------------------------------- devices and DDP


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_device(device: str) -> Dist:
    """Resolve "auto"/"cpu"/"cuda[:i]"; under torchrun (WORLD_SIZE > 1) join the node-local process group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if world > 1:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(local)
        return Dist(rank, world, torch.device(device))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return Dist(0, 1, torch.device(device))


def any_rank_stopping(stop: threading.Event | None, d: Dist) -> bool:
    """True when a stop was asked on any rank (all ranks must leave the loop at the same step)."""
    flag = bool(stop is not None and stop.is_set())
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


# ----------------------------------------------------------------------------- randomness


def mix_seed(*parts: int) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def step_generators(seed: int, step: int, micro: int, rank: int, device: torch.device):
    """(cpu generator, device generator) for one micro-batch; the same on every resume."""
    s = mix_seed(seed, step, micro, rank)
    cpu = torch.Generator().manual_seed(s)
    if device.type == "cpu":
        return cpu, cpu
    return cpu, torch.Generator(device=device).manual_seed(s ^ 0x5EED)


# ----------------------------------------------------------------------------- data


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


# ----------------------------------------------------------------------------- EMA and optimizer state


def ema_decay(target: float, updates: int) -> float:
    """Warm-up: min(target, (1 + n) / (10 + n)); early checkpoints of a 0.9999 EMA are otherwise the init."""
    return min(target, (1 + updates) / (10 + updates))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - decay)


def optimizer_state_from(saved: dict[str, Any]) -> dict[str, Any]:
    """Undo JSON's string keys in a saved `optimizer.state_dict()`."""
    return {"state": {int(k): v for k, v in saved["state"].items()}, "param_groups": saved["param_groups"]}


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ----------------------------------------------------------------------------- checkpoints on disk


def step_dir(out_dir: Path, step: int) -> Path:
    return out_dir / f"step-{step:08d}"


def write_latest(out_dir: Path, ckpt: Path) -> None:
    atomic_write(out_dir / LATEST, ckpt.name + "\n")


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    p = Path(out_dir) / LATEST
    if not p.exists():
        return None
    ckpt = Path(out_dir) / p.read_text().strip()
    return ckpt if ckpt.is_dir() else None


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint directory with training state, or a run directory (its `latest`)."""
    path = Path(path)
    if (path / STATE_JSON).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is not None and (latest / STATE_JSON).exists():
        return latest
    raise UsageError(f"--resume {path}: neither a checkpoint with training state nor a run directory with one")


def prune_checkpoints(out_dir: Path, keep: int, in_use: set[Path]) -> None:
    """Delete all but the newest `keep` step directories, sparing any the publisher still reads."""
    import shutil

    dirs = sorted(p for p in out_dir.glob("step-*") if p.is_dir())
    for p in dirs[: max(0, len(dirs) - keep)]:
        if p not in in_use:
            shutil.rmtree(p, ignore_errors=True)


# ----------------------------------------------------------------------------- background publishing


class BackgroundPublisher:
    """Runs `publish(path, step, metrics)` on one worker thread so the loop never waits on the network.

    At most one call runs and one waits; a newer checkpoint replaces a waiting older one (only the newest matters
    to the swarm). A failing callback is logged and survived. `close` publishes what is pending, then joins.
    """

    def __init__(self, publish: Publish | None):
        self._fn = publish
        self._cv = threading.Condition()
        self._pending: tuple[Path, int, dict] | None = None
        self._running: Path | None = None
        self._closing = False
        self.published: list[int] = []
        self._thread = None
        if publish is not None:
            self._thread = threading.Thread(target=self._work, name="paris-publish", daemon=True)
            self._thread.start()

    def submit(self, path: Path, step: int, metrics: dict) -> None:
        if self._fn is None:
            return
        with self._cv:
            if self._pending is not None:
                log.debug("publish of step %d skipped: superseded by step %d", self._pending[1], step)
            self._pending = (path, step, metrics)
            self._cv.notify()

    def in_use(self) -> set[Path]:
        with self._cv:
            return {p for p in (self._running, self._pending and self._pending[0]) if p is not None}

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closing:
                    self._cv.wait()
                if self._pending is None:
                    return
                (path, step, metrics), self._pending = self._pending, None
                self._running = path
            try:
                self._fn(path, step, metrics)
                self.published.append(step)
            except Exception:
                log.warning("publish callback failed for step %d", step, exc_info=True)
            with self._cv:
                self._running = None

    def close(self, timeout: float) -> None:
        if self._thread is None:
            return
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("publish still running after %.0f s; leaving it in the background", timeout)


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


# ----------------------------------------------------------------------------- one run: setup, step, checkpoint


@dataclass
class TrainingState:
    """What a training loop owns and advances; saved (with the EMA as the published weights) at each checkpoint.

    `model` is the raw module: gradients are clipped, the EMA follows and checkpoints save from it. `train_model` is
    what the forward pass calls: the DDP wrapper when world > 1 (so backward all-reduces), else `model` itself.
    """

    model: nn.Module
    train_model: nn.Module
    ema: nn.Module
    opt: torch.optim.Optimizer
    step: int = 0
    samples_seen: int = 0


def setup_training(
    model: nn.Module, d: Dist, lr: float, weight_decay: float, resume_from: str | Path | None = None
) -> TrainingState:
    """EMA copy and AdamW for a freshly built `model` on d.device; restored from `resume_from` (a checkpoint or run
    directory) when given, so step N+1 continues exactly; DDP-wrapped when world > 1; left in train mode."""
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    step, samples_seen = 0, 0
    if resume_from is not None:
        ckpt = resolve_resume(resume_from)
        saved = load_training_state(ckpt)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(load_file(str(ckpt / WEIGHTS), device=str(d.device)))
        opt.load_state_dict(optimizer_state_from(saved["optimizer"]))
        step, samples_seen = int(saved["step"]), int(saved["samples_seen"])
        log.info("%s resumed from %s at step %d", type(model).__name__, ckpt, step)
    train_model = model
    if d.world > 1:
        ids = [d.device] if d.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    model.train()
    return TrainingState(model, train_model, ema, opt, step, samples_seen)


def lr_at(step: int, lr: float, warmup: int) -> float:
    """The learning rate of optimizer step `step` (0-based): linear warm-up over `warmup` steps, then constant."""
    return lr if warmup <= 0 else lr * min(1.0, (step + 1) / warmup)


def optimizer_step(
    state: TrainingState, clip: float, ema_target: float, samples: int, lr: float | None = None, warmup: int = 0
) -> None:
    """Finish a step whose micro-batches have run backward: clip (if clip > 0), step, clear grads, EMA, counters.

    With `lr` given, the step's learning rate is `lr_at(step, lr, warmup)` (a function of the step alone, so a
    resumed run follows the same schedule).
    """
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), clip)
    if lr is not None:
        for group in state.opt.param_groups:
            group["lr"] = lr_at(state.step, lr, warmup)
    state.opt.step()
    state.opt.zero_grad(set_to_none=True)
    ema_update(state.ema, state.model, ema_decay(ema_target, state.step))
    state.step += 1
    state.samples_seen += samples


def save_training_checkpoint(
    state: TrainingState,
    out_dir: Path,
    config: dict[str, Any],
    publisher: BackgroundPublisher,
    keep: int,
    metrics: dict[str, Any],
) -> Path:
    """Write `step-N` (EMA weights to publish + raw weights and optimizer to resume), point `latest` at it, hand it
    to the background publisher and prune to the newest `keep`. `config` holds kind, model and train; step is added.
    """
    train_state = {
        "step": state.step,
        "samples_seen": state.samples_seen,
        "model": unwrap(state.model).state_dict(),
        "optimizer": state.opt.state_dict(),
    }
    path = save_checkpoint(step_dir(out_dir, state.step), state.ema, dict(config, step=state.step), train_state)
    write_latest(out_dir, path)
    publisher.submit(path, state.step, dict(metrics, step=state.step))
    prune_checkpoints(out_dir, keep, publisher.in_use())
    return path
