"""Samples/s of paris-node's training step (`trainer.train`) against a bare PyTorch loop, in one run.

Both sides train the same expert preset with the same batch, the same in-memory data, the same dtype and the same
recipe (rectified-flow loss, AdamW, grad-norm clip, EMA by foreach lerp). The bare loop uses precomputed text
embeddings and the global RNG; ours does everything `train` does each step (deterministic per-step generators,
caption dropout, text encoding, the batch sampler, the meter, the progress bar off). Phases alternate
(bare, ours, bare, ours, ...) so load from other processes hits both alike; medians are compared.
Time is this process's CPU time on CPU (robust to other processes on a shared machine; run with --threads 1)
and synchronised wall time on CUDA. Peak memory: CUDA max_memory_allocated; on CPU the peak RSS of a fresh
process running one phase (imports included, identical on both sides).

    python scripts/bench_train.py                          # tiny + small on CPU
    python scripts/bench_train.py --device cuda --preset B/2 --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils.data import Dataset

from paris_node.models.factory import build_expert
from paris_node.models.presets import expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec
from paris_node.training.losses import training_losses
from paris_node.training.state import ema_update
from paris_node.training.trainer import TrainConfig, train

PROMPTS = ["a red square", "a blue circle on green", "two yellow stars", "a small purple triangle"]


class InMemory(Dataset):
    def __init__(self, n: int, shape: tuple[int, ...]):
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, *shape, generator=g) * 2 - 1
        self.captions = [PROMPTS[i % len(PROMPTS)] for i in range(n)]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.captions[i]


def memory_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else float("nan")


def clock(device: torch.device) -> float:
    """CPU: this process's CPU time (other processes' load on a shared machine does not count); CUDA: wall time."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        return time.perf_counter()
    return time.process_time()


def bare_loop(mc, data: InMemory, text_spec: str, steps: int, args, device: torch.device) -> float:
    """Seconds (see `clock`) for setup + `steps` steps of a plain PyTorch loop with the same recipe."""
    t0 = clock(device)
    torch.manual_seed(0)
    model = build_expert(mc).to(device).train()
    ema = build_expert(mc).to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    text, mask = build_text_encoder(text_spec).encode(data.captions[: args.batch])
    text, mask = text.to(device), mask.to(device)
    x_all = data.x.to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    for i in range(steps):
        s = (i * args.batch) % (len(x_all) - args.batch + 1)
        x0 = x_all[s : s + args.batch]
        t = torch.rand(args.batch, device=device)
        with amp:
            loss = training_losses(model, x0, t, text, mask, "rectified_flow", noise=torch.randn_like(x0))["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema_update(ema, model, 0.9999)
    loss.item()
    return clock(device) - t0


def our_loop(mc, data: InMemory, text_spec: str, steps: int, args, device: torch.device) -> float:
    """Seconds (see `clock`) for setup + `steps` steps of `trainer.train`, final checkpoint included."""
    cfg = TrainConfig(
        steps=steps,
        batch=args.batch,
        lr=1e-4,
        caption_dropout=0.1,
        progress=False,
        device=str(device),
        log_every=args.window,
        checkpoint_every=10**9,
        keep_checkpoints=1,
    )
    t0 = clock(device)
    with tempfile.TemporaryDirectory() as out:
        train(cfg, mc, data, build_text_encoder(text_spec), LatentCodec("pixels"), out)
    return clock(device) - t0


def bench(preset: str, args, device: torch.device) -> dict:
    """Per-step cost = (time of a long run - time of a short run) / extra steps: setup and the final checkpoint
    cancel out. Short and long runs of both loops alternate; the ratio is the median over repeats."""
    mc = expert_preset(preset)
    # Data in memory, already in the model's space; for SD-VAE presets the bench skips the VAE and uses a hashed
    # text table of CLIP's shape (77x768), so no weights are needed: only the expert's step is measured.
    text_spec = mc.text_encoder if mc.text_encoder.startswith("hash:") else f"hash:{mc.caption_channels}x77"
    data = InMemory(max(256, 4 * args.batch), mc.latent_shape)
    short, long = args.window, args.window * (args.windows + 1)
    extra = (long - short) * args.batch
    bare, ours = [], []
    bare_loop(mc, data, text_spec, short, args, device)  # warm-up: lazy imports, allocator, first-call costs
    our_loop(mc, data, text_spec, short, args, device)
    for _ in range(args.repeats):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        b_short = bare_loop(mc, data, text_spec, short, args, device)
        b_long = bare_loop(mc, data, text_spec, long, args, device)
        b_mem = memory_mb(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        o_short = our_loop(mc, data, text_spec, short, args, device)
        o_long = our_loop(mc, data, text_spec, long, args, device)
        bare.append((extra / (b_long - b_short), b_mem))
        ours.append((extra / (o_long - o_short), memory_mb(device)))
    b, o = statistics.median(s for s, _ in bare), statistics.median(s for s, _ in ours)
    paired = [x[0] / y[0] for x, y in zip(ours, bare, strict=True)]
    if device.type == "cuda":
        mem = (max(m for _, m in bare), max(m for _, m in ours))
    else:
        mem = (fresh_process_peak_rss(preset, "bare", args), fresh_process_peak_rss(preset, "ours", args))
    row = {
        "preset": preset,
        "device": str(device),
        "batch": args.batch,
        "bare_sps": b,
        "ours_sps": o,
        "ratio": statistics.median(paired),
        "paired": [round(r, 3) for r in paired],
        "mem_mb": mem,
    }
    unit = "samples/s" if device.type == "cuda" else "samples/CPU-s"
    kind = "max allocated" if device.type == "cuda" else "peak RSS, fresh process"
    print(
        f"{preset:<6} {str(device):<5} batch {args.batch:<4} bare {b:8.1f} {unit}  ours {o:8.1f} {unit}  "
        f"ratio {row['ratio']:.3f} (median of paired runs {row['paired']}; ratio of medians {o / b:.3f})  "
        f"memory ({kind}) bare {mem[0]:.0f} MB / ours {mem[1]:.0f} MB",
        flush=True,
    )
    return row


def fresh_process_peak_rss(preset: str, phase: str, args) -> float:
    """Run one phase in a new interpreter and read its ru_maxrss (same imports on both sides)."""
    cmd = [
        sys.executable,
        __file__,
        "--preset",
        preset,
        "--phase",
        phase,
        "--batch",
        str(args.batch),
        "--window",
        str(args.window),
        "--windows",
        str(args.windows),
        "--threads",
        str(args.threads or 1),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="expert preset(s); default tiny and small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--window", type=int, default=20, help="steps of the short run (setup + warm-up cancel out)")
    p.add_argument("--windows", type=int, default=4, help="the long run is window * (windows + 1) steps")
    p.add_argument("--repeats", type=int, default=5, help="alternating bare/ours runs; median ratio reported")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--phase", choices=["bare", "ours"], help=argparse.SUPPRESS)  # one phase, print peak RSS MB
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    if not args.phase:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}", flush=True)
    if args.phase:
        mc = expert_preset(args.preset[0])
        text_spec = mc.text_encoder if mc.text_encoder.startswith("hash:") else f"hash:{mc.caption_channels}x77"
        data = InMemory(max(256, 4 * args.batch), mc.latent_shape)
        steps = args.window * (args.windows + 1)
        (bare_loop if args.phase == "bare" else our_loop)(mc, data, text_spec, steps, args, device)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    for preset in args.preset or ["tiny", "small"]:
        bench(preset, args, device)


if __name__ == "__main__":
    main()
