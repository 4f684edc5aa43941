import pytest
import torch

from paris_node.errors import UsageError
from paris_node.models.flow import epsilon_to_velocity
from paris_node.training.losses import sample_t, training_losses


def test_epsilon_to_velocity_matches_the_hddm_formula():
    g = torch.Generator().manual_seed(0)
    x_t, eps = torch.randn(64, 3, 4, 4, generator=g) * 3, torch.randn(64, 3, 4, 4, generator=g)
    t = torch.rand(64, generator=g)
    t[:4] = torch.tensor([0.0, 0.995, 1.0, 0.5])  # include the max(1 - t, 0.01) floor and the clamp
    v = epsilon_to_velocity(x_t, t, eps)
    for i in range(64):
        ti = float(t[i])
        x0 = ((x_t[i] - ti * eps[i]) / max(1 - ti, 0.01)).clamp(-20, 20)
        assert torch.allclose(v[i], eps[i] - x0, atol=1e-5)


def test_epsilon_to_velocity_is_exact_for_a_perfect_eps():
    x0, eps, t = torch.randn(8, 4), torch.randn(8, 4), torch.rand(8) * 0.9
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    assert torch.allclose(epsilon_to_velocity(x_t, t, eps), eps - x0, atol=1e-5)


def _recorder(out):
    seen = {}

    def model(x, t, text, mask):
        seen.update(x=x, t=t)
        return out(x)

    return model, seen


@pytest.mark.parametrize("objective", ["rectified_flow", "epsilon"])
def test_training_losses_path_target_and_time_scale(objective):
    x0, noise, t = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2), torch.tensor([0.0, 0.25, 0.5, 1.0])
    target = noise - x0 if objective == "rectified_flow" else noise
    model, seen = _recorder(lambda x: target)
    out = training_losses(model, x0, t, torch.zeros(4, 1, 8), torch.ones(4, 1, dtype=torch.bool), objective, noise)
    assert out["loss"].item() == 0.0
    assert torch.allclose(seen["x"], (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * noise)
    assert torch.equal(seen["t"], t * 1000)
    model, _ = _recorder(lambda x: torch.zeros_like(x))
    out = training_losses(model, x0, t, torch.zeros(4, 1, 8), torch.ones(4, 1, dtype=torch.bool), objective, noise)
    assert torch.allclose(out["per_sample"], target.pow(2).mean(dim=(1, 2, 3)))


def test_sample_t_modes():
    g = torch.Generator().manual_seed(0)
    u = sample_t(20000, "uniform", g)
    ln = sample_t(20000, "logit_normal", g)
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert 0 < ln.min() and ln.max() < 1 and abs(ln.mean() - 0.5) < 0.01
    assert ln.std() < u.std()  # logit-normal concentrates mass at mid t
    with pytest.raises(UsageError):
        sample_t(2, "cosine")
