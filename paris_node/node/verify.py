"""What makes a fetched checkpoint trustworthy: pure checks and the choice among candidates.

The networked fetcher (node/fetcher.py) downloads and hands the pieces to these functions; every check here
is a plain function of its inputs, unit-tested without a network. Which candidates are downloaded at all, and
which one is installed, is node/selection.py's (protocol/selection.md); whether a manifest agrees with its pointer
is checkpoint/manifest_check.py's (the dashboard reads manifests too). A failed check raises `Rejected` (a
ParisError, paris_node/verdicts.py) with a reason a person can read and a code for scripts; the fetcher catches it
and records both in the candidate's `Verdict`, so a peer's bad checkpoint is a value the node logs and survives,
never an error that stops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paris_node.data.runspec import publisher_allowed
from paris_node.records import PointerPayload, SignedRecord
from paris_node.verdicts import Rejected


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
    code: str = ""  # a key of verdicts.REASON_CODES once decided
    val_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_publisher(policy: str | tuple[str, ...] | list[str], signer: str) -> None:
    """The run's publisher policy (`data.runspec.publisher_allowed`, the one rule) as a check."""
    if not publisher_allowed(policy, signer):
        raise Rejected(f"signer {signer[:16]}... is not an allowed publisher of this run", "publisher")


def check_rollback(step: int, held_step: int | None) -> None:
    if held_step is not None and step < held_step:
        raise Rejected(f"step {step} is older than the step {held_step} already held (rollback)", "rollback")


def check_file(name: str, data_sha256: str, size: int, meta: dict) -> None:
    if size != meta["size"]:
        raise Rejected(f"{name}: {size} bytes, manifest says {meta['size']}", "file-mismatch")
    if data_sha256 != meta["sha256"]:
        raise Rejected(f"{name}: sha256 differs from the manifest", "file-mismatch")


def check_config(config: dict, expected: dict) -> None:
    """Every expected field (preset, shapes, expert id...) must be present and equal in the checkpoint config."""
    if not isinstance(config, dict):
        raise Rejected(f"config.json is not a JSON object but {type(config).__name__}", "config-invalid")
    for key, want in expected.items():
        got = config.get(key)
        if got != want:
            raise Rejected(f"config {key} is {got!r}, the run expects {want!r}", "config-mismatch")
