"""Stand-in models for the sampling tests.

These are NOT the real paris-node models: they are tiny modules with the same call signatures as the experts,
router and text encoder (see paris_node/sampling/ensemble.py), built so the expected ensemble output can be
computed by hand. The real-model integration test is test_sampling_real_models.py.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from paris_node.models.flow import T_SCALE

SHAPE = (3, 4, 4)


class StandInTextEncoder:
    """Prompt -> tokens [B, 2, 3]: zeros for "" and a non-zero pattern otherwise; mask True on the first token."""

    def encode(self, prompts: list[str]) -> tuple[Tensor, Tensor]:
        tokens = torch.zeros(len(prompts), 2, 3)
        for i, p in enumerate(prompts):
            if p:
                tokens[i] = 1.0 + len(p) % 5
        mask = torch.zeros(len(prompts), 2, dtype=torch.bool)
        mask[:, 0] = True
        return tokens, mask


class ConstantExpert(nn.Module):
    """Returns `base` for the empty prompt and `base + shift` for any other: CFG gives base + s * shift.

    Records the batch size and t of every call so tests can check which rows were evaluated.
    """

    def __init__(self, base: float, shift: float = 0.0) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))  # so the sampler can infer the device
        self.base, self.shift = base, shift
        self.calls: list[tuple[int, Tensor]] = []

    def forward(self, x: Tensor, t: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        assert x.ndim == 4 and t.shape == (x.shape[0],) and text.shape[0] == x.shape[0]
        assert text_mask.dtype == torch.bool and text_mask.shape == text.shape[:2]
        self.calls.append((x.shape[0], t.clone()))
        has_text = (text.abs().sum(dim=(1, 2)) > 0).float().reshape(-1, 1, 1, 1)
        return torch.full_like(x, self.base) + self.shift * has_text


class PointMassExpert(nn.Module):
    """The exact predictor for data that is a single point x0: velocity (x_t - x0)/t, or epsilon."""

    def __init__(self, x0: Tensor, prediction: str = "velocity") -> None:
        super().__init__()
        self.register_buffer("x0", x0)
        self.prediction = prediction

    def forward(self, x: Tensor, t: Tensor, text: Tensor, text_mask: Tensor) -> Tensor:
        s = (t / T_SCALE).reshape(-1, 1, 1, 1)
        eps = (x - (1 - s) * self.x0) / s
        return eps - self.x0 if self.prediction == "velocity" else eps


class FixedRouter(nn.Module):
    """Returns the same logits at every step: [K] for every sample, or [B, K] one row per sample."""

    def __init__(self, logits: Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", logits.float())
        self.calls = 0

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        self.calls += 1
        assert t.shape == (x.shape[0],)
        if self.logits.ndim == 1:
            return self.logits.expand(x.shape[0], -1)
        assert self.logits.shape[0] == x.shape[0]
        return self.logits


class PointMixtureRouter(nn.Module):
    """The exact posterior p(k | x_t, t) for data = equal-weight point masses: x_t | k ~ N((1-t) x0_k, t^2 I)."""

    def __init__(self, centers: Tensor) -> None:
        super().__init__()
        self.register_buffer("centers", centers)  # [K, C, H, W]

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        s = (t / 1000.0).reshape(-1, 1)
        diff = x.flatten(1)[:, None, :] - (1 - s)[:, :, None] * self.centers.flatten(1)[None]
        return -(diff**2).sum(-1) / (2 * s**2)
