"""Helpers for the node tests (fixtures in conftest.py): a tiny run, tiny checkpoints, in-process test doubles.

Everything here is in-process: no p2pd, no DHT. The "network" is a second Blockstore (the publishers' store)
and `RemoteFetch`, a test double for the content exchange that copies a DAG block by block into the
fetcher's store through `Blockstore.put`, which checks every block against its CID exactly as the real
exchange does (tests/content/test_exchange*.py test the real one; tests/node/test_node_swarm.py the real
swarm path).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tiny_swarm import tiny_spec

from paris_node.checkpoint import FORMAT_VERSION, CheckpointFormatError, sha256_file
from paris_node.checkpoint.format import ROLE_OF_FILE
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import DAG_PB, block_links, parse_cid
from paris_node.content.dag import add_bytes, add_file
from paris_node.data.manifest import RunManifest
from paris_node.data.prepare import shard_path
from paris_node.data.shards import ShardDataset
from paris_node.home import Home
from paris_node.identity import Identity
from paris_node.models.presets import expert_preset, router_preset
from paris_node.models.text import build_text_encoder
from paris_node.models.vae import LatentCodec, codec_spec
from paris_node.node.publish import store_checkpoint
from paris_node.node.verify import Candidate
from paris_node.records import CheckpointPayload, PointerPayload, SignedRecord, sign_record
from paris_node.training.router_trainer import LabelledClusters, train_router
from paris_node.training.trainer import TrainConfig, train

TINY_SPEC = tiny_spec("node-tests", samples=128, experts=2)
EXPERT_JOB = "expert/1"  # expert 1: the cluster of the tiny run with more than one validation sample


@dataclass
class TinyRun:
    """A run built in a publisher's home; `store` is that home's Blockstore (the "remote" for fetchers)."""

    home: Home
    store: Blockstore
    manifest: RunManifest
    owner: Identity

    @property
    def run_id(self) -> str:
        return self.manifest.run_id


def shard(run: TinyRun, k: int, split: str) -> ShardDataset:
    ref = run.manifest.shards[k].train if split == "train" else run.manifest.shards[k].val
    return ShardDataset(shard_path(run.home, ref.cid))


def tiny_train_config(steps: int, seed: int = 0) -> TrainConfig:
    # lr high and EMA off so that a handful of steps already beats the zero predictor clearly
    return TrainConfig(
        steps=steps, batch=8, lr=3e-3, ema=0.0, checkpoint_every=1000, progress=False, device="cpu", seed=seed
    )


def train_tiny_expert(run: TinyRun, out_dir: Path, steps: int, k: int = 1) -> Path:
    """Train expert k of `run` for `steps` steps; returns the final checkpoint folder (with training state)."""
    m = run.manifest
    text = build_text_encoder(m.text_encoder)
    codec = LatentCodec(codec_spec(m.latent_space))
    result = train(
        tiny_train_config(steps, seed=k), expert_preset(m.expert_preset), shard(run, k, "train"), text, codec, out_dir
    )
    assert result.checkpoint is not None
    return result.checkpoint


def train_tiny_router(run: TinyRun, out_dir: Path, steps: int) -> Path:
    m = run.manifest
    clusters = LabelledClusters([shard(run, k, "train") for k in range(m.experts)])
    rcfg = router_preset(m.router_preset, num_experts=m.experts)
    result = train_router(tiny_train_config(steps), rcfg, clusters, LatentCodec(codec_spec(m.latent_space)), out_dir)
    assert result.checkpoint is not None
    return result.checkpoint


# ---------------------------------------------------------------------------------------------------- publishing


def copy_ckpt(src: Path, dst: Path, *, weights_only: bool = False) -> Path:
    """A private copy of a checkpoint folder to tamper with (optionally without the training state)."""
    shutil.copytree(src, dst)
    if weights_only:
        for name in ("training_state.json", "training_state.safetensors"):
            (dst / name).unlink(missing_ok=True)
    return dst


def set_step(ckpt: Path, step: int) -> Path:
    """Rewrite config.json's step (a publisher may claim any step; only the manifest and pointer count)."""
    config = json.loads((ckpt / "config.json").read_text())
    config["step"] = step
    (ckpt / "config.json").write_text(json.dumps(config))
    return ckpt


