#!/usr/bin/env python
"""Benchmark: time per image of router-weighted ensemble sampling against one expert alone, in one run.

Goals (issue 7): top-1 within 1.15x of one expert (the router's overhead), top-2 within 2.3x. Full routing is
shown for scale (it evaluates all K experts). Experts and the router are freshly initialised presets (weights do
not change the cost); the output layers get random values so every expert actually computes something.

    .venv/bin/python scripts/bench_sampling.py --preset small --experts 4 --images 4 --steps 10 --threads 1
    # Paris's router/expert size ratio (B/2 router 130M : XL/2 expert 607M = 0.21) at small scale:
    .venv/bin/python scripts/bench_sampling.py --preset small --router-size 64,3,4 --experts 4 --threads 1

The top-1 overhead is the router's forward pass, so it scales with the router's size relative to the expert's;
the script prints that share so a missed goal can be attributed.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn

from paris_node.models.factory import build_expert, build_router, count_params
from paris_node.models.presets import expert_preset, router_preset
from paris_node.models.text import build_text_encoder
from paris_node.sampling.ensemble import EnsembleSampler


def _randomise_output(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "proj_out" in name or "attn2.to_out" in name or name.startswith("head"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small", help="expert preset (the router preset of the same name)")
    ap.add_argument("--router-preset", default=None, help="router preset (default: same as --preset)")
    ap.add_argument(
        "--router-size",
        default=None,
        metavar="HIDDEN,DEPTH,HEADS",
        help="override the router's width/depth/heads, e.g. 64,3,4 for a Paris-like router/expert size ratio",
    )
    ap.add_argument("--experts", type=int, default=4, help="K")
    ap.add_argument("--images", type=int, default=4, help="images per sample() call (one batch)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cfg", type=float, default=7.5)
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds; each round runs every mode once")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default=None,
        help="cpu: this process's CPU time (robust when other jobs share the cores; use with --threads 1); "
        "default cpu on a CPU device, wall on CUDA",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    clock_name = args.clock or ("wall" if device.type == "cuda" else "cpu")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter

    cfg = expert_preset(args.preset)
    overrides = {}
    if args.router_size:
        hidden, depth, heads = (int(v) for v in args.router_size.split(","))
        overrides = {"hidden": hidden, "depth": depth, "heads": heads}
    rcfg = router_preset(args.router_preset or args.preset, num_experts=args.experts, **overrides)
    experts = {k: _randomise_output(build_expert(cfg), k).to(device) for k in range(args.experts)}
    router = _randomise_output(build_router(rcfg), 99).to(device)
    encoder = build_text_encoder(cfg.text_encoder)
    autocast = torch.bfloat16 if device.type == "cuda" else None

    def sampler(routing: str, alone: bool = False) -> EnsembleSampler:
        return EnsembleSampler(
            {0: experts[0]} if alone else experts,
            None if alone else router,
            encoder,
            cfg.latent_shape,
            routing=routing,
            cfg_scale=args.cfg,
            steps=args.steps,
            device=device,
            autocast_dtype=autocast,
        )

    modes = {"one expert": sampler("top1", alone=True)}
    for r in ("top1", "top2", "full"):
        modes[r] = sampler(r)
    colours, shapes = ["red", "blue", "green", "white"], ["circle", "square", "triangle"]
    prompts = [f"a {colours[i % 4]} {shapes[i % 3]}" for i in range(args.images)]

    def run(s: EnsembleSampler) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = clock()
        s.sample(prompts, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (clock() - t0) / len(prompts)

    for s in modes.values():  # warm-up (allocator, kernels, lazy init)
        run(s)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):  # interleaved so background load hits every mode alike
        for m, s in modes.items():
            times[m].append(run(s))

    router_share = _router_share(
        experts[0], router, encoder, cfg.latent_shape, len(prompts), device, args.repeats, clock
    )
    base = min(times["one expert"])
    print(
        f"# sampling benchmark: expert {cfg.preset} ({count_params(experts[0]) / 1e6:.2f}M), router "
        f"{rcfg.preset} h{rcfg.hidden} d{rcfg.depth} ({count_params(router) / 1e6:.2f}M), K={args.experts}, "
        f"{args.images} images/call, {args.steps} steps, cfg {args.cfg}, device {device} "
        f"({platform.machine()}, {torch.get_num_threads()} threads), {clock_name} clock, "
        f"{args.repeats} interleaved rounds"
    )
    print(f"# router forward on B rows / one expert CFG call on 2B rows: {router_share:.3f} (top-1 floor 1 + this)")
    print("# ratio: best-of-rounds time / best one-expert time (best-of is robust to other load on the machine)")
    header = f"{'mode':<11} {'best s/img':>10} {'median':>8} {'ratio':>6} {'med.ratio':>9} {'calls/step':>10}"
    print(f"{header} {'rows/step':>9} goal")
    goals = {"top1": 1.15, "top2": 2.3}
    med_base = statistics.median(times["one expert"])
    for m, s in modes.items():
        best, med = min(times[m]), statistics.median(times[m])
        st = s.stats
        goal = goals.get(m)
        verdict = "" if goal is None else f"<= {goal}x {'ok' if best / base <= goal else 'MISSED'}"
        print(
            f"{m:<11} {best:10.4f} {med:8.4f} {best / base:6.2f} {med / med_base:9.2f} "
            f"{st.expert_calls_per_step:10.2f} {st.expert_rows / max(st.steps, 1):9.1f} {verdict}"
        )


def _router_share(expert, router, encoder, shape, batch, device, repeats, clock) -> float:
    """Cost of one router call relative to one guided expert call (cond + uncond batched): the top-1 overhead."""
    x = torch.randn(batch, *shape, device=device)
    t = torch.full((batch,), 500.0, device=device)
    text, mask = encoder.encode(["a red circle"] * batch + [""] * batch)
    text, mask = text.to(device), mask.to(device)

    def timed(fn) -> float:
        fn()
        out = []
        for _ in range(max(repeats, 3) * 3):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = clock()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            out.append(clock() - t0)
        return min(out)

    with torch.inference_mode():
        r = timed(lambda: router(x, t))
        e = timed(lambda: expert(torch.cat([x, x]), torch.cat([t, t]), text, mask))
    return r / e


if __name__ == "__main__":
    main()
