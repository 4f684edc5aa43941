"""What defines a run (`RunSpec`, flags of `paris-node init`) and the typed view of a verified
run manifest (`RunManifest`), with the pure conversions between them and the manifest document.

Pure module: no disk, no network. The document layout is specified in protocol/run-manifest.md;
real numbers travel as decimal strings because canonical JSON has no floats.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from paris_node.canonical import parse_real, real
from paris_node.content.cid import DEFAULT_PUBLISH_PROFILE
from paris_node.errors import SchemaError, UsageError
from paris_node.identity import Identity, public_from_node_id
from paris_node.records import ROUTER_JOB, RunPayload, SignedRecord

RUN_FORMAT = "paris-node/run/v1"
# v2 = v1 + `init` (the seed weights every job starts from). Only a seeded run is written as v2, so every other run
# id (the demo's included) is unchanged, and an older reader refuses a seeded run instead of ignoring its seed.
RUN_FORMAT_SEEDED = "paris-node/run/v2"
DEMO_IDENTITY = Identity.from_seed(hashlib.sha256(b"paris-node/demo-run/v1").digest())
DEMO_ISSUED_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so the demo manifest bytes are fixed


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run; `paris-node init` flags map one-to-one to these fields.

    None means "follow the expert preset" (resolution, text encoder) or "all samples".
    """

    name: str = "demo"
    dataset: str = "shapes"
    samples: int | None = 2048
    resolution: int | None = None
    center_crop: bool = True
    experts: int = 4
    expert_preset: str = "small"
    router_preset: str = "small"
    text_encoder: str | None = None
    embedder: str = "pixels"
    fine_clusters: int = 1024
    val_fraction: float = 0.05
    seed: int = 0
    batch: int = 32
    lr: float = 1e-3  # measured: 3e-4 learns nothing readable in the demo budget (docs/models.md)
    ema: float = 0.999
    steps: int = 4000
    caption_dropout: float = 0.1
    publish_every_steps: int = 250
    publish_every_s: int = 300
    publishers: str | tuple[str, ...] = "open"
    val_loss_threshold: float | None = 0.9  # open runs: 10 % better than the zero predictor (protocol/selection.md)
    cid_profile: str = DEFAULT_PUBLISH_PROFILE
    init_from: str | None = None  # a folder of seed weights (checkpoint/seed.py); its CIDs go in the manifest

    def validate(self) -> None:
        if self.experts < 1:
            raise UsageError(f"--experts must be at least 1, got {self.experts}")
        if self.samples is not None and self.samples < self.experts * 2:
            raise UsageError(f"--samples {self.samples} is too few for {self.experts} experts (need 2 per expert)")
        if not 0.0 < self.val_fraction < 0.5:
            raise UsageError(f"--val-fraction must be in (0, 0.5), got {self.val_fraction}")
        if min(self.batch, self.steps, self.publish_every_steps, self.publish_every_s, self.fine_clusters) < 1:
            raise UsageError("batch, steps, publish intervals and fine clusters must all be >= 1")
        if self.publishers != "open":
            if isinstance(self.publishers, str) or not self.publishers:
                raise UsageError("--publishers must be 'open' or a comma-separated list of node ids (z6Mk...)")
            for node in self.publishers:
                try:
                    public_from_node_id(node)
                except ValueError as e:
                    raise UsageError(f"--publishers: {e}") from None


DEMO_RUN = RunSpec()


@dataclass(frozen=True)
class FileRef:
    cid: str
    size: int
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = {"cid": self.cid, "size": self.size}
        return {**d, "samples": self.samples} if self.samples else d


@dataclass(frozen=True)
class RunInit:
    """The seed weights of a run (`init --init-from`): a `model.safetensors` per expert (the same file may seed
    several) and optionally the router's; a job with no checkpoint yet starts from its seed at step 0."""

    experts: tuple[FileRef, ...]
    router: FileRef | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "experts": [e.to_dict() for e in self.experts],
            "router": None if self.router is None else self.router.to_dict(),
        }

    def cids(self) -> list[str]:
        """The distinct seed CIDs, experts first."""
        refs = [*self.experts, *([] if self.router is None else [self.router])]
        return list(dict.fromkeys(r.cid for r in refs))


@dataclass(frozen=True)
class ExpertShards:
    expert: int
    train: FileRef
    val: FileRef


def publisher_allowed(policy: str | tuple[str, ...] | list[str], node_id: str) -> bool:
    """The run's publisher policy (the one check): "open" admits anyone, a list or tuple admits the listed node ids.

    Any other value (a bare id string, say) admits nobody: a string must never be matched as a substring.
    """
    if policy == "open":
        return True
    return isinstance(policy, (list, tuple)) and node_id in policy


