"""The caption prior: counts, scores, config round trip, bad input, and how the sampler uses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paris_node.errors import UsageError
from paris_node.sampling.caption_prior import MAX_FEATURES, CaptionPrior, features
from paris_node.sampling.ensemble import EnsembleSampler

CLUSTERS = [
    ["a red circle on a blue background", "a green ring on a blue background"],
    ["a blue circle on a red background", "a white square on a red background"],
]


def test_features_are_words_and_adjacent_pairs():
    assert features("A Red circle") == ["a", "red", "circle", "a red", "red circle"]


def test_word_pairs_tell_swapped_colours_apart():
    prior = CaptionPrior.from_captions(CLUSTERS)
    ll = prior.log_likelihood(["a red circle on a blue background", "a blue circle on a red background"])
    assert ll.shape == (2, 2)
    assert ll[0].argmax() == 0 and ll[1].argmax() == 1  # the same bag of words, opposite clusters


def test_unknown_words_change_nothing():
    prior = CaptionPrior.from_captions(CLUSTERS)
    assert torch.equal(prior.log_likelihood(["zebra"]), torch.zeros(1, 2))


def test_round_trip_and_bounded_vocabulary():
    prior = CaptionPrior.from_captions(CLUSTERS)
    assert CaptionPrior.from_dict(prior.to_dict(), 2) == prior
    big = CaptionPrior.from_captions([[f"w{i}" for i in range(MAX_FEATURES + 10)], ["x"]])
    assert len(big.vocab) == MAX_FEATURES


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(version=99),
        lambda d: d.update(counts=[[1, 2]]),
        lambda d: d.update(counts="nope"),
        lambda d: d["counts"][0].append(3),
        lambda d: d.update(totals=[-1, 2]),
        lambda d: d.pop("vocab"),
    ],
)
def test_malformed_priors_are_refused_with_the_fix(mutate):
    d = CaptionPrior.from_captions(CLUSTERS).to_dict()
    mutate(d)
    with pytest.raises(UsageError, match="fetch the router again"):
        CaptionPrior.from_dict(d, 2)


class _Const(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x, t, *rest):
        return torch.full_like(x, self.value)


class _Uniform(nn.Module):
    def forward(self, x, t):
        return torch.zeros(x.shape[0], 2)


class _Enc:
    def encode(self, prompts):
        return torch.zeros(len(prompts), 2, 4), torch.ones(len(prompts), 2, dtype=torch.bool)


def test_sampler_routes_a_blind_start_by_the_prompt():
    """With a router that knows nothing (uniform logits), top-1 follows the caption prior's cluster."""
    prior = CaptionPrior.from_captions(CLUSTERS)
    experts = {0: _Const(1.0), 1: _Const(-1.0)}
    prompts = ["a red circle on a blue background", "a blue circle on a red background"]
    kw = dict(routing="top1", cfg_scale=1.0, steps=2)
    with_prior = EnsembleSampler(experts, _Uniform(), _Enc(), (1, 2, 2), caption_prior=prior, **kw)
    _, log = with_prior.sample(prompts, seed=0, explain=True)
    assert [s.experts for s in log.steps[0].samples] == [[0], [1]]
    without = EnsembleSampler(experts, _Uniform(), _Enc(), (1, 2, 2), **kw)
    _, log = without.sample(prompts, seed=0, explain=True)
    assert [s.experts for s in log.steps[0].samples] == [[0], [0]]  # ties go to the lowest index


def test_a_prior_needs_a_router_over_as_many_experts():
    prior = CaptionPrior.from_captions(CLUSTERS + [["x"]])
    with pytest.raises(UsageError, match="3 clusters"):
        EnsembleSampler({0: _Const(1.0), 1: _Const(-1.0)}, _Uniform(), _Enc(), (1, 2, 2), caption_prior=prior)
