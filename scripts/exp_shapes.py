"""Steps-to-quality experiments on `shapes`: train one model with the real trainer, sample, read back.

    python scripts/exp_shapes.py --name base --steps 600 --eval-every 150 [--res 32 --patch 4 ...]

Appends one JSON line per evaluation to OUT/results.jsonl (config, step, seconds, fidelity). Used to choose the
demo presets (docs/models.md); not part of the product.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_quality import ImageList  # scripts/ is on sys.path when a script runs

from paris_node.data.shapes import render_shape
from paris_node.evaluate.quality import score_images
from paris_node.evaluate.shapes_reader import to_uint8
from paris_node.models.config import ExpertConfig
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec
from paris_node.sampling.loading import load_ensemble
from paris_node.training.trainer import TrainConfig, train


def evaluate(ckpt: Path, prompts: list[str], steps: int, cfg_scale: float, seed: int = 0) -> dict:
    """Prompt fidelity per attribute of one expert's samples, read back by the product's shapes reader."""
    sampler = load_ensemble({0: ckpt}, None, steps=steps, cfg_scale=cfg_scale)
    x, _ = sampler.sample(prompts, seed=seed)
    return score_images("exp", to_uint8(x), prompts, None).fidelity


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--out", type=Path, default=Path("/tmp/exp"))
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--text", default="hash:128x16")
    p.add_argument("--samples", type=int, default=2048)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--eval-every", type=int, default=150)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--t-sampling", default="uniform")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--cfg", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-eval", type=int, default=64)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = a.out / a.name
    out.mkdir(parents=True, exist_ok=True)
    data = ImageList([render_shape(i, a.res) for i in range(a.samples)])
    held = range(1_000_000, 1_000_000 + a.n_eval)
    prompts = [render_shape(i, 8)[1] for i in held]
    enc = build_text_encoder(a.text)
    mcfg = ExpertConfig("exp", 3, a.res, a.patch, a.hidden, a.depth, a.heads, enc.dim, enc.max_len, a.text)
    done, t_train = 0, 0.0
    while done < a.steps:
        target = min(a.steps, done + a.eval_every)
        cfg = TrainConfig(
            steps=target,
            batch=a.batch,
            lr=a.lr,
            warmup=a.warmup,
            ema=a.ema,
            t_sampling=a.t_sampling,
            caption_dropout=a.dropout,
            checkpoint_every=a.eval_every,
            keep_checkpoints=1,
            progress=False,
            log_every=50,
        )
        t0 = time.perf_counter()
        res = train(
            cfg, mcfg, data, enc, LatentCodec("pixels"), out / "ckpt", resume_from=out / "ckpt" if done else None
        )
        t_train += time.perf_counter() - t0
        done = res.step
        fid = evaluate(res.checkpoint, prompts, a.sample_steps, a.cfg)
        row = {
            "name": a.name,
            "step": done,
            "train_s": round(t_train, 1),
            "loss": res.history[-1]["loss"],
            **fid,
            "args": {k: str(v) for k, v in vars(a).items()},
        }
        print(
            json.dumps({k: row[k] for k in ("name", "step", "train_s", "loss", "background", "colour", "shape")}),
            flush=True,
        )
        with open(a.out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