@dataclass(frozen=True)
class RunManifest:
    """A verified run manifest with typed fields (what the node, trainers and swarm read)."""

    run_id: str
    record: SignedRecord
    name: str
    experts: int
    dataset: str
    samples: int
    resolution: int
    center_crop: bool
    seed: int
    skipped: int
    embedder: str
    fine_clusters: int
    val_fraction: float
    centroids: FileRef
    shard_format: str
    shards: tuple[ExpertShards, ...]
    expert_preset: str
    router_preset: str
    text_encoder: str
    latent_space: str
    training: dict[str, Any]  # batch, lr, ema, steps, caption_dropout, publish_every_steps, publish_every_s
    publishers: str | tuple[str, ...]
    val_loss_threshold: float | None
    cid_profile: str
    extra: dict[str, Any] = field(default_factory=dict)
    init: RunInit | None = None

    @property
    def signer(self) -> str:
        return self.record.signer

    @property
    def is_demo(self) -> bool:
        return self.record.signer == DEMO_IDENTITY.node_id

    def allows_publisher(self, node_id: str) -> bool:
        """Publisher policy: anyone on an open run (gated by val_loss_threshold), else the listed keys."""
        return publisher_allowed(self.publishers, node_id)

    def cids(self) -> list[str]:
        """Every CID the run needs: centroids, each expert's train and validation shard, then the seeds if any."""
        seeds = [] if self.init is None else self.init.cids()
        return [self.centroids.cid] + [c for s in self.shards for c in (s.train.cid, s.val.cid)] + seeds

    def seed_of(self, job: str) -> FileRef | None:
        """The seed weights `job` starts from when it has no checkpoint yet; None: it starts from scratch."""
        if self.init is None:
            return None
        if job == ROUTER_JOB:
            return self.init.router
        return self.init.experts[int(job.split("/", 1)[1])]


# ---------------------------------------------------------------------------------------------
#                                   Document <-> RunManifest
# ---------------------------------------------------------------------------------------------


def manifest_document(
    spec: RunSpec,
    *,
    resolution: int,
    text_encoder: str,
    latent_space: str,
    samples: int,
    skipped: int,
    centroids: FileRef,
    shards: list[ExpertShards],
    shard_format: str,
    init: RunInit | None = None,
) -> dict[str, Any]:
    """The `spec` object of the run payload (protocol/run-manifest.md). Reals are decimal strings."""
    seeded = {} if init is None else {"init": init.to_dict()}
    return {
        "format": RUN_FORMAT if init is None else RUN_FORMAT_SEEDED,
        "dataset": {
            "spec": spec.dataset,
            "samples": samples,
            "resolution": resolution,
            "center_crop": spec.center_crop,
            "seed": spec.seed,
            "skipped": skipped,
        },
        "partition": {
            "embedder": spec.embedder,
            "fine_clusters": spec.fine_clusters,
            "seed": spec.seed,
            "val_fraction": real(spec.val_fraction),
            "centroids": centroids.to_dict(),
        },
        "shard_format": shard_format,
        "shards": [{"expert": s.expert, "train": s.train.to_dict(), "val": s.val.to_dict()} for s in shards],
        "models": {
            "expert_preset": spec.expert_preset,
            "router_preset": spec.router_preset,
            "text_encoder": text_encoder,
            "latent_space": latent_space,
        },
        "training": {
            "batch": spec.batch,
            "lr": real(spec.lr),
            "ema": real(spec.ema),
            "steps": spec.steps,
            "caption_dropout": real(spec.caption_dropout),
            "publish_every_steps": spec.publish_every_steps,
            "publish_every_s": spec.publish_every_s,
        },
        "publishers": "open" if spec.publishers == "open" else sorted(spec.publishers),
        "val_loss_threshold": None if spec.val_loss_threshold is None else real(spec.val_loss_threshold),
        "cid_profile": spec.cid_profile,
        **seeded,
    }


def _get(obj: Any, path: str, tp: type | tuple[type, ...]) -> Any:
    cur = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            raise SchemaError(f"run manifest: missing {path}")
        cur = cur[part]
    if not isinstance(cur, tp) or (tp is int and isinstance(cur, bool)):
        raise SchemaError(f"run manifest: {path} has the wrong type ({type(cur).__name__})")
    return cur


def _ref(obj: Any) -> FileRef:
    return FileRef(
        _get(obj, "cid", str), _get(obj, "size", int), obj.get("samples", 0) if isinstance(obj, dict) else 0
    )


