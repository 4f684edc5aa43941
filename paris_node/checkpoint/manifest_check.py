"""Does a checkpoint manifest agree with the pointer that names it, and is its file list safe to install?

A pure check of two signed records (no store, no network), shared by the fetcher (node/fetcher.py) and the
dashboard, which reads the same manifests. The file list's format (roles, CIDs) is format.py's `manifest_entries`.
"""

from __future__ import annotations

from paris_node.checkpoint.format import CONFIG, WEIGHTS
from paris_node.records import CheckpointPayload, PointerPayload, SignedRecord
from paris_node.verdicts import Rejected

REQUIRED_FILES = (CONFIG, WEIGHTS)
MAX_FILES = 16  # a checkpoint is weights, config and training state; more is a peer wasting our downloads
MAX_NAME = 128  # well under every file system's name limit (a longer one would fail the write, not the check)


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
