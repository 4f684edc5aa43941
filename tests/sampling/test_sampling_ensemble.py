"""EnsembleSampler with stand-in models (see sampling_standins.py): combination maths, sparsity, CFG, HDDM."""

from __future__ import annotations

import pytest
import torch
from sampling_standins import (
    SHAPE,
    ConstantExpert,
    FixedRouter,
    PointMassExpert,
    PointMixtureRouter,
    StandInTextEncoder,
)

from paris_node.errors import UsageError
from paris_node.models.flow import epsilon_to_velocity
from paris_node.sampling.ensemble import EnsembleSampler
from paris_node.sampling.routing import parse_routing, route

BASES = [1.0, -2.0, 0.5, 3.0]
SHIFTS = [0.25, 1.0, -0.5, 0.0]
LOGITS = torch.tensor([0.3, 1.2, -0.4, 0.9])


def constant_ensemble(routing: str, router: FixedRouter | None = None, cfg: float = 7.5, steps: int = 3):
    experts = {k: ConstantExpert(b, s) for k, (b, s) in enumerate(zip(BASES, SHIFTS, strict=True))}
    sampler = EnsembleSampler(
        experts,
        router or FixedRouter(LOGITS),
        StandInTextEncoder(),
        SHAPE,
        routing=routing,
        cfg_scale=cfg,
        steps=steps,
    )
    return sampler, experts