def parse_manifest(run_id: str, record: SignedRecord) -> RunManifest:
    """Typed view of a verified run record; SchemaError names the first bad field."""
    body = record.body
    assert isinstance(body, RunPayload)
    d = body.spec
    if d.get("format") not in (RUN_FORMAT, RUN_FORMAT_SEEDED):
        raise SchemaError(f"run manifest format {d.get('format')!r} is not {RUN_FORMAT} or {RUN_FORMAT_SEEDED}")
    shards = []
    for i, s in enumerate(_get(d, "shards", list)):
        if _get(s, "expert", int) != i:
            raise SchemaError(f"run manifest: shards[{i}] is for expert {s.get('expert')}, expected {i}")
        shards.append(ExpertShards(i, _ref(_get(s, "train", dict)), _ref(_get(s, "val", dict))))
    if len(shards) != body.experts:
        raise SchemaError(f"run manifest: {len(shards)} shard entries for {body.experts} experts")
    training = dict(_get(d, "training", dict))
    for key in ("lr", "ema", "caption_dropout"):
        training[key] = parse_real(_get(d, f"training.{key}", str))
    publishers = _get(d, "publishers", (str, list))
    if isinstance(publishers, str) and publishers != "open":
        raise SchemaError(f"run manifest: publishers must be 'open' or a list, got {publishers!r}")
    threshold = d.get("val_loss_threshold")
    init = _init(d, body.experts) if d["format"] == RUN_FORMAT_SEEDED else None
    known = {
        "format",
        "dataset",
        "partition",
        "shard_format",
        "shards",
        "models",
        "training",
        "publishers",
        "val_loss_threshold",
        "cid_profile",
        "init",
    }
    return RunManifest(
        run_id=run_id,
        record=record,
        name=body.name,
        experts=body.experts,
        dataset=_get(d, "dataset.spec", str),
        samples=_get(d, "dataset.samples", int),
        resolution=_get(d, "dataset.resolution", int),
        center_crop=_get(d, "dataset.center_crop", bool),
        seed=_get(d, "dataset.seed", int),
        skipped=_get(d, "dataset.skipped", int),
        embedder=_get(d, "partition.embedder", str),
        fine_clusters=_get(d, "partition.fine_clusters", int),
        val_fraction=parse_real(_get(d, "partition.val_fraction", str)),
        centroids=_ref(_get(d, "partition.centroids", dict)),
        shard_format=_get(d, "shard_format", str),
        shards=tuple(shards),
        expert_preset=_get(d, "models.expert_preset", str),
        router_preset=_get(d, "models.router_preset", str),
        text_encoder=_get(d, "models.text_encoder", str),
        latent_space=_get(d, "models.latent_space", str),
        training=training,
        publishers="open" if publishers == "open" else tuple(publishers),
        val_loss_threshold=None if threshold is None else parse_real(threshold),
        cid_profile=_get(d, "cid_profile", str),
        extra={k: v for k, v in d.items() if k not in known},
        init=init,
    )


def _init(d: dict[str, Any], experts: int) -> RunInit:
    """The `init` object of a v2 manifest: one seed per expert, the router's or null."""
    refs = _get(d, "init.experts", list)
    if len(refs) != experts:
        raise SchemaError(f"run manifest: init.experts has {len(refs)} entries for {experts} experts")
    router = _get(d, "init", dict).get("router")
    return RunInit(
        tuple(_ref(_get({"e": r}, "e", dict)) for r in refs),
        None if router is None else _ref(_get(d, "init.router", dict)),
    )


def spec_from_manifest(m: RunManifest) -> RunSpec:
    """The RunSpec that recreates `m` (for `init --like RUN` and tests)."""
    return dataclasses.replace(
        DEMO_RUN,
        name=m.name,
        dataset=m.dataset,
        samples=m.samples,
        resolution=m.resolution,
        center_crop=m.center_crop,
        experts=m.experts,
        expert_preset=m.expert_preset,
        router_preset=m.router_preset,
        text_encoder=m.text_encoder,
        embedder=m.embedder,
        fine_clusters=m.fine_clusters,
        val_fraction=m.val_fraction,
        seed=m.seed,
        batch=m.training["batch"],
        lr=m.training["lr"],
        ema=m.training["ema"],
        steps=m.training["steps"],
        caption_dropout=m.training["caption_dropout"],
        publish_every_steps=m.training["publish_every_steps"],
        publish_every_s=m.training["publish_every_s"],
        publishers=m.publishers,
        val_loss_threshold=m.val_loss_threshold,
        cid_profile=m.cid_profile,
    )
