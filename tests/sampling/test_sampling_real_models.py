"""Integration: the sampler on the real `tiny` expert and router presets, loaded from checkpoint directories."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paris_node.checkpoint import save_checkpoint
from paris_node.errors import UsageError
from paris_node.models.factory import build_expert, build_router
from paris_node.models.presets import expert_preset, router_preset
from paris_node.models.vae import LatentCodec
from paris_node.sampling.images import save_png, to_pil
from paris_node.sampling.loading import load_ensemble


def _randomise_output(model: nn.Module, seed: int) -> nn.Module:
    """Fresh experts predict exactly zero (zero-initialised output layers); give them a non-trivial output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "proj_out" in name or "attn2.to_out" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    torch.manual_seed(0)
    dirs = {}
    for k, prediction in enumerate(["velocity", "epsilon"]):
        cfg = expert_preset("tiny", prediction=prediction)
        model = _randomise_output(build_expert(cfg), seed=k)
        dirs[k] = save_checkpoint(root / f"expert-{k}", model, {"kind": "expert", "model": cfg.to_dict()})
    rcfg = router_preset("tiny", num_experts=2)
    router_dir = save_checkpoint(root / "router", build_router(rcfg), {"kind": "router", "model": rcfg.to_dict()})
    bad_rcfg = router_preset("tiny", num_experts=3)
    bad_router = save_checkpoint(
        root / "router3", build_router(bad_rcfg), {"kind": "router", "model": bad_rcfg.to_dict()}
    )
    return dirs, router_dir, bad_router


def test_top2_ensemble_of_tiny_experts_samples_a_png(tiny_cache, tmp_path) -> None:
    dirs, router_dir, _ = tiny_cache
    sampler = load_ensemble(dirs, router_dir, routing="top2", steps=3, cfg_scale=4.0)
    assert sampler.predictions == {0: "velocity", 1: "epsilon"} and sampler.latent == "pixels"
    x, log = sampler.sample(["a red circle", "a blue square"], seed=1, n_per_prompt=2, explain=True)
    assert x.shape == (4, 3, 16, 16) and torch.isfinite(x).all()
    assert sampler.stats.expert_calls == 2 * 3  # K = 2 and top-2: both experts every step
    for step in log.steps:
        for s in step.samples:
            assert s.experts == [0, 1] and abs(sum(s.weights) - 1) < 1e-6 and min(s.weights) >= 0
    y, _ = sampler.sample(["a red circle", "a blue square"], seed=1, n_per_prompt=2)
    assert torch.equal(x, y)
    out = save_png(to_pil(LatentCodec("pixels").decode(x)), tmp_path / "grid.png")
    assert out.stat().st_size > 0


def test_top1_uses_one_expert_per_sample_per_step(tiny_cache) -> None:
    dirs, router_dir, _ = tiny_cache
    sampler = load_ensemble(dirs, router_dir, routing="top1", steps=2)
    _, log = sampler.sample(["a", "b", "c"], seed=0, explain=True)
    assert sampler.stats.expert_rows == 3 * 2
    assert all(len(s.experts) == 1 and s.weights == [1.0] for st in log.steps for s in st.samples)


def test_single_expert_without_router(tiny_cache) -> None:
    dirs, _, _ = tiny_cache
    sampler = load_ensemble({0: dirs[0]}, None, steps=2)
    x, _ = sampler.sample(["a"], seed=0)
    assert x.shape == (1, 3, 16, 16) and sampler.stats.expert_calls == 2 and sampler.stats.router_calls == 0


def test_mismatched_cache_is_a_usage_error(tiny_cache) -> None:
    dirs, router_dir, bad_router = tiny_cache
    with pytest.raises(UsageError, match="routes between 3 experts"):
        load_ensemble(dirs, bad_router)
    with pytest.raises(UsageError, match="expected 'expert'"):
        load_ensemble({0: router_dir, 1: dirs[1]}, None)
    with pytest.raises(UsageError, match="32-d tokens"):
        load_ensemble(dirs, router_dir, text_encoder_spec="hash:32x16")
    with pytest.raises(UsageError, match="no expert"):
        load_ensemble({}, router_dir)
