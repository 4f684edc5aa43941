"""Pure tests for parse_routing / route with hand-built probabilities."""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from paris_node.errors import UsageError
from paris_node.sampling.routing import FULL, TOP1, TOP2, RoutingMode, parse_routing, route


@pytest.mark.parametrize(
    ("text", "k", "canonical"),
    [
        ("top1", 1, "top1"),
        ("top2", 2, "top2"),
        ("topk:3", 3, "topk:3"),
        ("topk:1", 1, "top1"),
        (" FULL ", None, "full"),
    ],
)
def test_parse_routing_accepts_the_documented_forms(text: str, k: int | None, canonical: str) -> None:
    mode = parse_routing(text)
    assert mode.k == k
    assert str(mode) == canonical
    assert parse_routing(str(mode)) == mode


@pytest.mark.parametrize("text", ["topk:0", "topk:", "topk:-1", "topk:x", "top3", "top", "all", "", "top2x"])
def test_parse_routing_rejects_anything_else_with_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="routing"):
        parse_routing(text)


def test_top1_picks_the_argmax_with_weight_one() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    assert torch.equal(route(probs, TOP1), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))


def test_top2_renormalises_the_two_largest() -> None:
    probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    expected = torch.tensor([[0.0, 0.6 / 0.9, 0.3 / 0.9], [0.5 / 0.8, 0.0, 0.3 / 0.8]])
    torch.testing.assert_close(route(probs, TOP2), expected)


def test_topk_three_of_four() -> None:
    probs = torch.tensor([[0.4, 0.1, 0.2, 0.3]])
    torch.testing.assert_close(route(probs, RoutingMode(3)), torch.tensor([[0.4, 0.0, 0.2, 0.3]]) / 0.9)


def test_full_is_the_probabilities() -> None:
    probs = torch.softmax(torch.randn(5, 4), dim=-1)
    torch.testing.assert_close(route(probs, FULL), probs)


def test_ties_go_to_the_lower_index() -> None:
    probs = torch.tensor([[0.25, 0.25, 0.25, 0.25], [0.1, 0.3, 0.3, 0.3]])
    assert torch.equal(route(probs, TOP1), torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    assert torch.equal(route(probs, TOP2), torch.tensor([[0.5, 0.5, 0, 0], [0, 0.5, 0.5, 0]]))


def test_single_expert() -> None:
    probs = torch.ones(3, 1)
    assert torch.equal(route(probs, TOP1), torch.ones(3, 1))
    assert torch.equal(route(probs, FULL), torch.ones(3, 1))
    with pytest.raises(UsageError, match="only 1"):
        route(probs, TOP2)


def test_k_larger_than_the_ensemble_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="topk:5.*only 3"):
        route(torch.full((1, 3), 1 / 3), parse_routing("topk:5"))


def test_selected_probabilities_all_zero_give_equal_weights() -> None:
    probs = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(route(probs, TOP2), torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
    torch.testing.assert_close(route(probs, FULL), torch.tensor([[1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("bad", [torch.tensor([[0.5, -0.1]]), torch.tensor([[float("nan"), 1.0]]), torch.ones(2)])
def test_invalid_probabilities_are_rejected(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        route(bad, TOP1)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.lists(st.floats(0, 1, width=32), min_size=4, max_size=4), min_size=1, max_size=5),
    k=st.integers(1, 4),
)
@example(rows=[[0.0, 0.0, 0.0, 3.1903642396975975e-40]], k=1)  # a subnormal total (CI, 2026-12-02): summed to 0.027
def test_weights_are_a_distribution_over_the_k_largest(rows: list[list[float]], k: int) -> None:
    probs = torch.tensor(rows)
    w = route(probs, RoutingMode(k))
    assert (w >= 0).all()
    torch.testing.assert_close(w.sum(dim=1), torch.ones(len(rows)))
    selected = w > 0
    assert (selected.sum(dim=1) <= k).all()
    for p_row, sel in zip(probs, selected, strict=True):
        if sel.any() and (~sel).any():
            # every selected probability is at least every unselected one
            assert p_row[sel].min() >= p_row[~sel].max()
