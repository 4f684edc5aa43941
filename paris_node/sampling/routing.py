"""Routing: turn the router's probabilities into per-sample expert weights (pure, no I/O).

Paris combines expert velocities with the router's posterior p(k | x_t, t). Sparse routing keeps only the
k most likely experts and renormalises their probabilities, which both saves compute (unselected experts
are not evaluated) and, in the paper, gives better images than the full ensemble:

    top-k: w_i = p_i / sum_{j in topk} p_j   for i in topk, else 0
    full:  w_i = p_i
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from paris_node.errors import UsageError

ROUTING_CHOICES = "top1, top2, topk:N (N >= 1) or full"


@dataclass(frozen=True)
class RoutingMode:
    """How many experts each sample uses per step. `k=None` means all of them (the full ensemble)."""

    k: int | None

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 1:
            raise UsageError(f"routing topk:{self.k} selects no expert; use {ROUTING_CHOICES}")

    @property
    def is_full(self) -> bool:
        return self.k is None

    def experts_per_sample(self, num_experts: int) -> int:
        """The number of experts a sample uses; raises UsageError if the mode asks for more than exist."""
        if num_experts < 1:
            raise UsageError("no experts to route between; fetch at least one expert checkpoint first")
        if self.k is None:
            return num_experts
        if self.k > num_experts:
            raise UsageError(
                f"--routing {self} asks for {self.k} experts per step but the ensemble has only {num_experts}; "
                f"use --routing top{min(num_experts, 2)} or full"
            )
        return self.k

    def __str__(self) -> str:
        if self.k is None:
            return "full"
        if self.k in (1, 2):
            return f"top{self.k}"
        return f"topk:{self.k}"


TOP1 = RoutingMode(1)
TOP2 = RoutingMode(2)
FULL = RoutingMode(None)


def parse_routing(s: str) -> RoutingMode:
    """Parse a `--routing` value: "top1", "top2", "topk:N" or "full" (case and surrounding spaces ignored)."""
    text = s.strip().lower()
    if text == "full":
        return FULL
    if text == "top1":
        return TOP1
    if text == "top2":
        return TOP2
    if text.startswith("topk:"):
        n = text[len("topk:") :].strip()
        if n.isdigit():
            return RoutingMode(int(n))
    raise UsageError(f"--routing {s!r} is not understood; use {ROUTING_CHOICES}")


def route(probs: Tensor, mode: RoutingMode) -> Tensor:
    """Per-sample expert weights [B, K] from router probabilities [B, K].

    Weights are non-negative, each row sums to 1, and are zero outside the selected set. Ties at the top-k
    boundary go to the lower expert index, so the choice is deterministic. A row whose selected probabilities
    are all zero (possible only with hand-built inputs) gets equal weights over its selection.
    """
    if probs.ndim != 2:
        raise ValueError(f"route() wants probabilities of shape [B, K], got {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("route() wants finite, non-negative probabilities")
    num_experts = probs.shape[1]
    k = mode.experts_per_sample(num_experts)
    p = probs.float() if probs.dtype not in (torch.float32, torch.float64) else probs
    if k == num_experts:
        selected = torch.ones_like(p, dtype=torch.bool)
    else:
        # Stable descending sort: among equal probabilities the lower index comes first.
        order = torch.sort(p, dim=1, descending=True, stable=True).indices[:, :k]
        selected = torch.zeros_like(p, dtype=torch.bool).scatter_(1, order, True)
    kept = torch.where(selected, p, torch.zeros_like(p))
    # scaled by the row's largest kept value first: a total below the smallest normal float (a subnormal
    # probability) would otherwise be clamped and the row would not sum to 1
    peak = kept.amax(dim=1, keepdim=True)
    scaled = kept / torch.where(peak > 0, peak, torch.ones_like(peak))
    uniform = selected.to(p.dtype) / k
    return torch.where(peak > 0, scaled / scaled.sum(dim=1, keepdim=True).clamp_min(1.0), uniform)
