"""What makes a fetched checkpoint trustworthy: pure checks and the choice among candidates.

The networked fetcher (node/fetcher.py) downloads and hands the pieces to these functions; every check here
is a plain function of its inputs, unit-tested without a network. Which candidates are downloaded at all, and
which one is installed, is node/selection.py's (protocol/selection.md). A failed check raises `Rejected` (a
ParisError) with a reason a person can read; the fetcher catches it and records it in the candidate's `Verdict`,
so a peer's bad checkpoint is a value the node logs and survives, never an error that stops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from paris_node.data.runspec import publisher_allowed
from paris_node.errors import ParisError
from paris_node.records import CheckpointPayload, PointerPayload, SignedRecord

REQUIRED_FILES = ("config.json", "model.safetensors")
MAX_FILES = 16  # a checkpoint is weights, config and training state; more is a peer wasting our downloads
MAX_NAME = 128  # well under every file system's name limit (a longer one would fail the write, not the check)


# Every verdict's machine-readable code (Verdict.code, `"code"` in `paris-node fetch --json`): stable names a script
# may match, unlike the `reason` text, which is for people and may change. protocol/selection.md, "Verdict codes",
# lists them with these meanings (tests/node/test_verify.py keeps the two the same).
REASON_CODES: dict[str, str] = {
    # rejected before any download (selection.py's eligibility and step bounds; a skipped verdict carries these too)
    "wrong-job": "the pointer is for another job than the one asked for",
    "publisher": "the signer is not an allowed publisher of this (listed) run",
    "not-eligible": "the signer was not seen holding the job's lease, and no current owner vouches for it",
    "step-budget": "the step is past the run's step budget",
    "rollback": "the step is older than the checkpoint already held",
    "rate-bound": "the step is further past the held step than the time since it allows",
    # skipped without downloading (the candidate may be fine; selection.py's cost bounds)
    "penalised": "the signer's earlier candidate failed a check; it waits out its back-off",
    "vouched-fallback": "a seen owner's checkpoint is eligible; vouched ones are only a fallback",
    "skipped-budget": "over the per-job or per-signer download budget of one fetch",
    # rejected while downloading and checking (this module and node/fetcher.py)
    "unavailable": "the manifest or a file could not be fetched and verified against its CID (no provider, timeout)",
    "manifest-invalid": "the manifest is not a checkpoint record (too large, not JSON, bad schema, nested too deep)",
    "signature": "the manifest's signature does not verify",
    "manifest-mismatch": "the manifest disagrees with its pointer (signer, run, job or step) or is another kind",
    "manifest-files": "the manifest's file list is unusable (a required file missing, too many, an unsafe name)",
    "format": "the checkpoint format version is not the one this node reads",
    "file-mismatch": "a file's size or sha256 differs from the manifest",
    "config-invalid": "config.json is not a JSON object",
    "config-mismatch": "config.json differs from the model the run trains (kind, preset, shapes)",
    "not-safetensors": "model.safetensors is not a safetensors file (nothing else is ever loaded)",
    "weights-mismatch": "the weights do not fit the config (missing, extra or resized tensors)",
    "score-margin": "the held-out loss ratio, computed here, does not beat the zero predictor by the run's margin",
    "regression": "the held-out loss ratio is worse than the held checkpoint's beyond the tolerance (not penalised)",
    # not rejections
    "accepted": "verified and installed",
    "already-held": "the installed copy is this checkpoint, re-verified",
    "outscored": "passed every check, but another candidate scored better",
    "unannounced": "nobody announced a checkpoint for the job (`fetch` rows only)",
}


class Rejected(ParisError):
    """A candidate checkpoint failed a check: the message is the verdict shown to the user, `code` (a key of
    REASON_CODES) the same verdict for scripts and tests."""

    def __init__(self, message: str, code: str):
        if code not in REASON_CODES:
            raise ValueError(f"unknown rejection code {code!r}: add it to REASON_CODES and protocol/selection.md")
        super().__init__(message)
        self.code = code


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
    code: str = ""  # a key of REASON_CODES once decided
    val_loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def check_publisher(policy: str | tuple[str, ...] | list[str], signer: str) -> None:
    """The run's publisher policy (`data.runspec.publisher_allowed`, the one rule) as a check."""
    if not publisher_allowed(policy, signer):
        raise Rejected(f"signer {signer[:16]}... is not an allowed publisher of this run", "publisher")


def check_rollback(step: int, held_step: int | None) -> None:
    if held_step is not None and step < held_step:
        raise Rejected(f"step {step} is older than the step {held_step} already held (rollback)", "rollback")


def check_manifest(pointer: SignedRecord, manifest: SignedRecord, run_id: str, job: str) -> CheckpointPayload:
    """The manifest must be signed by the pointer's signer and agree with it on run, job and step."""
    body: CheckpointPayload = manifest.body  # type: ignore[assignment]
    ptr: PointerPayload = pointer.body  # type: ignore[assignment]
    if manifest.kind != "checkpoint":
        raise Rejected(f"manifest is a {manifest.kind} record, not a checkpoint", "manifest-mismatch")
    if manifest.signer != pointer.signer:
        raise Rejected("manifest signer differs from the pointer's signer", "manifest-mismatch")
    if manifest.run != run_id:
        raise Rejected("manifest belongs to another run", "manifest-mismatch")
    if body.job != job or ptr.job != job:
        raise Rejected(f"manifest is for job {body.job!r}, expected {job!r}", "manifest-mismatch")
    if body.step != ptr.step:
        raise Rejected(f"manifest step {body.step} differs from the pointer's step {ptr.step}", "manifest-mismatch")
    missing = [f for f in REQUIRED_FILES if f not in body.files]
    if missing:
        raise Rejected(f"manifest lacks {', '.join(missing)}", "manifest-files")
    if len(body.files) > MAX_FILES:
        raise Rejected(
            f"manifest lists {len(body.files)} files, more than the {MAX_FILES} a checkpoint has", "manifest-files"
        )
    for name in body.files:
        if not name or len(name) > MAX_NAME or name.startswith(".") or any(c in name for c in "/\\\0"):
            raise Rejected(f"manifest names an unsafe file {name!r}", "manifest-files")
    return body


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
