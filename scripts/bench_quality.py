"""Paris's comparison at equal training compute: one monolith vs K isolated experts + a router, on `shapes`.

    python scripts/bench_quality.py --quick            # a few minutes: tiny models (run by the test suite)
    python scripts/bench_quality.py                    # the demo's settings, 3 seeds (est. an hour, 2 idle cores)
    python scripts/bench_quality.py --device cuda      # the same on a GPU

(a) a monolith: one expert trained on all the data; (b) K experts, each on its own cluster of the same data (the
run's partition: pixel colour-layout k-means), plus the router. Equal compute means equal training FLOPs: the
monolith's steps x batch x FLOPs per sample equals the experts' and the router's together (FLOPs counted with
torch's FlopCounterMode on one real step of each model; the router's share is reported). Every strategy samples
the same held-out prompts from the same initial noise: monolith, top-1, top-2, full, and oracle (only the
expert of the prompt's true cluster: the cluster a held-out real image of that caption is assigned to), and
top-2 with the caption prior (`paris_node/sampling/caption_prior.py`: beyond Paris, the router's logits plus
log p(prompt | cluster) from the clusters' caption counts).

Scores (mean +- standard deviation over seeds; a seed changes model initialisation, data order and noise):
prompt fidelity per attribute read by `paris_node.evaluate.shapes_reader`, and FID in the features of the small
shapes classifier (`paris_node.evaluate.features`). Writes OUT/quality.md, OUT/quality.json, OUT/quality.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paris_node.checkpoint import load_model  # noqa: E402
from paris_node.data.embedders import get_embedder  # noqa: E402
from paris_node.data.partition import assign, partition  # noqa: E402
from paris_node.data.shapes import render_shape  # noqa: E402
from paris_node.evaluate.grid import labelled_grid  # noqa: E402
from paris_node.evaluate.quality import HELD_OUT_START, FeatureSpace, held_out_prompts, score_images  # noqa: E402
from paris_node.evaluate.shapes_reader import to_uint8  # noqa: E402
from paris_node.models.factory import build_expert, build_router  # noqa: E402
from paris_node.models.flow import T_SCALE  # noqa: E402
from paris_node.models.presets import expert_preset, router_preset  # noqa: E402
from paris_node.models.text import build_text_encoder  # noqa: E402
from paris_node.models.vae import LatentCodec  # noqa: E402
from paris_node.sampling.caption_prior import CaptionPrior  # noqa: E402
from paris_node.sampling.ensemble import EnsembleSampler  # noqa: E402
from paris_node.sampling.images import to_pil  # noqa: E402
from paris_node.training.losses import training_losses  # noqa: E402
from paris_node.training.router_trainer import LabelledClusters, train_router  # noqa: E402
from paris_node.training.trainer import TrainConfig, train  # noqa: E402

STRATEGIES = ("monolith", "top1", "top2", "full", "oracle", "top2+prior")


@dataclass(frozen=True)
class Settings:
    preset: str
    experts: int
    samples: int
    mono_steps: int
    batch: int
    lr: float
    warmup: int
    prompts: int
    per_prompt: int
    sample_steps: int
    cfg: float
    seeds: int


QUICK = Settings("tiny", 2, 192, 40, 16, 1e-3, 10, 6, 1, 6, 4.0, 2)
DEFAULT = Settings("small", 4, 2048, 2400, 32, 1e-3, 100, 64, 2, 25, 4.0, 3)


class ImageList(torch.utils.data.Dataset):
    def __init__(self, items):
        self.captions = [c for _, c in items]  # the router's trainer counts them into the caption prior
        self.items = [
            (torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 127.5 - 1, c) for im, c in items
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class OracleRouter(nn.Module):
    """Routes row i to expert `clusters[i]` with certainty (the true cluster of its prompt)."""

    def __init__(self, clusters: list[int], k: int):
        super().__init__()
        self.register_buffer("logits", 30.0 * nn.functional.one_hot(torch.tensor(clusters), k).float())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.logits.to(x.device)


def flops_per_sample(model: nn.Module, kind: str, batch: int, text_encoder=None) -> float:
    """Training FLOPs per sample (forward + backward) of one real step, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.cfg
    x = torch.randn(batch, *cfg.latent_shape)
    t = torch.rand(batch)
    with FlopCounterMode(display=False) as counter:
        if kind == "expert":
            text, mask = text_encoder.encode(["a red circle on a blue background"] * batch)
            training_losses(model, x, t, text, mask)["loss"].backward()
        else:
            logits = model(x, T_SCALE * t)
            nn.functional.cross_entropy(logits, torch.zeros(batch, dtype=torch.long)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch


def train_cfg(s: Settings, steps: int, seed: int, device: str) -> TrainConfig:
    return TrainConfig(
        steps=max(1, steps),
        batch=s.batch,
        lr=s.lr,
        warmup=s.warmup,
        ema=0.999,
        seed=seed,
        caption_dropout=0.1,
        checkpoint_every=max(1, steps),
        keep_checkpoints=1,
        progress=False,
        device=device,
        log_every=max(1, steps),
    )


def run_seed(s: Settings, seed: int, device: str, work: Path, space: FeatureSpace, log) -> tuple[dict, dict]:
    ecfg = expert_preset(s.preset)
    rcfg = router_preset(s.preset, num_experts=s.experts)
    res = ecfg.image_size
    enc = build_text_encoder(ecfg.text_encoder)
    codec = LatentCodec("pixels")
    items = [render_shape(i, res, seed) for i in range(s.samples)]
    embedder = get_embedder("pixels")
    part = partition(embedder.embed([im for im, _ in items]), s.experts, fine=min(1024, s.samples // 8), seed=seed)
    clusters = [ImageList([items[i] for i in np.flatnonzero(part.labels == k)]) for k in range(s.experts)]

    # ---- equal compute
    f_e = flops_per_sample(build_expert(ecfg), "expert", 4, enc)
    f_r = flops_per_sample(build_router(rcfg), "router", 4)
    budget = s.mono_steps * s.batch * f_e
    steps_k = int(round(budget / (s.batch * (s.experts * f_e + f_r))))
    accounting = {
        "expert_flops_per_sample": f_e,
        "router_flops_per_sample": f_r,
        "monolith_steps": s.mono_steps,
        "steps_per_expert": steps_k,
        "router_steps": steps_k,
        "router_share": f_r / (s.experts * f_e + f_r),
        "total_flops": budget,
        "cluster_sizes": part.sizes,
    }

    # ---- train: the monolith, then each expert on its cluster, then the router
    t0 = time.perf_counter()
    mono = train(train_cfg(s, s.mono_steps, seed, device), ecfg, ImageList(items), enc, codec, work / "mono")
    log(f"seed {seed}: monolith {s.mono_steps} steps in {time.perf_counter() - t0:.0f} s")
    experts = {}
    for k in range(s.experts):
        t0 = time.perf_counter()
        r = train(train_cfg(s, steps_k, seed + 1 + k, device), ecfg, clusters[k], enc, codec, work / f"expert-{k}")
        experts[k] = load_model(r.checkpoint, device=device)[0]
        log(f"seed {seed}: expert {k} ({len(clusters[k])} images) {steps_k} steps in {time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    rr = train_router(
        train_cfg(s, steps_k, seed + 100, device), rcfg, LabelledClusters(clusters), codec, work / "router"
    )
    router, router_config = load_model(rr.checkpoint, device=device)
    prior = CaptionPrior.from_dict(router_config["caption_prior"], s.experts)
    log(f"seed {seed}: router {steps_k} steps in {time.perf_counter() - t0:.0f} s")
    mono_model = load_model(mono.checkpoint, device=device)[0]

    # ---- sample the same prompts from the same noise with every strategy
    prompts = held_out_prompts(s.prompts, seed)
    truth_images = [render_shape(_index_of(p, seed), res)[0] for p in prompts]
    oracle = [int(k) for k in assign(embedder.embed(truth_images), part)]
    per_row = [p for p in prompts for _ in range(s.per_prompt)]
    oracle_rows = [k for k in oracle for _ in range(s.per_prompt)]
    samplers = {
        "monolith": EnsembleSampler({0: mono_model}, None, enc, ecfg.latent_shape),
        "top1": EnsembleSampler(experts, router, enc, ecfg.latent_shape, routing="top1"),
        "top2": EnsembleSampler(experts, router, enc, ecfg.latent_shape, routing="top2"),
        "full": EnsembleSampler(experts, router, enc, ecfg.latent_shape, routing="full"),
        "oracle": EnsembleSampler(
            experts, OracleRouter(oracle_rows, s.experts), enc, ecfg.latent_shape, routing="top1"
        ),
        "top2+prior": EnsembleSampler(experts, router, enc, ecfg.latent_shape, routing="top2", caption_prior=prior),
    }
    scores, grids = {}, {}
    for name, sampler in samplers.items():
        sampler.steps, sampler.cfg_scale, sampler.device = s.sample_steps, s.cfg, torch.device(device)
        t0 = time.perf_counter()
        x, _ = sampler.sample(prompts, seed=seed, n_per_prompt=s.per_prompt)
        images = to_uint8(x)
        sc = score_images(name, images, per_row, space, time.perf_counter() - t0)
        scores[name] = {**sc.fidelity, "fid": sc.fid, "seconds": sc.seconds}
        grids[name] = to_pil(x[:: s.per_prompt][:8])
    return {"scores": scores, "accounting": accounting, "prompts": prompts}, grids


def _index_of(prompt: str, seed: int) -> int:
    """The held-out item index whose caption is `prompt` (held_out_prompts walks the same range)."""
    i = HELD_OUT_START + seed * 100_000
    while render_shape(i, 8)[1] != prompt:
        i += 1
    return i


def _mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def table(results: list[dict]) -> str:
    lines = ["| strategy | background | colour | shape | all three | FID (features) |", "|---|---|---|---|---|---|"]
    for name in STRATEGIES:
        cells = [_mean_sd([r["scores"][name][k] for r in results]) for k in ("background", "colour", "shape", "all")]
        cells.append(_mean_sd([r["scores"][name]["fid"] for r in results]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny models, few steps (a few minutes; the suite runs it)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; --quick: 2)")
    p.add_argument("--mono-steps", type=int, default=None, help="monolith steps (sets the compute budget)")
    p.add_argument("--prompts", type=int, default=None, help="held-out prompts per seed (default 64; --quick: 6)")
    p.add_argument("--per-prompt", type=int, default=None, help="samples per prompt (default 2; --quick: 1)")
    p.add_argument("--out", type=Path, default=ROOT / "bench-out" / "quality")
    p.add_argument("--cache", type=Path, default=ROOT / "bench-out" / "cache", help="feature classifier cache")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's; --quick: 1)")
    a = p.parse_args()
    s = QUICK if a.quick else DEFAULT
    overrides = {"seeds": a.seeds, "mono_steps": a.mono_steps, "prompts": a.prompts, "per_prompt": a.per_prompt}
    s = Settings(**{**s.__dict__, **{k: v for k, v in overrides.items() if v}})
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU; use --device cpu")
    if a.threads or a.quick:
        torch.set_num_threads(a.threads or 1)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[bench_quality {time.perf_counter() - started:6.0f}s] {msg}", flush=True)

    log(f"settings: {s}")
    space = FeatureSpace.for_shapes(expert_preset(s.preset).image_size, a.cache)
    log(f"feature space ready (label accuracy {[round(x, 3) for x in space.label_accuracy]})")
    results, grids = [], None
    for seed in range(s.seeds):
        with tempfile.TemporaryDirectory() as tmp:
            r, g = run_seed(s, seed, a.device, Path(tmp), space, log)
        results.append(r)
        grids = grids or g
        log(f"seed {seed}: " + ", ".join(f"{k} all={v['all']:.2f}" for k, v in r["scores"].items()))
        log(f"after {len(results)} seed(s):\n{table(results)}")  # a partial table survives an interrupted run
    acc = results[0]["accounting"]
    md = [
        f"# Monolith vs {s.experts} experts + router at equal training compute ({s.seeds} seeds)",
        "",
        f"`python scripts/bench_quality.py{' --quick' if a.quick else ''}` on {a.device}, preset {s.preset}, "
        f"{s.samples} shapes images, {s.prompts} held-out prompts x {s.per_prompt}, {s.sample_steps} Euler steps, "
        f"CFG {s.cfg}.",
        f"Compute: monolith {acc['monolith_steps']} steps; each expert and the router {acc['steps_per_expert']} "
        f"steps; router share of the experts' budget {100 * acc['router_share']:.1f}% "
        f"(FLOPs/sample: expert {acc['expert_flops_per_sample']:.3g}, router {acc['router_flops_per_sample']:.3g}).",
        "",
        table(results),
        "",
        f"Total wall time {time.perf_counter() - started:.0f} s.",
    ]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.md").write_text("\n".join(md) + "\n")
    (a.out / "quality.json").write_text(json.dumps({"settings": s.__dict__, "results": results}, indent=2))
    columns = results[0]["prompts"][:8]
    labelled_grid([(name, grids[name]) for name in STRATEGIES], columns).save(a.out / "quality.png")
    print("\n".join(md))
    print(f"wrote {a.out / 'quality.md'}, {a.out / 'quality.json'}, {a.out / 'quality.png'}")


if __name__ == "__main__":
    main()
