import dataclasses

import pytest
import torch

from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig
from paris_node.models.factory import build_expert, build_router, count_params
from paris_node.models.presets import EXPERT_PRESETS, ROUTER_PRESETS, expert_preset, router_preset


def test_xl2_expert_matches_paris_605m_on_meta():
    n = count_params(build_expert(EXPERT_PRESETS["XL/2"], device="meta"))
    assert abs(n - 605e6) / 605e6 < 0.01, n


def test_b2_sizes_on_meta():
    # PixArt B/2 (AdaLN-single + cross-attention) is smaller than DiT-B/2: see docs/models.md.
    expert = count_params(build_expert(EXPERT_PRESETS["B/2"], device="meta"))
    router = count_params(build_router(ROUTER_PRESETS["B/2"], device="meta"))
    assert 110e6 < expert < 135e6, expert
    assert abs(router - 129e6) / 129e6 < 0.01, router


def test_meta_build_allocates_no_storage():
    m = build_expert(EXPERT_PRESETS["XL/2"], device="meta")
    assert all(p.is_meta for p in m.parameters())


@pytest.mark.parametrize("prediction", ["velocity", "epsilon"])
def test_tiny_expert_forward_shape_and_zero_init(prediction):
    cfg = expert_preset("tiny", prediction=prediction)
    model = build_expert(cfg)
    x = torch.randn(2, *cfg.latent_shape)
    text = torch.randn(2, cfg.max_text_len, cfg.caption_channels)
    mask = torch.zeros(2, cfg.max_text_len, dtype=torch.bool)
    mask[:, :3] = True
    out = model(x, torch.tensor([0.0, 999.0]), text, mask)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # PixArt init: final projection starts at zero


def test_expert_output_depends_on_text_and_ignores_masked_tokens():
    cfg = expert_preset("tiny")
    torch.manual_seed(0)
    model = build_expert(cfg)
    for p in model.parameters():  # leave the zero init so conditioning is visible
        torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(1, *cfg.latent_shape), torch.tensor([500.0])
    text = torch.randn(1, cfg.max_text_len, cfg.caption_channels)
    mask = torch.zeros(1, cfg.max_text_len, dtype=torch.bool)
    mask[:, :4] = True
    base = model(x, t, text, mask)
    changed_masked = text.clone()
    changed_masked[:, 8:] += 5.0
    assert torch.allclose(model(x, t, changed_masked, mask), base, atol=1e-5)
    changed_kept = text.clone()
    changed_kept[:, :2] += 5.0
    assert not torch.allclose(model(x, t, changed_kept, mask), base, atol=1e-3)


def test_router_logits_shape_and_uniform_at_init():
    cfg = router_preset("tiny", num_experts=3)
    logits = build_router(cfg)(torch.randn(4, *cfg.latent_shape), torch.rand(4) * 1000)
    assert logits.shape == (4, 3)
    assert torch.allclose(logits.softmax(-1), torch.full((4, 3), 1 / 3))


def test_config_roundtrip_ignores_unknown_keys():
    cfg = EXPERT_PRESETS["small"]
    d = dict(cfg.to_dict(), added_by_a_newer_node=1)
    assert ExpertConfig.from_dict(d) == cfg


def test_bad_configs_raise_usage_errors():
    with pytest.raises(UsageError, match="prediction"):
        dataclasses.replace(EXPERT_PRESETS["tiny"], prediction="x0")
    with pytest.raises(UsageError, match="unknown expert preset"):
        expert_preset("huge")
    with pytest.raises(UsageError, match="num_experts"):
        router_preset("tiny", num_experts=1)
