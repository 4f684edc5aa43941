import json

import pytest
import torch
from safetensors import safe_open

from paris_node.checkpoint import CheckpointFormatError, load_model, load_training_state, save_checkpoint
from paris_node.models.factory import build_expert, build_router
from paris_node.models.presets import expert_preset, router_preset


def _perturbed(model):
    torch.manual_seed(3)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return model


def test_expert_save_load_gives_bitwise_identical_outputs(tmp_path):
    cfg = expert_preset("tiny")
    model = _perturbed(build_expert(cfg)).eval()
    save_checkpoint(tmp_path / "ck", model, {"kind": "expert", "model": cfg.to_dict(), "step": 7})
    loaded, config = load_model(tmp_path / "ck")
    x, t = torch.randn(2, *cfg.latent_shape), torch.tensor([10.0, 900.0])
    text, mask = torch.randn(2, cfg.max_text_len, cfg.caption_channels), torch.ones(2, cfg.max_text_len, dtype=bool)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, text, mask), model(x, t, text, mask))
    assert config["step"] == 7 and config["model"]["preset"] == "tiny"


def test_router_save_load_gives_bitwise_identical_outputs(tmp_path):
    cfg = router_preset("tiny", num_experts=3)
    model = _perturbed(build_router(cfg)).eval()
    save_checkpoint(tmp_path / "r", model, {"kind": "router", "model": cfg.to_dict()})
    loaded, _ = load_model(tmp_path / "r")
    x, t = torch.randn(2, *cfg.latent_shape), torch.tensor([10.0, 900.0])
    with torch.no_grad():
        assert torch.equal(loaded(x, t), model(x, t))


def test_training_state_roundtrip_and_no_pickle(tmp_path):
    cfg = router_preset("tiny")
    model = build_router(cfg)
    state = {"step": 5, "nested": {"3": torch.arange(4), "lst": [torch.ones(2), 1.5, "x"]}, "none": None}
    save_checkpoint(tmp_path / "c", model, {"kind": "router", "model": cfg.to_dict()}, state)
    back = load_training_state(tmp_path / "c")
    assert back["step"] == 5 and back["none"] is None
    assert torch.equal(back["nested"]["3"], torch.arange(4)) and torch.equal(back["nested"]["lst"][0], torch.ones(2))
    assert back["nested"]["lst"][1:] == [1.5, "x"]
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == ["config.json", "model.safetensors", "training_state.json", "training_state.safetensors"]
    json.loads((tmp_path / "c" / "training_state.json").read_text())
    with safe_open(str(tmp_path / "c" / "training_state.safetensors"), "pt") as f:
        assert sorted(f.keys()) == ["nested.3", "nested.lst.0"]


def test_overwrite_is_atomic_and_leaves_no_temp_dirs(tmp_path):
    cfg = router_preset("tiny")
    a, b = build_router(cfg), _perturbed(build_router(cfg))
    save_checkpoint(tmp_path / "c", a, {"kind": "router", "model": cfg.to_dict()}, {"step": 1})
    save_checkpoint(tmp_path / "c", b, {"kind": "router", "model": cfg.to_dict()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    assert not (tmp_path / "c" / "training_state.json").exists()
    loaded, _ = load_model(tmp_path / "c")
    assert all(torch.equal(x, y) for x, y in zip(loaded.state_dict().values(), b.state_dict().values(), strict=True))


def test_failed_write_leaves_previous_checkpoint(tmp_path):
    cfg = router_preset("tiny")
    save_checkpoint(tmp_path / "c", build_router(cfg), {"kind": "router", "model": cfg.to_dict()})
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "c", build_router(cfg), {"kind": "router", "model": cfg.to_dict()}, {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]
    load_model(tmp_path / "c")


def test_mismatched_weights_and_missing_state_are_usage_errors(tmp_path):
    cfg = router_preset("tiny")
    save_checkpoint(tmp_path / "c", build_router(cfg), {"kind": "router", "model": cfg.to_dict()})
    with pytest.raises(CheckpointFormatError, match="training state"):
        load_training_state(tmp_path / "c")
    config = json.loads((tmp_path / "c" / "config.json").read_text())
    config["model"]["depth"] = 3
    (tmp_path / "c" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointFormatError, match="does not match"):
        load_model(tmp_path / "c")
