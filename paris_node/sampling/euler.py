"""Euler sampler for rectified flow (pure tensor maths).

Flow-matching convention as in the reference: x_t = (1 - t) x0 + t eps, so t = sigma = 1 is pure noise and
t = 0 is data, and the model predicts the velocity v = eps - x0 = dx_t/dt. Integrating from sigma = 1 down to
0 therefore steps *against* v: x <- x + (sigma_next - sigma) * v with sigma_next < sigma.
"""

from __future__ import annotations

import torch
from torch import Tensor

from paris_node.errors import UsageError


def timesteps(steps: int) -> Tensor:
    """The `steps + 1` sigmas from 1 to 0, evenly spaced (float64 so the grid is exact enough to compare)."""
    if steps < 1:
        raise UsageError(f"--steps {steps}: need at least 1 sampling step")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)


def euler_step(x: Tensor, v: Tensor, sigma: float, sigma_next: float) -> Tensor:
    """One Euler step of the probability-flow ODE from `sigma` to `sigma_next`."""
    return x + (sigma_next - sigma) * v
