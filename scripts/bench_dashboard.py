#!/usr/bin/env python
"""Benchmark the dashboard's two costs: rendering a big swarm, and drawing samples beside checkpoints.

1. render: a made-up swarm of JOBS jobs and STATUSES status records (signed, as the DHT readers return them),
   each job with a full loss history; times `build_view` (records -> /api/status) + `render_page` (HTML) + JSON
   encoding, best and median of --repeat, and prints the page and API sizes. Target: under 1 s.
2. samples: trains a tiny expert for --steps steps with a checkpoint (and publish) every --every steps, once
   with the publisher's sample hook and once without, and prints the wall time of each and the overhead
   (target: a few percent). The publish callback is the real CheckpointPublisher on a local store.

    .venv/bin/python scripts/bench_dashboard.py --jobs 100 --statuses 1000
    .venv/bin/python scripts/bench_dashboard.py --skip-render --steps 200 --every 25
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "dashboard"))
from dash_helpers import run_info, swarm_of  # noqa: E402

from paris_node.dashboard.history import History  # noqa: E402
from paris_node.dashboard.render import render_page  # noqa: E402
from paris_node.dashboard.view import ViewInputs, build_view  # noqa: E402
from paris_node.records import now_ms  # noqa: E402


def bench_render(jobs: int, statuses: int, repeat: int) -> dict:
    t = now_ms()
    leases, records, pointers = swarm_of(jobs, statuses_per_node=max(1, statuses // jobs), t=t)
    history = History("bench")
    for k in range(jobs):
        for step in range(10, 10 * (history.max_points + 1), 10):
            history.add(f"expert/{k}", step, t - 1000 * step, train_loss=1 / (1 + step), val_loss=1.1 / (1 + step))
    inp = ViewInputs(run_info(jobs), [f"expert/{k}" for k in range(jobs)], leases, records, pointers, history=history)
    times, html, api = [], "", b""
    for _ in range(repeat):
        start = time.perf_counter()
        view = build_view(inp, t)
        html = render_page(view)
        api = json.dumps(view).encode()
        times.append(time.perf_counter() - start)
    return {
        "jobs": jobs,
        "status_records": len(records),
        "history_points": sum(len(v) for v in history.jobs.values()),
        "best_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "html_kib": round(len(html) / 1024),
        "api_kib": round(len(api) / 1024),
    }


def bench_samples(steps: int, every: int, threads: int, rounds: int) -> dict:
    import torch

    from paris_node.content.blockstore import Blockstore
    from paris_node.data.manifest import RunSpec, build_run, load_run
    from paris_node.data.prepare import shard_path
    from paris_node.data.shards import ShardDataset
    from paris_node.home import Home
    from paris_node.identity import Identity
    from paris_node.models.presets import expert_preset
    from paris_node.models.text import build_text_encoder
    from paris_node.models.vae import LatentCodec, codec_spec
    from paris_node.node.publish import CheckpointPublisher
    from paris_node.sampling.preview import SampleRenderer, fixed_prompts, render_sample_png
    from paris_node.training.trainer import TrainConfig, train

    class Quiet:
        def __getattr__(self, name):
            return lambda *a, **k: None

    torch.set_num_threads(threads)
    out: dict = {"steps": steps, "checkpoint_every": every, "threads": threads, "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp) / "home").ensure()
        spec = RunSpec(
            name="bench", dataset="shapes:128", samples=128, experts=1, expert_preset="tiny", fine_clusters=8
        )
        m = load_run(home, build_run(spec, home, Identity.generate())[0])
        text, codec = build_text_encoder(m.text_encoder), LatentCodec(codec_spec(m.latent_space))
        data = ShardDataset(shard_path(home, m.shards[0].train.cid))
        prompts = fixed_prompts(ShardDataset(shard_path(home, m.shards[0].val.cid)).captions)
        model_cfg = expert_preset(m.expert_preset, text_encoder=m.text_encoder)
        runs: dict[str, list[float]] = {"without": [], "with": []}
        for i, label in enumerate(["warmup", *["without", "with"] * rounds]):  # interleaved: load drifts
            renderer = SampleRenderer(prompts, text, codec) if label == "with" else None
            store = Blockstore(Path(tmp) / f"blocks-{i}")
            pub = CheckpointPublisher(
                store, Identity.generate(), m.run_id, "expert/0", Quiet(), m.cid_profile, sample=renderer
            )
            cfg = TrainConfig(steps=steps, batch=8, checkpoint_every=every, progress=False, device="cpu", seed=1)
            start = time.perf_counter()
            result = train(cfg, model_cfg, data, text, codec, Path(tmp) / f"train-{i}", pub)
            if label != "warmup":
                runs[label].append(time.perf_counter() - start)
            if renderer is not None:
                renderer.close()
        renders = []
        for _ in range(5):
            start = time.perf_counter()
            render_sample_png(result.checkpoint, prompts, text, codec)
            renders.append(time.perf_counter() - start)
    base, withs = statistics.median(runs["without"]), statistics.median(runs["with"])
    out.update(
        without_s=[round(x, 2) for x in runs["without"]],
        with_s=[round(x, 2) for x in runs["with"]],
        overhead_pct=round(100 * (withs - base) / base, 1),
        render_one_sample_ms=round(1000 * statistics.median(renders)),
        checkpoints_per_run=steps // every,
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--statuses", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="training runs with and without samples (interleaved)")
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--skip-samples", action="store_true")
    args = ap.parse_args()
    if not args.skip_render:
        print(json.dumps({"render": bench_render(args.jobs, args.statuses, args.repeat)}))
    if not args.skip_samples:
        print(json.dumps({"samples": bench_samples(args.steps, args.every, args.threads, args.rounds)}))


if __name__ == "__main__":
    main()
