"""The checkpoint sample: an expert's trainer draws fixed-prompt samples beside each checkpoint, the publisher
publishes them under the `sample` role, and the reader's check accepts what the writer wrote."""

from __future__ import annotations

import json

import pytest
import torch

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import iter_file
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.identity import Identity
from paris_node.models.presets import expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node.publish import CheckpointPublisher
from paris_node.sampling.preview import SampleRenderer, fixed_prompts, render_sample_png
from paris_node.sampling.sample_png import SAMPLE_FILE, check_sample
from paris_node.training.trainer import TrainConfig, train


class _Announcer:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a, k))


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    home, m = tiny_run
    torch.set_num_threads(1)
    text = build_text_encoder(m.text_encoder)
    codec = LatentCodec(codec_spec(m.latent_space))
    cfg = TrainConfig(steps=3, batch=8, checkpoint_every=1000, progress=False, device="cpu", ema=0.0, lr=3e-3)
    data = ShardDataset(shard_path(home, m.shards[0].train.cid))
    out = tmp_path_factory.mktemp("train")
    result = train(cfg, expert_preset(m.expert_preset, text_encoder=m.text_encoder), data, text, codec, out)
    val = ShardDataset(shard_path(home, m.shards[0].val.cid))
    return result.checkpoint, text, codec, fixed_prompts(val.captions, 3)


def test_fixed_prompts_are_the_same_each_time_and_spread():
    caps = [f"caption {i}" for i in range(10)]
    assert fixed_prompts(caps, 3) == ["caption 0", "caption 4", "caption 9"] == fixed_prompts(caps, 3)
    assert fixed_prompts(["only"], 4) == ["only"]
    assert len(fixed_prompts([], 2)) == 2


def test_the_png_is_deterministic_and_passes_the_readers_check(trained):
    ckpt, text, codec, prompts = trained
    data = render_sample_png(ckpt, prompts, text, codec, steps=4)
    assert data == render_sample_png(ckpt, prompts, text, codec, steps=4)  # fixed seed, fixed prompts
    checked = check_sample(data)
    assert checked.prompts == tuple(prompts)
    assert checked.height >= 64 and checked.width >= 64 * len(prompts)  # small resolutions are upscaled
    assert len(data) < 100_000


def test_the_publisher_publishes_it_under_the_sample_role(trained, tmp_path):
    ckpt, text, codec, prompts = trained
    renderer = SampleRenderer(prompts, text, codec, steps=4)
    store = Blockstore(tmp_path / "blocks")
    announcer = _Announcer()
    pub = CheckpointPublisher(
        store, Identity.generate(), "run", "expert/0", announcer, "unixfs-v1-2025", sample=renderer
    )
    try:
        pub(ckpt, 3, {"loss": 0.5})
    finally:
        renderer.close()
    manifest_cid = pub.history[-1][0]
    record = json.loads(b"".join(iter_file(store, manifest_cid)))
    entry = record["payload"]["files"][SAMPLE_FILE]
    assert entry["role"] == "sample"
    data = b"".join(iter_file(store, entry["cid"]))
    assert check_sample(data, entry).prompts == tuple(prompts)
    assert (ckpt / SAMPLE_FILE).read_bytes() == data


def test_a_failing_render_costs_the_sample_not_the_checkpoint(trained, tmp_path, caplog):
    ckpt, text, codec, prompts = trained
    renderer = SampleRenderer(prompts, text, codec, steps=4)
    try:
        assert renderer(tmp_path) is None  # not a checkpoint folder
    finally:
        renderer.close()
    assert "sample for" in caplog.text and not (tmp_path / SAMPLE_FILE).exists()
