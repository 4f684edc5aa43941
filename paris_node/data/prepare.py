"""From a dataset spec to content-addressed expert shards: open, embed, partition, split, write, store.

Used by `build_run`. Every step is deterministic given the RunSpec (dataset order, seeded k-means,
seeded validation split, canonical shard bytes), so the same spec gives the same CIDs.
Samples are held in memory while partitioning (fine for the built-in data and tens of thousands of
small images; a streaming two-pass version is future work).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import add_file, export_file
from paris_node.data.datasets import open_dataset
from paris_node.data.embedders import get_embedder
from paris_node.data.partition import partition
from paris_node.data.runspec import ExpertShards, FileRef, RunSpec
from paris_node.data.shards import FORMAT as SHARD_FORMAT
from paris_node.data.shards import write_shard
from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write
from paris_node.home import Home

log = logging.getLogger(__name__)
MIN_CLUSTER = 2  # one training and one validation sample


@dataclass(frozen=True)
class PreparedData:
    samples: int
    skipped: int
    centroids: FileRef
    shards: list[ExpertShards]
    shard_format: str = SHARD_FORMAT


def store_for(home: Home) -> Blockstore:
    home.ensure()
    return Blockstore(home.blocks_dir)


def consistent_router(expert: str) -> str | None:
    """The router preset that sees what expert preset `expert` sees (same latent and shape); same name first."""
    from paris_node.models.presets import ROUTER_PRESETS, expert_preset

    cfg = expert_preset(expert)
    fits = [n for n, r in ROUTER_PRESETS.items() if (r.latent, r.latent_shape) == (cfg.latent, cfg.latent_shape)]
    return expert if expert in fits else (fits[0] if fits else None)


def resolve_models(spec: RunSpec) -> tuple[int, str, str]:
    """(resolution, text encoder, latent space) from the expert preset, checked against the spec.

    The router must see exactly what the experts see (latent space and shape): a run whose router preset does
    not fit would fail at its router's first step, so it is refused here, naming the preset that fits.
    """
    from paris_node.models.presets import expert_preset, router_preset

    cfg = expert_preset(spec.expert_preset)
    rcfg = router_preset(spec.router_preset)  # UsageError for an unknown name
    if spec.experts > 1 and (rcfg.latent, rcfg.latent_shape) != (cfg.latent, cfg.latent_shape):
        fit = consistent_router(spec.expert_preset)
        fix = f"use --router-preset {fit} (or leave --router-preset out)" if fit else "choose another --preset"
        raise UsageError(
            f"--router-preset {spec.router_preset!r} sees {rcfg.latent} {'x'.join(map(str, rcfg.latent_shape))} "
            f"but expert preset {spec.expert_preset!r} trains on {cfg.latent} "
            f"{'x'.join(map(str, cfg.latent_shape))}: {fix}"
        )
    resolution = spec.resolution if spec.resolution is not None else cfg.image_size
    if resolution != cfg.image_size:
        from paris_node.models.presets import EXPERT_PRESETS

        sized = [n for n, c in EXPERT_PRESETS.items() if c.image_size == resolution]
        fix = f"use --preset {sized[0]} for {resolution} px" if sized else "drop --resolution"
        raise UsageError(
            f"--resolution {resolution}: expert preset {spec.expert_preset!r} trains on {cfg.image_size} px images; "
            f"{fix} (or drop --resolution to follow the preset)"
        )
    text = spec.text_encoder or cfg.text_encoder
    m = re.fullmatch(r"hash:(\d+)x(\d+)", text)
    if m and (int(m.group(1)), int(m.group(2))) != (cfg.caption_channels, cfg.max_text_len):
        raise UsageError(
            f"--text-encoder {text}: expert preset {spec.expert_preset!r} expects "
            f"{cfg.caption_channels}-dim text of length {cfg.max_text_len} (e.g. {cfg.text_encoder})"
        )
    return resolution, text, cfg.latent


def split_cluster(members: np.ndarray, val_fraction: float, seed: int, expert: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sample indices of one cluster, both sorted; at least one of each."""
    n_val = min(len(members) - 1, max(1, int(round(len(members) * val_fraction))))
    rng = np.random.Generator(np.random.PCG64([seed, 7919, expert]))
    order = members[rng.permutation(len(members))]
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def prepare_data(spec: RunSpec, resolution: int, home: Home, store: Blockstore) -> PreparedData:
    """Build, store and pin the centroids file and every expert's train and validation shard."""
    ds = open_dataset(spec.dataset, resolution, spec.center_crop, spec.seed)
    items = ds.take(spec.samples)
    if spec.samples is not None and len(items) < spec.samples:
        log.warning("dataset %s gave %d samples, fewer than --samples %d", spec.dataset, len(items), spec.samples)
    if ds.skipped:
        log.warning("dataset %s: skipped %d items (%s)", spec.dataset, ds.skipped, dict(ds.skip_reasons))
    if len(items) < spec.experts * MIN_CLUSTER:
        raise UsageError(
            f"dataset {spec.dataset!r} has {len(items)} usable samples, too few for {spec.experts} experts "
            f"(need {MIN_CLUSTER} each): use fewer experts or more data"
        )
    embeddings = get_embedder(spec.embedder).embed([img for img, _ in items])
    part = partition(embeddings, spec.experts, fine=spec.fine_clusters, seed=spec.seed, min_size=MIN_CLUSTER)

    staging = home.work_dir / f"init-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        centroid_path = staging / "centroids.safetensors"
        atomic_write(centroid_path, part.to_bytes({"embedder": spec.embedder, "experts": str(spec.experts)}))
        centroids = _store(store, centroid_path, spec.cid_profile)
        shards = []
        for k in range(spec.experts):
            train, val = split_cluster(np.flatnonzero(part.labels == k), spec.val_fraction, spec.seed, k)
            refs = []
            for split, idx in (("train", train), ("val", val)):
                path = staging / f"expert-{k}-{split}.safetensors"
                meta = {"dataset": spec.dataset, "expert": str(k), "experts": str(spec.experts), "split": split}
                write_shard(path, [items[i] for i in idx], idx, meta=meta)
                refs.append(_store(store, path, spec.cid_profile, samples=len(idx)))
            shards.append(ExpertShards(k, refs[0], refs[1]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreparedData(samples=len(items), skipped=ds.skipped, centroids=centroids, shards=shards)


def unpin_new(store: Blockstore, before: set[str]) -> None:
    """Drop the pins added since `before` (their blocks go at the next gc)."""
    for cid in set(store.pins()) - before:
        try:
            store.unpin(cid)
        except KeyError:
            pass


def _store(store: Blockstore, path: Path, profile: str, samples: int = 0) -> FileRef:
    cid = add_file(store, path, profile, pin=True)
    return FileRef(cid, path.stat().st_size, samples)


def shard_path(home: Home, cid: str) -> Path:
    """A local, verified file for a stored shard (or centroids file): exported once into the cache.

    BlockNotFound (a KeyError) when the content store does not hold it yet: fetch it first.
    """
    path = home.cache_dir / "shards" / f"{cid}.safetensors"
    if not path.is_file():
        export_file(store_for(home), cid, path)
    return path
