"""Where training runs: the device, and under torchrun (WORLD_SIZE > 1) this process's rank in the group."""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from paris_node.errors import UsageError


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # this process created the process group, so it also destroys it

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
        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{local}"
            torch.cuda.set_device(local)
        return Dist(rank, world, torch.device(device), owns)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu")
    return Dist(0, 1, torch.device(device))


def leave_group(d: Dist, finished: bool) -> None:
    """End this process's part in the group it created: after a finished loop every rank first waits for the others
    (rank 0 may still be writing the last checkpoint), then the group is destroyed here rather than at interpreter
    exit, where gloo's worker threads can abort the process ("terminate called without an active exception").
    Callers drop their DistributedDataParallel wrappers first: a wrapper freed after its group is gone can hang.
    """
    if d.world == 1 or not d.owns_group or not dist.is_initialized():
        return
    if finished:
        dist.barrier()
    gc.collect()  # wrappers still referenced only from cycles (autograd graphs) go now, while the group exists
    dist.destroy_process_group()


def any_rank_stopping(stop: threading.Event | None, d: Dist) -> bool:
    """True when a stop was asked on any rank (all ranks must leave the loop at the same step)."""
    flag = bool(stop is not None and stop.is_set())
    if d.world == 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def autocast_for(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when asked; on CPU (and with bf16 off) full precision."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
