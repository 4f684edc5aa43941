"""The page's data: verified leases, statuses, pointers, checkpoint manifests and the local history, turned into
the JSON document `/api/status` serves and the HTML page renders (field names: protocol/status-api.md).

Pure module: inputs are already-verified records and plain values; numbers come out as numbers (the decimal
strings of records are parsed; a bad one becomes null). Peers' strings are passed through untouched here and
escaped by the renderer; nothing in this document is markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paris_node.dashboard.history import History
from paris_node.errors import RecordError
from paris_node.records import ROUTER_JOB, SignedRecord, StatusPayload
from paris_node.swarm.claims import DEFAULT_RULES, ClaimRules, Lease, owners

FORMAT = "paris-node/status-api/v1"
MAX_NOTES = 50


@dataclass(frozen=True)
class RunInfo:
    """What the page says about the run (from the verified run manifest)."""

    run_id: str
    name: str
    dataset: str
    experts: int
    expert_preset: str
    router_preset: str
    publishers: str | tuple[str, ...]
    val_loss_threshold: float | None = None
    resolution: int | None = None
    samples: int | None = None
    shard_sizes: tuple[int, ...] = ()

    @classmethod
    def of(cls, manifest) -> RunInfo:  # manifest: paris_node.data.runspec.RunManifest
        return cls(
            run_id=manifest.run_id,
            name=manifest.name,
            dataset=manifest.dataset,
            experts=manifest.experts,
            expert_preset=manifest.expert_preset,
            router_preset=manifest.router_preset,
            publishers=manifest.publishers,
            val_loss_threshold=manifest.val_loss_threshold,
            resolution=manifest.resolution,
            samples=manifest.samples,
            shard_sizes=tuple(s.train.samples for s in manifest.shards),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.run_id,
            "name": self.name,
            "dataset": self.dataset,
            "experts": self.experts,
            "expert_preset": self.expert_preset,
            "router_preset": self.router_preset,
            "publishers": "open" if self.publishers == "open" else list(self.publishers),
            "val_loss_threshold": self.val_loss_threshold,
            "resolution": self.resolution,
            "samples": self.samples,
            "shard_sizes": list(self.shard_sizes),
        }


@dataclass(frozen=True)
class CheckpointInfo:
    """A verified checkpoint manifest (signed by its pointer's signer, same run, job and step)."""

    manifest_cid: str
    signer: str
    step: int
    issued_ms: int
    metrics: dict[str, float | None]


@dataclass(frozen=True)
class SampleInfo:
    """A sample PNG that passed `check_sample` and its CID check; the server holds the bytes."""

    step: int
    manifest_cid: str
    cid: str
    width: int
    height: int
    prompts: tuple[str, ...]


@dataclass
class ViewInputs:
    run: RunInfo
    jobs: list[str]
    leases: list[Lease] = field(default_factory=list)
    statuses: list[SignedRecord] = field(default_factory=list)
    pointers: dict[str, list[SignedRecord]] = field(default_factory=dict)
    checkpoints: dict[str, CheckpointInfo] = field(default_factory=dict)  # manifest CID -> info
    holders: dict[str, list[str]] = field(default_factory=dict)  # manifest CID -> provider peer ids
    samples: dict[str, SampleInfo] = field(default_factory=dict)  # job -> sample
    history: History | None = None
    partition: bool = False  # the partition preview image is available
    notes: list[str] = field(default_factory=list)
    served_by: str | None = None


def number(value: Any) -> float | None:
    """A record's decimal string (or a number) as a float; None when absent or not a finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and x not in (float("inf"), float("-inf")) else None


def _seconds(ms: int) -> float:
    return round(ms / 1000, 1)


def latest_statuses(statuses: list[SignedRecord]) -> dict[str, tuple[SignedRecord, StatusPayload]]:
    """signer -> (its most recently issued status record, the parsed payload), for payloads that parse."""
    latest: dict[str, SignedRecord] = {}
    for rec in statuses:
        if rec.signer not in latest or rec.issued_ms > latest[rec.signer].issued_ms:
            latest[rec.signer] = rec
    out = {}
    for signer, rec in latest.items():
        try:
            out[signer] = (rec, rec.body)  # parsed once: the payload parse is the costly part of a big swarm
        except RecordError:
            continue
    return out


def best_pointer(pointers: list[SignedRecord]) -> SignedRecord | None:
    """The newest announcement (highest step, then newest record): what the page reports as latest."""
    return max(pointers, key=lambda r: (r.body.step, r.issued_ms), default=None)


def sample_url(job: str, sample: SampleInfo) -> str:
    return f"/sample/{job.replace('/', '-')}.png?cid={sample.cid}"


def build_view(inp: ViewInputs, now_ms: int, rules: ClaimRules = DEFAULT_RULES) -> dict[str, Any]:
    won = owners(inp.leases, now_ms, run=inp.run.run_id, rules=rules)
    latest = latest_statuses(inp.statuses)
    rows = []
    for job in inp.jobs:
        lease = won.get(job)
        st_rec, st = latest.get(lease.holder, (None, None)) if lease is not None else (None, None)
        if st is not None and st.job != job:
            st_rec, st = None, None
        ptr = best_pointer(inp.pointers.get(job, []))
        ckpt = inp.checkpoints.get(ptr.body.manifest_cid) if ptr is not None else None
        sample = inp.samples.get(job)
        points = inp.history.points(job) if inp.history is not None else []
        rows.append(
            {
                "job": job,
                "kind": "router" if job == ROUTER_JOB else "expert",
                "owner": lease.holder if lease else None,
                "lease_state": lease.state if lease else "free",
                "lease_left_s": max(0.0, _seconds(lease.expires_ms - now_ms)) if lease else None,
                "held_s": _seconds(now_ms - lease.lease_start_ms) if lease else None,
                "step": st.step if st else None,
                "train_loss": number(st.loss) if st else None,
                "val_loss": ckpt.metrics.get("val_loss") if ckpt else None,
                "samples_per_s": number(st.samples_per_s) if st else None,
                "status_age_s": _seconds(now_ms - st_rec.issued_ms) if st else None,
                "checkpoint": None
                if ptr is None
                else {
                    "cid": ptr.body.manifest_cid,
                    "step": ptr.body.step,
                    "signer": ptr.signer,
                    "age_s": _seconds(now_ms - ptr.issued_ms),
                    "verified": ckpt is not None,
                    "holders": sorted(inp.holders.get(ptr.body.manifest_cid, [])),
                    "metrics": dict(ckpt.metrics) if ckpt else {},
                },
                "sample": None
                if sample is None
                else {
                    "url": sample_url(job, sample),
                    "cid": sample.cid,
                    "step": sample.step,
                    "width": sample.width,
                    "height": sample.height,
                    "prompts": list(sample.prompts),
                },
                "history": [p.to_dict() for p in points],
            }
        )
    nodes = [
        {
            "node_id": signer,
            "role": body.role,
            "job": body.job,
            "step": body.step,
            "version": body.version,
            "error": getattr(body, "error", None),
            "age_s": _seconds(now_ms - rec.issued_ms),
        }
        for signer, (rec, body) in sorted(latest.items())
    ]
    return {
        "format": FORMAT,
        "generated_ms": now_ms,
        "served_by": inp.served_by,
        "run": inp.run.to_dict(),
        "jobs": rows,
        "nodes": nodes,
        "standbys": [n["node_id"] for n in nodes if n["role"] == "standby"],
        "partition": {"url": "/partition.png"} if inp.partition else None,
        "notes": list(inp.notes[-MAX_NOTES:]),
    }
