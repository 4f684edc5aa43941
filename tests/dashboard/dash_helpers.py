"""Helpers for the dashboard tests: signed records of a made-up swarm, sample PNGs, an in-memory swarm source."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, PngImagePlugin

from paris_node.dashboard.view import RunInfo
from paris_node.identity import Identity
from paris_node.records import (
    CheckpointPayload,
    PointerPayload,
    SignedRecord,
    StatusPayload,
    now_ms,
    sign_record,
)
from paris_node.sampling.sample_png import PROMPTS_KEY, encode_prompts
from paris_node.swarm.claims import Lease

RUN = "bafkreidashboardtestrun"
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def run_info(experts: int = 2, name: str = "dash-test") -> RunInfo:
    return RunInfo(RUN, name, "shapes:64", experts, "tiny", "tiny", "open", 1.0, 16, 64, (32,) * experts)


def png_bytes(prompts: Sequence[str] = ("a red circle",), size: int = 16, color=(200, 40, 40)) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(PROMPTS_KEY, encode_prompts(list(prompts)))
    buf = io.BytesIO()
    Image.new("RGB", (size * len(prompts), size), color).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def meta_of(data: bytes, cid: str, role: str | None = None) -> dict:
    meta = {"cid": cid, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return {**meta, "role": role} if role else meta


def lease(node: Identity, job: str, t: int, state: str = "active", ttl_ms: int = 60_000) -> Lease:
    return Lease(job, node.node_id, t - 5_000, 3, ttl_ms, state, t)


def status(
    node: Identity, job: str | None, step: int, t: int, role: str = "expert", run: str = RUN, **extra
) -> SignedRecord:
    payload = StatusPayload(role=role, peer=node.peer_id, version="0.1", job=job, step=step, **extra)
    return sign_record(node, payload, run=run, issued_ms=t)


def pointer(node: Identity, job: str, cid: str, step: int, t: int, run: str = RUN) -> SignedRecord:
    return sign_record(node, PointerPayload(job=job, manifest_cid=cid, step=step, seq=step), run=run, issued_ms=t)


def manifest(node: Identity, job: str, step: int, files: dict, t: int, run: str = RUN, **metrics: str) -> SignedRecord:
    base = {"config.json": {"cid": "bafkconfig", "size": 2, "sha256": "0" * 64, "role": "config"}}
    base["model.safetensors"] = {"cid": "bafkweights", "size": 2, "sha256": "1" * 64, "role": "weights"}
    payload = CheckpointPayload(
        job=job,
        step=step,
        files={**base, **files},
        config_sha256="0" * 64,
        cid_profile="unixfs-v1-2025",
        metrics=metrics,
    )
    return sign_record(node, payload, run=run, issued_ms=t)


@dataclass
class FakeSource:
    """An in-memory swarm: records as given, content by key (the real DhtSource checks CIDs; tests of the
    collector check what it does with the bytes it gets)."""

    leases_: list[Lease] = field(default_factory=list)
    statuses_: list[SignedRecord] = field(default_factory=list)
    pointers_: dict[str, list[SignedRecord]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    provider_map: dict[str, list[str]] = field(default_factory=dict)
    fetched: list[str] = field(default_factory=list)

    def leases(self, jobs: list[str]) -> list[Lease]:
        return [x for x in self.leases_ if x.job in jobs]

    def statuses(self) -> list[SignedRecord]:
        return list(self.statuses_)

    def pointers(self, job: str) -> list[SignedRecord]:
        return list(self.pointers_.get(job, []))

    def providers(self, cid: str) -> list[str]:
        return list(self.provider_map.get(cid, []))

    def has(self, cid: str) -> bool:
        return cid in self.blobs

    def content(self, cid: str, peers: Sequence[str]) -> bytes:
        self.fetched.append(cid)
        if cid not in self.blobs:
            raise KeyError(cid)
        return self.blobs[cid]


def swarm_of(jobs: int, statuses_per_node: int = 1, t: int | None = None) -> tuple[list, list, dict]:
    """A big made-up swarm: one owner per job with `statuses_per_node` status records, a pointer per job."""
    t = now_ms() if t is None else t
    leases, statuses, pointers = [], [], {}
    for k in range(jobs):
        node = Identity.generate()
        job = f"expert/{k}"
        leases.append(lease(node, job, t))
        for i in range(statuses_per_node):
            statuses.append(status(node, job, 100 + i, t - 1000 * (statuses_per_node - i), loss="0.5"))
        pointers[job] = [pointer(node, job, f"bafkmanifest{k:04d}", 100, t)]
    return leases, statuses, pointers
