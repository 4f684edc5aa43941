from typing import Any

import torch
from conftest import Squares
from torch import nn

from paris_node.checkpoint import load_model
from paris_node.models.flow import T_SCALE, interpolate
from paris_node.models.presets import router_preset
from paris_node.models.vae import LatentCodec
from paris_node.training.router_trainer import LabelledClusters, train_router
from paris_node.training.trainer import TrainConfig


@torch.no_grad()
def evaluate_router(
    router: nn.Module,
    dataset: Any,
    codec: LatentCodec,
    buckets: int = 5,
    batch: int = 64,
    seed: int = 1234,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Accuracy and mean p(true k) of `router` on `dataset` at the centre t of each of `buckets` bins."""
    router.eval()
    g = torch.Generator().manual_seed(seed)
    items = [dataset[i] for i in range(len(dataset))]
    out: dict[str, Any] = {"t": [], "accuracy": [], "p_true": []}
    for b in range(buckets):
        t_val = (b + 0.5) / buckets
        correct, p_true, n = 0.0, 0.0, 0
        for s in range(0, len(items), batch):
            chunk = items[s : s + batch]
            x0 = codec.encode(torch.stack([c[0] for c in chunk]).to(device))
            k = torch.tensor([int(c[1]) for c in chunk], device=device)
            t = torch.full((len(chunk),), t_val, device=device)
            x_t = interpolate(x0, torch.randn(x0.shape, generator=g).to(device), t)
            p = router(x_t, t * T_SCALE).float().softmax(-1)
            correct += (p.argmax(-1) == k).sum().item()
            p_true += p.gather(1, k[:, None]).sum().item()
            n += len(chunk)
        out["t"].append(t_val)
        out["accuracy"].append(correct / n)
        out["p_true"].append(p_true / n)
    out["overall"] = sum(out["accuracy"]) / buckets
    return out


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
