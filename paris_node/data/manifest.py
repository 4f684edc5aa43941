"""The run manifest: one signed `run` record, stored by CID; the run id is that CID.

`build_run(spec, home, identity)` turns a `RunSpec` (what `paris-node init` flags say) into data
shards and centroids in the content store plus the signed manifest naming them by CID;
`load_run(home, run_id)` reads it back, checking the bytes hash to the run id and the signature.
The document layout is specified in protocol/run-manifest.md.

The demo run is signed by a well-known key derived from a fixed string (`DEMO_IDENTITY`) at a fixed
time, so every machine that runs `paris-node init` computes the very same bytes and run id. That
key's secret is public: its signature proves nothing, and the demo's trust rests on the run id
alone (each node rebuilt the manifest itself; a CID cannot be forged). Every other run is signed
by the creating node's own key, and its signature names who defined the run.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import file_cid, parse_cid, resolve_profile
from paris_node.content.dag import add_bytes, iter_file
from paris_node.data.prepare import prepare_data, resolve_models, store_for, unpin_new
from paris_node.data.runspec import (  # noqa: F401  (re-exported: the node imports them from here)
    DEMO_IDENTITY,
    DEMO_ISSUED_MS,
    DEMO_RUN,
    RUN_FORMAT,
    ExpertShards,
    FileRef,
    RunInit,
    RunManifest,
    RunSpec,
    manifest_document,
    parse_manifest,
    spec_from_manifest,
)
from paris_node.errors import SchemaError, UsageError
from paris_node.fsutil import atomic_write
from paris_node.home import Home
from paris_node.identity import Identity
from paris_node.records import RunPayload, SignedRecord, decode_record, sign_record

log = logging.getLogger(__name__)
MANIFEST_FILE = "manifest.json"


def build_run(
    spec: RunSpec, home: Home, identity: Identity | None = None, *, issued_ms: int | None = None
) -> tuple[str, SignedRecord]:
    """Make the shards, store and pin everything, sign the manifest; returns (run id, record).

    The demo spec (`DEMO_RUN`) is always signed by DEMO_IDENTITY at DEMO_ISSUED_MS so its run id is
    the same on every machine; any other spec is signed by `identity` (required) at `issued_ms`
    (default: now).
    """
    spec.validate()
    if spec == DEMO_RUN:
        identity, issued_ms = DEMO_IDENTITY, DEMO_ISSUED_MS
    elif identity is None:
        raise UsageError("a run other than the built-in demo needs a signing identity (the node key)")
    resolution, text_encoder, latent_space = resolve_models(spec)
    seed = check_run_seed(spec, text_encoder)  # bad seed weights are refused before anything is written
    store = store_for(home)
    pinned_before = set(store.pins())
    try:
        init = None if seed is None else _store_seed(spec, seed, home, store)
        prepared = prepare_data(spec, resolution, home, store)
        doc = manifest_document(
            spec,
            resolution=resolution,
            text_encoder=text_encoder,
            latent_space=latent_space,
            samples=prepared.samples,
            skipped=prepared.skipped,
            centroids=prepared.centroids,
            shards=prepared.shards,
            shard_format=prepared.shard_format,
            init=init,
        )
        record = sign_record(identity, RunPayload(name=spec.name, experts=spec.experts, spec=doc), issued_ms=issued_ms)
        data = record.to_bytes()
        run_id = add_bytes(store, data, spec.cid_profile, pin=True)
        _save_local(home, run_id, data)
    except BaseException:
        unpin_new(store, pinned_before)  # a failed build leaves no pinned half-run behind
        raise
    parse_manifest(run_id, record)  # what we publish must read back
    log.info("run %s: %d experts, shard sizes %s", run_id, spec.experts, [s.train.samples for s in prepared.shards])
    return run_id, record


def check_run_seed(spec: RunSpec, text_encoder: str) -> tuple | None:
    """(source, expert config, router config) of a run with `init_from`, every seed checked; None without."""
    if spec.init_from is None:
        return None
    from paris_node.checkpoint.seed import check_seed, find_seed
    from paris_node.models.presets import expert_preset, router_preset

    source = find_seed(spec.init_from)
    expert_cfg = expert_preset(spec.expert_preset, text_encoder=text_encoder)  # = node.fetcher.run_expert_config
    router_cfg = router_preset(spec.router_preset, num_experts=spec.experts) if spec.experts > 1 else None
    check_seed(source, spec.experts, expert_cfg, router_cfg)
    return source, expert_cfg, router_cfg


def _store_seed(spec: RunSpec, seed: tuple, home: Home, store: Blockstore) -> RunInit:
    """Convert each checked seed folder to the format's weights file, add it to the store (pinned): the CIDs."""
    from paris_node.checkpoint.seed import seed_weights
    from paris_node.content.dag import add_file

    source, expert_cfg, router_cfg = seed
    home.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".seed-", dir=home.root))
    try:

        def stored(folder: Path, kind: str, cfg) -> FileRef:
            path = seed_weights(folder, source.layout, kind, cfg, tmp / f"{kind}-{len(done)}.safetensors")
            return FileRef(add_file(store, path, spec.cid_profile, pin=True), path.stat().st_size)

        done: dict[Path, FileRef] = {}
        for k in range(spec.experts):
            folder = source.expert_dir(k)
            if folder not in done:  # one transformer seeds every expert: converted and stored once
                done[folder] = stored(folder, "expert", expert_cfg)
        router = None
        if source.router is not None and router_cfg is not None:
            router = stored(source.router, "router", router_cfg)
        return RunInit(tuple(done[source.expert_dir(k)] for k in range(spec.experts)), router)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _save_local(home: Home, run_id: str, data: bytes) -> None:
    atomic_write(home.runs_dir / run_id / MANIFEST_FILE, data)


def load_run(home: Home, run_id: str) -> RunManifest:
    """Read, verify (bytes hash to `run_id`, signature, schema) and parse a run manifest.

    Looks in the content store, then in `<home>/runs/<run_id>/manifest.json`; UsageError if the run
    is in neither (fetch it from the swarm first).
    """
    try:
        info = parse_cid(run_id)
    except ValueError:
        raise UsageError(f"{run_id!r} is not a run id (a CID such as bafkrei...)") from None
    store = store_for(home)
    data = None
    try:
        data = b"".join(iter_file(store, run_id))  # verifies every block against its CID
    except KeyError:
        local = home.runs_dir / run_id / MANIFEST_FILE
        if local.is_file():
            data = local.read_bytes()
    if data is None:
        raise UsageError(f"run {run_id} is not in {home.root}: run 'paris-node init' or fetch it from the swarm")
    profiles = [
        p for p in ("unixfs-v1-2025", "cid-v1", "kubo-default") if resolve_profile(p).cid_version == info.version
    ]
    if not any(file_cid(data, p) == run_id for p in profiles):
        raise SchemaError(f"run {run_id}: the stored manifest does not hash to its run id (corrupt copy)")
    record = decode_record(data, kind="run")
    return parse_manifest(run_id, record)
