from conftest import Squares

from paris_node.models.presets import router_preset
from paris_node.models.vae import LatentCodec
from paris_node.training.checkpoint import load_model
from paris_node.training.router_trainer import LabelledClusters, evaluate_router, train_router
from paris_node.training.trainer import TrainConfig


def test_router_learns_a_two_cluster_split(tmp_path):
    data = LabelledClusters([Squares(32, colours=("red",), seed=1), Squares(32, colours=("blue",), seed=2)])
    assert len(data) == 64 and data[0][1] == 0 and data[40][1] == 1
    cfg = TrainConfig(steps=80, batch=16, lr=1e-3, ema=0.9, progress=False, device="cpu", checkpoint_every=80)
    result = train_router(cfg, router_preset("tiny", num_experts=2), data, LatentCodec("pixels"), tmp_path)
    last = result.history[-1]
    assert len(last["accuracy_by_t"]) == 5 and 0 <= last["accuracy"] <= 1
    router, config = load_model(result.checkpoint)
    assert config["kind"] == "router" and config["model"]["num_experts"] == 2
    ev = evaluate_router(router, data, LatentCodec("pixels"), buckets=10)
    assert ev["accuracy"][0] > 0.95 and ev["p_true"][0] > 0.9  # clean-ish samples: near-perfect
    assert 0.3 < ev["p_true"][-1] < 0.75  # t = 0.95, almost pure noise: near-uniform
