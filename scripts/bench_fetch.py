#!/usr/bin/env python
"""Bytes moved and wall time of `fetch --all` for sampling, against the size of the weights it installs.

A publisher home builds a run (shapes data), trains every job a few steps with the real trainer (so each
checkpoint carries the real training state: raw weights and both Adam moments) and publishes each with
`store_checkpoint`. A fresh reader then runs the fetcher `paris-node fetch --all` runs, with every check
(signatures, CIDs, sha256, strict safetensors, held-out score), once for sampling (weights + config) and once
as a takeover would (state too). The "network" is in-process: every block crosses from the publisher's store
to the reader's through `Blockstore.put` (hash-checked), and each one is counted. Reported:
- checkpoint bytes moved / weights bytes (goal <= 1.1x for sampling); the held-out shards scored on open runs
  are listed apart (they are fetched once per run, not per checkpoint);
- the reader's disk: store + cache counted by inode (a hard-linked cache file is one copy), against the weights
  and against the bytes installed (1.0x: each checkpoint stored once; chunked files are held in the store as
  no-copy references to the cache file, content/filestore.py);
- wall time of each fetch.

    .venv/bin/python scripts/bench_fetch.py                  # tiny preset
    .venv/bin/python scripts/bench_fetch.py --preset small --steps 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from paris_node.checkpoint import FOR_SAMPLING, FOR_TRAINING
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import DAG_PB, block_links, parse_cid
from paris_node.data.manifest import RunSpec, build_run, load_run
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.fsutil import tree_bytes
from paris_node.home import Home
from paris_node.identity import Identity, load_or_create
from paris_node.models.presets import expert_preset, router_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node.fetcher import CheckpointFetcher
from paris_node.node.publish import store_checkpoint
from paris_node.node.selection import LeaseHistory
from paris_node.node.verify import Candidate
from paris_node.records import PointerPayload, sign_record
from paris_node.swarm.tenure import Tenure
from paris_node.training.router_trainer import LabelledClusters, train_router
from paris_node.training.trainer import TrainConfig, train


class CountingFetch:
    """fetch(cid, providers): copy a DAG from `remote` into `local` through put() (verified), counting bytes."""

    def __init__(self, remote: Blockstore, local: Blockstore):
        self.remote, self.local, self.moved, self.by_root = remote, local, 0, {}

    def __call__(self, cid: str, providers) -> None:
        stack, moved = [cid], 0
        while stack:
            c = stack.pop()
            if not self.local.has(c):
                data = self.remote.get(c)
                self.local.put(c, data)
                moved += len(data)
            if parse_cid(c).codec == DAG_PB:
                stack.extend(block_links(c, self.local.get(c)))
        self.local.sync()
        self.moved += moved
        self.by_root[cid] = self.by_root.get(cid, 0) + moved


def publish_run(root: Path, preset: str, steps: int):
    home = Home(root / "publisher").ensure()
    owner = load_or_create(home.identity_path)
    spec = RunSpec(
        name="bench-fetch", dataset="shapes:128", samples=128, experts=2, expert_preset=preset,
        router_preset=preset, steps=steps, batch=8, publish_every_steps=1000,
    )  # fmt: skip
    run_id, _ = build_run(spec, home, owner)
    m = load_run(home, run_id)
    store = Blockstore(home.blocks_dir)
    # lr high and EMA off: a few steps clearly beat the zero predictor, which the fetcher's score requires
    cfg = TrainConfig(steps=steps, batch=8, lr=3e-3, ema=0.0, checkpoint_every=1000, progress=False, device="cpu")
    text, codec = build_text_encoder(m.text_encoder), LatentCodec(codec_spec(m.latent_space))
    train_sets = [ShardDataset(shard_path(home, m.shards[k].train.cid)) for k in range(m.experts)]
    publisher = Identity.generate()
    pointers = {}
    for k in range(m.experts):
        ecfg = expert_preset(m.expert_preset, text_encoder=m.text_encoder)
        ckpt = train(cfg, ecfg, train_sets[k], text, codec, root / f"train-{k}").checkpoint
        pointers[f"expert/{k}"] = ckpt
    rcfg = router_preset(m.router_preset, num_experts=m.experts)
    pointers["router"] = train_router(cfg, rcfg, LabelledClusters(train_sets), codec, root / "train-r").checkpoint
    cands = {}
    for job, ckpt in pointers.items():
        cid, record, _ = store_checkpoint(store, publisher, run_id, job, ckpt, steps, {}, None, m.cid_profile)
        ptr = sign_record(publisher, PointerPayload(job=job, manifest_cid=cid, step=steps, seq=1), run=run_id)
        cands[job] = (Candidate(ptr), record)
    return home, store, m, publisher, cands


def fetch_all(root: Path, name: str, pub_home: Home, pub_store: Blockstore, m, publisher, cands, roles) -> dict:
    home = Home(root / name).ensure()
    store = Blockstore(home.blocks_dir)
    history = LeaseHistory()
    for job in cands:
        history.add(Tenure(job, publisher.node_id, 0, 1 << 62))
    counting = CountingFetch(pub_store, store)
    fetcher = CheckpointFetcher(home, store, m, fetch=counting, history=history)
    fetcher.val_dataset(0), fetcher.val_dataset(1)  # the held-out shards: moved once per run, counted apart
    shards = counting.moved
    t = time.perf_counter()
    for job, (cand, _) in cands.items():
        accepted, verdicts = fetcher.fetch_job(job, [cand], roles=roles)
        assert accepted is not None and accepted.ok, [v.reason for v in verdicts]
    wall = time.perf_counter() - t
    weights = sum(r.body.files["model.safetensors"]["size"] for _, r in cands.values())
    everything = sum(f["size"] for _, r in cands.values() for f in r.body.files.values())
    moved = counting.moved - shards
    return {
        "wall_s": wall,
        "moved": moved,
        "weights": weights,
        "published": everything,
        "shards": shards,
        "disk": tree_bytes(home.blocks_dir, home.cache_dir) - shards,
        "installed": sum(
            f["size"] for _, r in cands.values() for n, f in r.body.files.items() if f.get("role") in roles
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pub = publish_run(root, args.preset, args.steps)
        print(f"preset {args.preset}, 2 experts + router, cid profile {pub[2].cid_profile}")
        print(
            f"{'fetch for':12} {'moved MB':>9} {'weights MB':>11} {'moved/weights':>14} "
            f"{'disk/weights':>13} {'disk/installed':>15} {'wall s':>7}"
        )
        for name, roles in (("sampling", FOR_SAMPLING), ("takeover", FOR_TRAINING)):
            r = fetch_all(root, name, *pub, roles)
            print(
                f"{name:12} {r['moved'] / 1e6:9.3f} {r['weights'] / 1e6:11.3f} {r['moved'] / r['weights']:14.3f} "
                f"{r['disk'] / r['weights']:13.3f} {r['disk'] / r['installed']:15.3f} {r['wall_s']:7.2f}"
            )
        print(
            f"(all published files: {r['published'] / r['weights']:.2f}x the weights; held-out shards moved once: "
            f"{r['shards'] / 1e6:.3f} MB, not counted above)"
        )
    sys.exit(0)


if __name__ == "__main__":
    main()
