"""Training objectives behind one call, so the loop never changes with the objective (as in SiT / minRF).

Both objectives use the rectified-flow path x_t = (1 - t) x0 + t eps (t = 1 is pure noise) and feed the model
1000 t. `rectified_flow` regresses the velocity eps - x0 (Paris); `epsilon` regresses eps (an HDDM/DDPM-style
expert), which joins the flow ensemble through `epsilon_to_velocity`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from paris_node.errors import UsageError

OBJECTIVES = ("rectified_flow", "epsilon")
T_SAMPLING = ("uniform", "logit_normal")
T_SCALE = 1000.0


def objective_of(prediction: str) -> str:
    """The objective that trains an expert with this `prediction` ("velocity" or "epsilon")."""
    return "rectified_flow" if prediction == "velocity" else "epsilon"


def sample_t(
    batch: int,
    mode: str = "uniform",
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Training times in [0, 1]: uniform, or logit-normal (sigmoid of N(0, 1); SD3's favourite mid-t weighting)."""
    if mode == "uniform":
        return torch.rand(batch, generator=generator, device=device)
    if mode == "logit_normal":
        return torch.sigmoid(torch.randn(batch, generator=generator, device=device))
    raise UsageError(f"unknown t sampling {mode!r}; use one of {T_SAMPLING}")


def _bcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps."""
    tb = _bcast(t, x0)
    return (1 - tb) * x0 + tb * noise


def training_losses(
    model: Callable[..., torch.Tensor],
    x0: torch.Tensor,
    t: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    objective: str = "rectified_flow",
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Loss for one batch: {"loss": scalar mean, "per_sample": [B] MSE}; pass `noise` to control randomness."""
    if objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {objective!r}; use one of {OBJECTIVES}")
    if noise is None:
        noise = torch.randn_like(x0)
    x_t = interpolate(x0, noise, t)
    target = noise - x0 if objective == "rectified_flow" else noise
    pred = model(x_t, t * T_SCALE, text, text_mask)
    per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=tuple(range(1, x0.dim())))
    return {"loss": per_sample.mean(), "per_sample": per_sample}


def epsilon_to_velocity(x_t: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor) -> torch.Tensor:
    """HDDM rule: x0_hat = (x_t - t eps_hat) / max(1 - t, 0.01), clamped to [-20, 20]; v = eps_hat - x0_hat.

    `t` is in [0, 1] (unscaled), a scalar or [B].
    """
    t = torch.as_tensor(t, dtype=x_t.dtype, device=x_t.device)
    tb = _bcast(t.expand(x_t.shape[0]) if t.dim() == 0 else t, x_t)
    x0_hat = ((x_t - tb * eps_hat) / torch.clamp(1 - tb, min=0.01)).clamp(-20, 20)
    return eps_hat - x0_hat
