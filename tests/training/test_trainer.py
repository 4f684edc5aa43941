import threading
import time

import pytest
import torch
from conftest import Squares
from safetensors.torch import load_file
from torch.utils.data import IterableDataset

from paris_node.checkpoint import load_model, load_training_state
from paris_node.errors import UsageError
from paris_node.models.presets import expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec
from paris_node.training.run_dir import latest_checkpoint
from paris_node.training.trainer import TrainConfig, train

TINY = expert_preset("tiny")


def _cfg(**kw) -> TrainConfig:
    base = dict(batch=8, lr=1e-3, ema=0.99, progress=False, device="cpu", log_every=10, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def _train(cfg, out, data=None, model_cfg=TINY, **kw):
    text = build_text_encoder(model_cfg.text_encoder)
    return train(cfg, model_cfg, data if data is not None else Squares(), text, LatentCodec("pixels"), out, **kw)


def _shapes(n: int, size: int) -> list:
    """The data layer's procedural `shapes` source, as (tensor in [-1, 1], caption) items."""
    import numpy as np

    from paris_node.data.datasets import ShapesDataset

    items = []
    for img, caption in ShapesDataset(n, size).take(n):
        arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
        items.append((arr / 127.5 - 1.0, caption))
    return items


def test_loss_falls_on_shapes(tmp_path):
    data = _shapes(64, TINY.sample_size)
    assert data[0][0].shape == (3, 16, 16) and isinstance(data[0][1], str)
    result = _train(_cfg(steps=120, log_every=20), tmp_path, data=_Stream(data))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < 0.6 * losses[0], losses
    model, config = load_model(result.checkpoint)
    assert config["step"] == 120 and config["train"]["lr"] == 1e-3 and config["model"] == TINY.to_dict()


class _Stream(IterableDataset):
    def __init__(self, items):
        self.items = items

    def __iter__(self):
        return iter(self.items)


@pytest.mark.parametrize("iterable", [False, True])
def test_resume_equals_uninterrupted(tmp_path, iterable):
    data = Squares(n=12)  # 12 samples, batch 4 x accum 2: epochs wrap mid-run
    if iterable:
        data = _Stream(data.items)
    cfg = dict(batch=4, grad_accum=2, caption_dropout=0.5, t_sampling="logit_normal", checkpoint_every=3)
    straight = _train(_cfg(steps=6, **cfg), tmp_path / "a", data)
    first = _train(_cfg(steps=3, **cfg), tmp_path / "b", data)
    assert first.step == 3
    resumed = _train(_cfg(steps=6, **cfg), tmp_path / "b", data, resume_from=tmp_path / "b")
    assert resumed.step == 6 and resumed.checkpoint.name == "step-00000006"
    ema_a, ema_b = (load_file(str(r.checkpoint / "model.safetensors")) for r in (straight, resumed))
    raw_a, raw_b = (load_training_state(r.checkpoint) for r in (straight, resumed))
    assert ema_a.keys() == ema_b.keys()
    for k in ema_a:
        assert torch.equal(ema_a[k], ema_b[k]), k
        assert torch.equal(raw_a["model"][k], raw_b["model"][k]), k
    assert raw_a["samples_seen"] == raw_b["samples_seen"] == 6 * 8
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]


def test_stop_and_publish_never_block_the_loop(tmp_path):
    """A stuck publish must not stall training; stop -> final checkpoint -> published -> return."""
    calls, first_started, release = [], threading.Event(), threading.Event()

    def publish(path, step, metrics):
        calls.append((path.name, step, metrics["loss"]))
        first_started.set()
        release.wait(60)

    stop, result = threading.Event(), {}
    cfg = _cfg(steps=100_000, batch=2, checkpoint_every=2, keep_checkpoints=1)
    worker = threading.Thread(target=lambda: result.update(r=_train(cfg, tmp_path, publish=publish, stop=stop)))
    worker.start()
    try:
        assert first_started.wait(60)
        deadline = time.monotonic() + 60
        while (latest_checkpoint(tmp_path) is None or latest_checkpoint(tmp_path).name < "step-00000008") and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert latest_checkpoint(tmp_path).name >= "step-00000008"  # training went on while publish was stuck
        assert (tmp_path / "step-00000002").is_dir()  # not pruned while the publisher reads it
        assert not (tmp_path / "step-00000004").exists()  # superseded, never published: pruned (keep 1)
    finally:
        stop.set()
        release.set()
        worker.join(60)
    assert not worker.is_alive()
    r = result["r"]
    assert r.step < 100_000 and r.checkpoint == latest_checkpoint(tmp_path) == tmp_path / f"step-{r.step:08d}"
    assert calls[0][1] == 2 and calls[-1][1] == r.step and r.published[-1] == r.step
    assert len(calls) < r.step // 2  # superseded checkpoints were skipped, not queued


def test_epsilon_expert_trains_with_the_ddpm_objective(tmp_path):
    eps_cfg = expert_preset("tiny", prediction="epsilon")
    result = _train(_cfg(steps=40, log_every=20), tmp_path, model_cfg=eps_cfg)
    assert result.history[-1]["loss"] < 0.9  # an untrained eps expert predicts 0: loss 1
    _, config = load_model(result.checkpoint)
    assert config["model"]["prediction"] == "epsilon"
    with pytest.raises(UsageError, match="does not train"):
        _train(_cfg(steps=1, objective="rectified_flow"), tmp_path / "x", model_cfg=eps_cfg)


def test_text_encoder_must_match_the_expert(tmp_path):
    with pytest.raises(UsageError, match="expects"):
        train(_cfg(steps=1), TINY, Squares(), build_text_encoder("hash:32x16"), LatentCodec("pixels"), tmp_path)
