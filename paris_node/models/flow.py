"""The diffusion path every model is trained and sampled on (pure tensor maths), shared by training and sampling.

x_t = (1 - t) x0 + t eps with t in [0, 1] (t = 1 is pure noise); models are called with `T_SCALE * t`
(the [0, 1000] timestep range of DiT and PixArt). An epsilon-prediction (HDDM/DDPM-style) expert's output joins
the velocity ensemble through `epsilon_to_velocity`.
"""

from __future__ import annotations

import torch

T_SCALE = 1000.0


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps."""
    tb = _bcast(t, x0)
    return (1 - tb) * x0 + tb * noise


def epsilon_to_velocity(x_t: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor) -> torch.Tensor:
    """HDDM rule: x0_hat = (x_t - t eps_hat) / max(1 - t, 0.01), clamped to [-20, 20]; v = eps_hat - x0_hat.

    `t` is in [0, 1] (unscaled), a scalar or [B].
    """
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    tb = _bcast(t.expand(x_t.shape[0]) if t.dim() == 0 else t, x_t)
    x0_hat = ((x_t - tb * eps_hat) / torch.clamp(1 - tb, min=0.01)).clamp(-20, 20)
    return eps_hat - x0_hat
