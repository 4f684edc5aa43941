"""Held-out val-loss-ratio curves of honest training, to choose the default selection margin (protocol/selection.md).

Builds a small shapes run per preset, trains one expert with the run's own training config (lr, EMA, batch)
and scores every checkpoint exactly as a fetcher does (node/evaluate.py). Prints one line per checkpoint:
preset, step, ratio. The margin must be passed by honest checkpoints early and failed by "nothing" (1.0).

    flock /tmp/cpu.lock timeout 900 python scripts/measure_val_curves.py --presets tiny,small --steps 200 --every 25
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch

from paris_node.data.manifest import RunSpec, build_run, load_run
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.home import Home
from paris_node.identity import Identity
from paris_node.models.presets import expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node.evaluate import score_checkpoint
from paris_node.training.trainer import TrainConfig, train


def curve(preset: str, steps: int, every: int, root: Path) -> list[tuple[int, float]]:
    spec = dataclasses.replace(
        RunSpec(),
        name=f"curve-{preset}",
        dataset="shapes:256",
        samples=256,
        experts=2,
        expert_preset=preset,
        router_preset=preset,
        steps=steps,
        publish_every_steps=every,
    )
    home = Home(root / preset).ensure()
    run_id, _ = build_run(spec, home, Identity.generate())
    m = load_run(home, run_id)
    k = 1
    train_set = ShardDataset(shard_path(home, m.shards[k].train.cid))
    val_set = ShardDataset(shard_path(home, m.shards[k].val.cid))
    text = build_text_encoder(m.text_encoder)
    codec = LatentCodec(codec_spec(m.latent_space))
    t = m.training
    cfg = TrainConfig(
        steps=steps,
        batch=int(t["batch"]),
        lr=float(t["lr"]),
        ema=float(t["ema"]),
        checkpoint_every=every,
        progress=False,
        device="cpu",
        seed=k,
    )
    points: list[tuple[int, float]] = []

    def publish(ckpt: Path, step: int, metrics: dict) -> None:
        s = score_checkpoint(ckpt, [val_set], router=False, text_encoder=text)
        points.append((step, s.ratio))
        print(f"{preset} step {step:5d} ratio {s.ratio:.4f}", flush=True)

    train(
        cfg,
        expert_preset(m.expert_preset, text_encoder=m.text_encoder),
        train_set,
        text,
        codec,
        root / preset / "work",
        publish,
    )
    return points


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        for preset in a.presets.split(","):
            t0 = time.monotonic()
            pts = curve(preset, a.steps, a.every, Path(tmp))
            print(
                f"{preset}: {len(pts)} checkpoints in {time.monotonic() - t0:.0f} s; max ratio after the first "
                f"{min(s for s, _ in pts)} steps: {max(r for _, r in pts):.4f}"
            )


if __name__ == "__main__":
    main()
