"""The verdict vocabulary: `Rejected`, the error every check of a peer's data raises, and its reason codes.

Ground floor (errors only) so that every layer that judges a peer's checkpoint (node/verify.py, node/selection.py,
checkpoint/manifest_check.py, the dashboard) says "no" the same way. A rejection is a value the node logs and
survives, never an error that stops it (the fetcher records it in the candidate's Verdict).
"""

from __future__ import annotations

from paris_node.errors import ParisError

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
    "cooling": "the signer's last candidate could not be fetched; it is retried after a short back-off",
    "vouched-fallback": "a seen owner's checkpoint is eligible; vouched ones are only a fallback",
    "skipped-budget": "over the per-job or per-signer download budget of one fetch",
    # rejected while downloading and checking (node/verify.py, checkpoint/manifest_check.py, node/fetcher.py)
    "unavailable": "the manifest or a file could not be fetched and verified against its CID (no provider, timeout); "
    "the signer cools off briefly (not penalised)",
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
