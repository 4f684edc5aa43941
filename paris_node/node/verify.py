"""What makes a fetched checkpoint trustworthy: pure checks and the choice among candidates.

The networked fetcher (node/fetcher.py) downloads and hands the pieces to these functions; every check here
is a plain function of its inputs, unit-tested without a network. Which candidates are downloaded at all, and
which one is installed, is node/selection.py's (protocol/selection.md). A failed check is a `Rejected` value with
a reason a person can read, never an exception that could stop the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paris_node.records import CheckpointPayload, PointerPayload, SignedRecord

REQUIRED_FILES = ("config.json", "model.safetensors")
MAX_FILES = 16  # a checkpoint is weights, config and training state; more is a peer wasting our downloads
MAX_NAME = 128  # well under every file system's name limit (a longer one would fail the write, not the check)


class Rejected(Exception):
    """A candidate checkpoint failed a check; the message is the verdict shown to the user."""


@dataclass(frozen=True)
class Candidate:
    """A checkpoint someone announced for a job: their signed pointer record."""

    pointer: SignedRecord

    @property
    def body(self) -> PointerPayload:
        return self.pointer.body  # type: ignore[return-value]

    @property
    def signer(self) -> str:
        return self.pointer.signer


@dataclass
class Verdict:
    job: str
    signer: str
    step: int
    manifest_cid: str
    ok: bool = False
    reason: str = ""
    val_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_publisher(policy: str | list[str], signer: str) -> None:
    if policy == "open":
        return
    if isinstance(policy, (list, tuple)) and signer in policy:  # RunManifest holds the list as a tuple
        return
    raise Rejected(f"signer {signer[:16]}... is not an allowed publisher of this run")


def check_rollback(step: int, held_step: int | None) -> None:
    if held_step is not None and step < held_step:
        raise Rejected(f"step {step} is older than the step {held_step} already held (rollback)")


def check_manifest(pointer: SignedRecord, manifest: SignedRecord, run_id: str, job: str) -> CheckpointPayload:
    """The manifest must be signed by the pointer's signer and agree with it on run, job and step."""
    body: CheckpointPayload = manifest.body  # type: ignore[assignment]
    ptr: PointerPayload = pointer.body  # type: ignore[assignment]
    if manifest.kind != "checkpoint":
        raise Rejected(f"manifest is a {manifest.kind} record, not a checkpoint")
    if manifest.signer != pointer.signer:
        raise Rejected("manifest signer differs from the pointer's signer")
    if manifest.run != run_id:
        raise Rejected("manifest belongs to another run")
    if body.job != job or ptr.job != job:
        raise Rejected(f"manifest is for job {body.job!r}, expected {job!r}")
    if body.step != ptr.step:
        raise Rejected(f"manifest step {body.step} differs from the pointer's step {ptr.step}")
    missing = [f for f in REQUIRED_FILES if f not in body.files]
    if missing:
        raise Rejected(f"manifest lacks {', '.join(missing)}")
    if len(body.files) > MAX_FILES:
        raise Rejected(f"manifest lists {len(body.files)} files, more than the {MAX_FILES} a checkpoint has")
    for name in body.files:
        if not name or len(name) > MAX_NAME or name.startswith(".") or any(c in name for c in "/\\\0"):
            raise Rejected(f"manifest names an unsafe file {name!r}")
    return body


def check_file(name: str, data_sha256: str, size: int, meta: dict) -> None:
    if size != meta["size"]:
        raise Rejected(f"{name}: {size} bytes, manifest says {meta['size']}")
    if data_sha256 != meta["sha256"]:
        raise Rejected(f"{name}: sha256 differs from the manifest")


def check_config(config: dict, expected: dict) -> None:
    """Every expected field (preset, shapes, expert id...) must be present and equal in the checkpoint config."""
    if not isinstance(config, dict):
        raise Rejected(f"config.json is not a JSON object but {type(config).__name__}")
    for key, want in expected.items():
        got = config.get(key)
        if got != want:
            raise Rejected(f"config {key} is {got!r}, the run expects {want!r}")


def check_val_loss(val_loss: float, threshold: float | None) -> None:
    if threshold is not None and not (val_loss <= threshold):  # also rejects NaN
        raise Rejected(f"validation loss {val_loss:.4f} is worse than the run's threshold {threshold:.4f}")