def start_noise(batch: int, seed: int) -> torch.Tensor:
    return torch.randn((batch, *SHAPE), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("routing", ["top1", "top2", "topk:3", "full"])
def test_combined_velocity_is_the_weighted_sum_of_guided_expert_velocities(routing: str) -> None:
    # Constant velocities: the Euler path moves by exactly -v in total (the sigmas sum to 1), so x_final = x_1 - v.
    sampler, _ = constant_ensemble(routing, cfg=7.5)
    x, _ = sampler.sample(["a cat", "a dog"], seed=3)
    w = route(torch.softmax(LOGITS, -1)[None], parse_routing(routing))[0]
    guided = torch.tensor([b + 7.5 * s for b, s in zip(BASES, SHIFTS, strict=True)])
    expected_v = (w * guided).sum()
    torch.testing.assert_close(x, start_noise(2, 3) - expected_v)


def test_top1_equals_the_argmax_expert_alone() -> None:
    sampler, _ = constant_ensemble("top1")
    x, _ = sampler.sample(["x"], seed=0)
    best = int(LOGITS.argmax())
    alone = EnsembleSampler({best: ConstantExpert(BASES[best], SHIFTS[best])}, None, StandInTextEncoder(), SHAPE)
    alone.steps = sampler.steps
    y, _ = alone.sample(["x"], seed=0)
    assert torch.equal(x, y)


def test_top2_evaluates_two_experts_per_step_not_k() -> None:
    sampler, experts = constant_ensemble("top2", steps=5)
    progress: list[tuple[int, int]] = []
    sampler.sample(["a", "b", "c"], seed=1, n_per_prompt=2, on_step=lambda i, n: progress.append((i, n)))
    assert progress == [(i, 5) for i in range(1, 6)]
    assert sampler.stats.expert_calls == 2 * 5
    assert sampler.stats.expert_calls_per_step == 2.0
    assert sampler.stats.router_calls == 5
    assert sampler.stats.calls_per_expert == {0: 0, 1: 5, 2: 0, 3: 5}
    assert experts[0].calls == [] and experts[2].calls == []
    assert all(n == 2 * 6 for n, _ in experts[1].calls)  # 6 samples, cond + uncond batched in one call


def test_full_evaluates_every_expert() -> None:
    sampler, _ = constant_ensemble("full", steps=2)
    sampler.sample(["a"], seed=1)
    assert sampler.stats.expert_calls == 4 * 2


def test_each_expert_sees_only_the_rows_that_selected_it() -> None:
    per_row = torch.tensor([[5.0, 4.0, 0.0, 0.0], [0.0, 5.0, 4.0, 0.0], [5.0, 0.0, 0.0, 4.0]])
    sampler, experts = constant_ensemble("top2", router=FixedRouter(per_row), cfg=1.0, steps=2)
    x, log = sampler.sample(["a", "b", "c"], seed=7, explain=True)
    # cfg = 1: conditional only, so an expert's batch is exactly its selected rows.
    assert [n for n, _ in experts[0].calls] == [2, 2]  # rows 0 and 2
    assert [n for n, _ in experts[1].calls] == [2, 2]  # rows 0 and 1
    assert [n for n, _ in experts[2].calls] == [1, 1]  # row 1
    assert [n for n, _ in experts[3].calls] == [1, 1]  # row 2
    assert sampler.stats.expert_rows == 2 * 3 * 2  # two experts per sample per step
    w = route(torch.softmax(per_row, -1), parse_routing("top2"))
    v = (w * torch.tensor([b + s for b, s in zip(BASES, SHIFTS, strict=True)])).sum(dim=1).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(x, start_noise(3, 7) - v)
    assert [s.experts for s in log.steps[0].samples] == [[0, 1], [1, 2], [0, 3]]


def test_expert_time_is_1000_t_on_the_euler_grid() -> None:
    sampler, experts = constant_ensemble("top1", steps=4)
    sampler.sample(["a"], seed=0)
    ts = [float(t[0]) for _, t in experts[1].calls]
    assert ts == [1000.0, 750.0, 500.0, 250.0]


@pytest.mark.parametrize(("cfg", "expected_call_batch"), [(0.0, 2), (1.0, 1), (4.0, 2)])
def test_cfg_per_expert(cfg: float, expected_call_batch: int) -> None:
    expert = ConstantExpert(0.5, 2.0)
    sampler = EnsembleSampler({0: expert}, None, StandInTextEncoder(), SHAPE, cfg_scale=cfg, steps=2)
    x, _ = sampler.sample(["p"], seed=2)
    torch.testing.assert_close(x, start_noise(1, 2) - (0.5 + cfg * 2.0))
    assert [n for n, _ in expert.calls] == [expected_call_batch] * 2


def test_same_seed_same_latents_other_seed_different() -> None:
    sampler, _ = constant_ensemble("top2")
    a, _ = sampler.sample(["a", "b"], seed=11, n_per_prompt=2)
    b, _ = sampler.sample(["a", "b"], seed=11, n_per_prompt=2)
    c, _ = sampler.sample(["a", "b"], seed=12, n_per_prompt=2)
    assert a.shape == (4, *SHAPE)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # n_per_prompt images of one prompt differ


def test_perfect_experts_and_router_recover_a_two_point_mixture() -> None:
    # Data = two points; exact experts (one velocity, one epsilon/HDDM) and the exact posterior router. The full
    # ensemble is then the exact marginal flow, and every sample must land on one of the two points.
    centers = torch.stack([torch.full(SHAPE, 1.5), torch.full(SHAPE, -1.0)])
    experts = {0: PointMassExpert(centers[0], "velocity"), 1: PointMassExpert(centers[1], "epsilon")}
    for routing in ("full", "top1", "top2"):
        sampler = EnsembleSampler(
            experts,
            PointMixtureRouter(centers),
            StandInTextEncoder(),
            SHAPE,
            routing=routing,
            cfg_scale=1.0,
            steps=20,
            predictions={0: "velocity", 1: "epsilon"},
        )
        x, _ = sampler.sample(["a"], seed=5, n_per_prompt=8)
        dist = (x.flatten(1)[:, None] - centers.flatten(1)[None]).norm(dim=-1).min(dim=1).values
        assert dist.max() < 1e-3, (routing, dist)


def test_epsilon_experts_are_converted_before_guidance() -> None:
    expert = ConstantExpert(0.3, 0.0)
    sampler = EnsembleSampler(
        {0: expert}, None, StandInTextEncoder(), SHAPE, cfg_scale=1.0, steps=1, predictions={0: "epsilon"}
    )
    x, _ = sampler.sample(["p"], seed=4)
    x1 = start_noise(1, 4)
    v = epsilon_to_velocity(x1, torch.ones(1), torch.full_like(x1, 0.3))
    torch.testing.assert_close(x, x1 - v)


def test_explain_log_lists_experts_weights_and_probs() -> None:
    sampler, _ = constant_ensemble("top2", steps=3)
    _, log = sampler.sample(["a", "b"], seed=0, n_per_prompt=2, explain=True)
    assert log.routing == "top2" and log.prompts == ["a", "a", "b", "b"] and len(log.steps) == 3
    probs = torch.softmax(LOGITS, -1)
    for step in log.steps:
        assert len(step.samples) == 4
        for s in step.samples:
            assert s.experts == [1, 3]
            assert sum(s.weights) == pytest.approx(1.0) and min(s.weights) > 0
            assert s.probs == pytest.approx(probs.tolist())
    w1 = (probs[1] / (probs[1] + probs[3])).item()
    assert log.usage()[0] == {1: (3, pytest.approx(w1)), 3: (3, pytest.approx(1 - w1))}
    assert "expert 3: 3 steps" in log.summary()
    assert '"routing": "top2"' in log.to_json()
    assert sampler.sample(["a"], seed=0)[1] is None


def test_configuration_errors_are_usage_errors() -> None:
    enc = StandInTextEncoder()
    with pytest.raises(UsageError, match="no experts"):
        EnsembleSampler({}, None, enc, SHAPE)
    with pytest.raises(UsageError, match="no router"):
        EnsembleSampler({0: ConstantExpert(1), 1: ConstantExpert(2)}, None, enc, SHAPE)
    with pytest.raises(UsageError, match="fetch the missing"):
        EnsembleSampler({0: ConstantExpert(1), 2: ConstantExpert(2)}, FixedRouter(torch.zeros(2)), enc, SHAPE)
    with pytest.raises(UsageError, match="only 2"):
        EnsembleSampler(
            {0: ConstantExpert(1), 1: ConstantExpert(2)}, FixedRouter(torch.zeros(2)), enc, SHAPE, "topk:3"
        )
    with pytest.raises(UsageError, match="prediction"):
        EnsembleSampler({0: ConstantExpert(1)}, None, enc, SHAPE, predictions={0: "x0"})
    sampler = EnsembleSampler(
        {0: ConstantExpert(1), 1: ConstantExpert(2)}, FixedRouter(torch.zeros(3)), enc, SHAPE, steps=1
    )
    with pytest.raises(UsageError, match="different runs"):
        sampler.sample(["a"], seed=0)
    with pytest.raises(UsageError, match="prompt"):
        sampler.sample([], seed=0)


class _RaggedEncoder(StandInTextEncoder):
    """Stand-in whose empty-prompt encoding is shorter than a prompt's (some encoders do not pad)."""

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, mask = super().encode(prompts)
        if prompts == [""]:
            return tokens[:, :1], mask[:, :1]
        return torch.cat([tokens, tokens], dim=1), torch.cat([mask, mask], dim=1)


def test_conditional_and_empty_prompts_of_different_lengths_are_padded_and_masked() -> None:
    expert = ConstantExpert(0.5, 1.0)
    sampler = EnsembleSampler({0: expert}, None, _RaggedEncoder(), SHAPE, cfg_scale=3.0, steps=2)
    x, _ = sampler.sample(["p"], seed=0)
    torch.testing.assert_close(x, start_noise(1, 0) - (0.5 + 3.0 * 1.0))
