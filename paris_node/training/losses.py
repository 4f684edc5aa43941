"""Training objectives behind one call, so the loop never changes with the objective (as in SiT / minRF).

Both objectives use the rectified-flow path x_t = (1 - t) x0 + t eps (t = 1 is pure noise) and feed the model
T_SCALE t (the path and the scale live in `models/flow.py`). `rectified_flow` regresses the velocity eps - x0
(Paris); `epsilon` regresses eps (an HDDM/DDPM-style expert), which joins the flow ensemble through
`models.flow.epsilon_to_velocity`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from paris_node.errors import UsageError
from paris_node.models.flow import T_SCALE, interpolate

OBJECTIVES = ("rectified_flow", "epsilon")
T_SAMPLING = ("uniform", "logit_normal")


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
