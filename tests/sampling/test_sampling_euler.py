"""Euler schedule and the epsilon -> velocity rule (HDDM)."""

from __future__ import annotations

import pytest
import torch

from paris_node.errors import UsageError
from paris_node.models.flow import epsilon_to_velocity
from paris_node.sampling.euler import euler_step, timesteps


def test_timesteps_run_from_noise_to_data() -> None:
    s = timesteps(4)
    assert s.tolist() == [1.0, 0.75, 0.5, 0.25, 0.0]
    with pytest.raises(UsageError, match="steps"):
        timesteps(0)


def test_euler_integrates_a_straight_path_exactly() -> None:
    # x_t = (1-t) x0 + t eps has constant velocity eps - x0: Euler from noise lands on x0 for any step count.
    x0, eps = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    x, sig = eps.clone(), timesteps(7).tolist()
    for a, b in zip(sig[:-1], sig[1:], strict=True):
        x = euler_step(x, eps - x0, a, b)
    torch.testing.assert_close(x, x0)


def test_epsilon_to_velocity_matches_the_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x_t, eps_hat = torch.randn(6, 2, 3, 3, generator=g), torch.randn(6, 2, 3, 3, generator=g)
    t = torch.tensor([0.0, 0.2, 0.5, 0.9, 0.995, 1.0])
    v = epsilon_to_velocity(x_t, t, eps_hat)
    for i, ti in enumerate(t.tolist()):
        x0_hat = ((x_t[i] - ti * eps_hat[i]) / max(1 - ti, 0.01)).clamp(-20, 20)
        torch.testing.assert_close(v[i], eps_hat[i] - x0_hat)


def test_epsilon_to_velocity_recovers_the_true_velocity_away_from_t_1() -> None:
    x0, eps = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    t = torch.tensor([0.1, 0.3, 0.6, 0.8])
    x_t = (1 - t.reshape(-1, 1, 1, 1)) * x0 + t.reshape(-1, 1, 1, 1) * eps
    torch.testing.assert_close(epsilon_to_velocity(x_t, t, eps), eps - x0)


def test_epsilon_to_velocity_stays_finite_at_t_1() -> None:
    x_t = torch.full((1, 1, 2, 2), 5.0)
    v = epsilon_to_velocity(x_t, torch.ones(1), torch.zeros(1, 1, 2, 2))
    assert torch.equal(v, torch.full_like(x_t, -20.0))  # x0_hat = 5 / 0.01 = 500, clamped to 20
