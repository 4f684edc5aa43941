"""Benchmark the data layer; every number is printed next to a baseline measured in the same run.

    .venv/bin/python scripts/bench_data.py [--n 2048]

1. shard encoding: our canonical safetensors writer vs the safetensors library's own `save`;
2. partition: exact (quantised integer) k-means vs the same Lloyd loop in plain float32;
3. image sources: shapes and emoji rendering vs decoding + resizing PNG files (imagefolder path);
4. end to end: `build_run(DEMO_RUN)` into a fresh home.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save as st_save

from paris_node.data.datasets import open_dataset
from paris_node.data.embedders import get_embedder
from paris_node.data.images import load_image
from paris_node.data.partition import _kmeans_pp, kmeans, quantize
from paris_node.data.shards import shard_bytes
from paris_node.home import Home


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def float_kmeans(x: np.ndarray, k: int, seed: int, iters: int = 30) -> np.ndarray:
    """Baseline: textbook Lloyd in float32 (same seeding), no quantisation or rounding."""
    q, _ = quantize(x)
    c = _kmeans_pp(q, k, np.ones(len(q)), np.random.Generator(np.random.PCG64(seed))).astype(np.float32)
    xf = q.astype(np.float32)
    labels = None
    for _ in range(iters):
        d = (xf * xf).sum(1)[:, None] - 2 * xf @ c.T + (c * c).sum(1)[None]
        new = d.argmin(1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            m = labels == j
            if m.any():
                c[j] = xf[m].mean(0)
    return labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2048)
    args = ap.parse_args()
    n = args.n

    items = open_dataset(f"shapes:{n}", 32).take(None)
    arrays = np.stack([np.asarray(img).transpose(2, 0, 1) for img, _ in items])
    arr_items = [(arrays[i], c) for i, (_, c) in enumerate(items)]
    ours = timed(lambda: shard_bytes(arr_items))
    lib = timed(lambda: st_save({"images": arrays, "indices": np.arange(n)}, metadata={"x": "y"}))
    print(
        f"shard encode  ({n} x 3x32x32): ours {ours * 1e3:7.1f} ms  safetensors.save {lib * 1e3:7.1f} ms  "
        f"ratio {ours / lib:5.2f}x (ours adds the captions JSON, per-image checks)"
    )

    emb = get_embedder("pixels").embed([img for img, _ in items])
    f = max(4, n // 8)
    exact = timed(lambda: kmeans(quantize(emb)[0], f, seed=0), repeat=1)
    plain = timed(lambda: float_kmeans(emb, f, seed=0), repeat=1)
    print(
        f"k-means       ({n} x 192 -> {f}):   exact {exact:6.2f} s  float32 {plain:6.2f} s  "
        f"ratio {exact / plain:5.2f}x"
    )

    m = min(n, 512)
    pngs = []
    for img, _ in items[:m]:
        buf = io.BytesIO()
        img.resize((128, 128)).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    decode = timed(lambda: [load_image(b, 32) for b in pngs], repeat=1) / m
    shapes = timed(lambda: open_dataset(f"shapes:{m}", 32).take(None), repeat=1) / m
    line = (
        f"image sources (per image, 32 px): png decode {decode * 1e3:5.2f} ms  shapes {shapes * 1e3:5.2f} ms "
        f"({shapes / decode:4.2f}x)"
    )
    try:
        em = open_dataset("emoji", 32)
        emoji = timed(lambda: em.take(200), repeat=1) / 200
        line += f"  emoji {emoji * 1e3:5.2f} ms ({emoji / decode:4.2f}x)"
    except Exception as e:  # no font: report without it
        line += f"  emoji n/a ({e})"
    print(line)

    from paris_node.data.manifest import DEMO_RUN, build_run

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        run_id, _ = build_run(DEMO_RUN, Home(Path(tmp)))
        total = time.perf_counter() - t
    print(f"demo init     build_run(DEMO_RUN): {total:5.2f} s  run id {run_id}")


if __name__ == "__main__":
    main()