def randomize_weights(ckpt: Path, scale: float = 0.5, seed: int = 0) -> Path:
    """Every tensor of model.safetensors replaced by randn * scale: right shapes, garbage values."""
    g = torch.Generator().manual_seed(seed)
    weights = load_file(str(ckpt / "model.safetensors"))
    garbage = {k: torch.randn(v.shape, generator=g).to(v.dtype) * scale for k, v in weights.items()}
    save_file(garbage, str(ckpt / "model.safetensors"), metadata={"format": "pt"})
    return ckpt


@dataclass
class Published:
    """One publication: the manifest in the remote store and the pointer announcing it."""

    manifest_cid: str
    record: SignedRecord
    pointer: SignedRecord

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.pointer)


def sign_pointer(
    identity: Identity, run_id: str, job: str, manifest_cid: str, step: int, seq: int = 1
) -> SignedRecord:
    return sign_record(identity, PointerPayload(job=job, manifest_cid=manifest_cid, step=step, seq=seq), run=run_id)


def forge_manifest(run: TinyRun, identity: Identity, job: str, ckpt: Path, step: int) -> tuple[str, SignedRecord]:
    """What a liar's own tooling signs: every file of `ckpt` with its role, none of the publisher's checks."""
    files = {}
    for path in sorted(p for p in ckpt.iterdir() if p.name in ROLE_OF_FILE):
        cid = add_file(run.store, path, run.manifest.cid_profile, pin=True)
        files[path.name] = {"cid": cid, "size": path.stat().st_size, "sha256": sha256_file(path)}
        files[path.name]["role"] = ROLE_OF_FILE[path.name]
    payload = CheckpointPayload(
        job=job,
        step=step,
        files=files,
        config_sha256=files["config.json"]["sha256"] if "config.json" in files else "0" * 64,
        cid_profile=run.manifest.cid_profile,
        format=FORMAT_VERSION,
    )
    record = sign_record(identity, payload, run=run.run_id)
    return add_bytes(run.store, record.to_bytes(), run.manifest.cid_profile, pin=True), record


def publish(run: TinyRun, identity: Identity, job: str, ckpt: Path, step: int, **metrics: float) -> Published:
    """What a node does: store_checkpoint + a signed pointer. A folder the honest publisher refuses to sign
    (weights that are not safetensors) is signed anyway, as a dishonest node's own tooling would."""
    try:
        cid, record, _ = store_checkpoint(
            run.store, identity, run.run_id, job, ckpt, step, metrics, None, run.manifest.cid_profile
        )
    except CheckpointFormatError:
        cid, record = forge_manifest(run, identity, job, ckpt, step)
    return Published(cid, record, sign_pointer(identity, run.run_id, job, cid, step))


# ---------------------------------------------------------------------------------------------------- the network


@dataclass
class RemoteFetch:
    """Test double for ExchangeService.fetch: copies a DAG from `remote` into `local`, block by block.

    Each block goes through `local.put`, which raises the content layer's BlockMismatch when the bytes do not
    hash to the CID, as the real exchange does with a peer's block. `tamper` maps a CID to the bytes the
    "remote peer" serves instead of the real ones (a lying peer). `calls` records every (cid, providers).
    """

    remote: Blockstore
    local: Blockstore
    tamper: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    def __call__(self, cid: str, providers: Sequence[str]) -> None:
        self.calls.append((cid, list(providers)))
        stack = [cid]
        while stack:
            c = stack.pop()
            if not self.local.has(c):
                self.local.put(c, self.tamper.get(c, self.remote.get(c)))  # BlockMismatch on wrong bytes
            if parse_cid(c).codec == DAG_PB:
                stack.extend(block_links(c, self.local.get(c)))
        self.local.sync()

    def fetched(self) -> list[str]:
        return [c for c, _ in self.calls]


@dataclass
class FetcherHome:
    """A fresh node that fetches from the tiny run's publishers: its own home, store and RemoteFetch."""

    home: Home
    store: Blockstore
    fetch: RemoteFetch


def fetcher_home_for(run: TinyRun, root: Path) -> FetcherHome:
    """A fresh node under `root` whose fetches copy from `run`'s publishers' store."""
    home = Home(root).ensure()
    store = Blockstore(home.blocks_dir)
    return FetcherHome(home, store, RemoteFetch(run.store, store))
