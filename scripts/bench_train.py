"""Samples/s of paris-node's training step (`trainer.train`) against a bare PyTorch loop, in one run.

Both sides train the same expert preset with the same batch, the same in-memory data, the same dtype and the same
recipe (rectified-flow loss, AdamW, grad-norm clip, EMA by foreach lerp). The bare loop uses precomputed text
embeddings and the global RNG; ours does everything `train` does each step (deterministic per-step generators,
caption dropout, text encoding, the batch sampler, the meter, the progress bar off). Phases alternate
(bare, ours, bare, ours, ...) so load from other processes hits both alike; medians are compared.
Peak memory: CUDA max_memory_allocated per phase; on CPU the peak RSS growth during the phase (polled).

    python scripts/bench_train.py                          # tiny + small on CPU
    python scripts/bench_train.py --device cuda --preset B/2 --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import threading
import time

import torch
from torch.utils.data import Dataset

from paris_node.models.presets import build_expert, expert_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec
from paris_node.training.losses import training_losses
from paris_node.training.runtime import ema_update
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


class PeakRSS:
    """Peak resident-set growth while the block runs (CPU has no allocator counter like CUDA's)."""

    def __enter__(self):
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _poll(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())

    @property
    def grown_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def memory_phase(device: torch.device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return contextlib.nullcontext()
    return PeakRSS()


def memory_mb(device: torch.device, probe) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return probe.grown_mb


def bare_loop(mc, data: InMemory, text_spec: str, args, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(0)
    model = build_expert(mc).to(device).train()
    ema = build_expert(mc).to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    text, mask = build_text_encoder(text_spec).encode(data.captions[: args.batch])
    text, mask = text.to(device), mask.to(device)
    x_all = data.x.to(device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()

    def step(i: int) -> None:
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

    with memory_phase(device) as probe:
        for i in range(args.window):
            step(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(args.window * args.windows):
            step(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
    return args.window * args.windows * args.batch / dt, memory_mb(device, probe)


def our_loop(mc, data: InMemory, text_spec: str, args, device: torch.device) -> tuple[float, float]:
    cfg = TrainConfig(
        steps=args.window * (args.windows + 1),
        batch=args.batch,
        lr=1e-4,
        caption_dropout=0.1,
        progress=False,
        device=str(device),
        log_every=args.window,
        checkpoint_every=10**9,
        keep_checkpoints=1,
    )
    with tempfile.TemporaryDirectory() as out, memory_phase(device) as probe:
        result = train(cfg, mc, data, build_text_encoder(text_spec), LatentCodec("pixels"), out)
    windows = result.history[1:]  # the first window holds warm-up
    seconds = sum(args.window * args.batch / h["samples_per_s"] for h in windows)
    return len(windows) * args.window * args.batch / seconds, memory_mb(device, probe)


def bench(preset: str, args, device: torch.device) -> dict:
    mc = expert_preset(preset)
    # Data in memory, already in the model's space; for SD-VAE presets the bench skips the VAE and uses a hashed
    # text table of CLIP's shape (77x768), so no weights are needed: only the expert's step is measured.
    text_spec = mc.text_encoder if mc.text_encoder.startswith("hash:") else f"hash:{mc.caption_channels}x77"
    data = InMemory(max(256, 4 * args.batch), mc.latent_shape)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(mc, data, text_spec, args, device))
        ours.append(our_loop(mc, data, text_spec, args, device))
    b, o = statistics.median(s for s, _ in bare), statistics.median(s for s, _ in ours)
    row = {
        "preset": preset,
        "device": str(device),
        "batch": args.batch,
        "bare_sps": b,
        "ours_sps": o,
        "ratio": o / b,
        "bare_mem_mb": max(m for _, m in bare),
        "ours_mem_mb": max(m for _, m in ours),
        "all_ratios": [round(x[0] / y[0], 3) for x, y in zip(ours, bare, strict=True)],
    }
    print(
        f"{preset:<6} {str(device):<5} batch {args.batch:<4} bare {b:8.1f} samples/s  ours {o:8.1f} samples/s  "
        f"ratio {o / b:.3f}  (per repeat {row['all_ratios']})  peak mem bare {row['bare_mem_mb']:.0f} MB / "
        f"ours {row['ours_mem_mb']:.0f} MB",
        flush=True,
    )
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", action="append", help="expert preset(s); default tiny and small")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--window", type=int, default=10, help="steps per timing window")
    p.add_argument("--windows", type=int, default=3, help="timed windows per phase (after one warm-up window)")
    p.add_argument("--repeats", type=int, default=3, help="alternating bare/ours phases; medians compared")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, device {device}", flush=True)
    for preset in args.preset or ["tiny", "small"]:
        bench(preset, args, device)


if __name__ == "__main__":
    main()
