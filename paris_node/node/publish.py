"""Publishing a checkpoint: add its files to the content store, sign its manifest, announce it.

`CheckpointPublisher` is the trainer's `publish` callback; the trainer runs it on a background thread, so
nothing here ever blocks a training step. A failure (full disk, DHT unreachable) is logged and the next
checkpoint tries again: publishing is best effort, training is not interrupted by the network.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from paris_node.canonical import real
from paris_node.checkpoint import FORMAT_VERSION, CheckpointFolder, FileEntry, manifest_entries
from paris_node.checkpoint.format import ROLE_OF_FILE, safetensors_header, sha256_file
from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import add_bytes, add_file
from paris_node.fsutil import atomic_write
from paris_node.identity import Identity
from paris_node.records import CheckpointPayload, SignedRecord, sign_record

log = logging.getLogger(__name__)

__all__ = ["CheckpointPublisher", "published_manifest", "sha256_file", "store_checkpoint"]

PUBLISHED = ".published"  # hidden (never published): the manifest CID this folder was published as


def published_manifest(ckpt_dir: Path) -> str | None:
    """The manifest CID a local checkpoint folder was published as (a resume continues its parent chain)."""
    try:
        return (Path(ckpt_dir) / PUBLISHED).read_text().strip() or None
    except OSError:
        return None


def store_checkpoint(
    store: Blockstore,
    identity: Identity,
    run_id: str,
    job: str,
    ckpt_dir: Path,
    step: int,
    metrics: dict[str, float],
    parent: str | None,
    profile: str,
) -> tuple[str, SignedRecord, list[str]]:
    """Add the checkpoint's files (pinned) and the signed manifest; returns (manifest CID, record, file CIDs).

    Only the format's files are published, each with its role (a `sample.png` preview when the folder has
    one); the table is checked with the same strict reader fetchers use, so a publisher cannot sign what
    every fetcher would reject. Other files (temporaries, notes) stay local.
    """
    folder = CheckpointFolder.at(ckpt_dir)
    safetensors_header(folder.weights)
    files: dict[str, dict] = {}
    for name, path in sorted(folder.files().items()):
        cid = add_file(store, path, profile, pin=True)
        entry = FileEntry(name, ROLE_OF_FILE[name], cid, path.stat().st_size, sha256_file(path))
        files[name] = entry.to_dict()
    entries = manifest_entries(files)
    payload = CheckpointPayload(
        job=job,
        step=step,
        files=files,
        config_sha256=entries[folder.config.name].sha256,
        cid_profile=profile,
        parent=parent,
        metrics={k: real(v) for k, v in sorted(metrics.items())},
        format=FORMAT_VERSION,
    )
    record = sign_record(identity, payload, run=run_id)
    manifest_cid = add_bytes(store, record.to_bytes(), profile, pin=True)
    return manifest_cid, record, [f["cid"] for f in files.values()]


class CheckpointPublisher:
    """The trainer's publish callback for one job. Keeps the last `keep` published checkpoints pinned."""

    def __init__(
        self,
        store: Blockstore,
        identity: Identity,
        run_id: str,
        job: str,
        announcer,  # paris_node.swarm.announcer.Announcer (duck-typed so tests can pass a recorder)
        profile: str,
        *,
        score: Callable[[Path], dict[str, float]] | None = None,
        parent: str | None = None,
        keep: int = 2,
        sample: Callable[[Path], object] | None = None,  # writes sample.png into the folder (sampling/preview.py)
    ):
        self.store, self.identity, self.run_id, self.job = store, identity, run_id, job
        self.announcer, self.profile, self.score, self.keep = announcer, profile, score, keep
        self.sample = sample
        self.parent = parent
        self.history: list[tuple[str, list[str], int]] = []  # (manifest CID, file CIDs, step)
        self._lock = threading.Lock()

    def __call__(self, ckpt_dir: Path, step: int, metrics: dict) -> None:
        with self._lock:  # one publish at a time; the trainer already serialises, this guards direct calls
            try:
                self._publish(Path(ckpt_dir), step, metrics)
            except Exception as e:  # never let publishing kill training; the next checkpoint retries
                log.warning("publishing the checkpoint of step %d failed: %s", step, e)

    def _publish(self, ckpt_dir: Path, step: int, metrics: dict) -> None:
        if self.history and step <= self.history[-1][2]:
            return  # a final checkpoint at the same step as the last periodic one: already out
        values = {"train_loss": float(metrics["loss"])} if "loss" in metrics else {}
        if "samples_per_s" in metrics:
            values["samples_per_s"] = float(metrics["samples_per_s"])
        if self.score is not None:
            values.update(self.score(ckpt_dir))
        if self.sample is not None:
            self.sample(ckpt_dir)
        manifest_cid, _, file_cids = store_checkpoint(
            self.store, self.identity, self.run_id, self.job, ckpt_dir, step, values, self.parent, self.profile
        )
        self.parent = manifest_cid
        try:
            atomic_write(ckpt_dir / PUBLISHED, manifest_cid + "\n")
        except OSError as e:  # the folder was pruned meanwhile: only the resume's parent link is lost
            log.debug("could not mark %s as published: %s", ckpt_dir, e)
        self.history.append((manifest_cid, file_cids, step))
        # One provider record per checkpoint: fetchers ask the manifest's providers for its files too.
        self.announcer.provide([manifest_cid])
        self.announcer.set_pointer(self.job, manifest_cid, step)
        status = {"step": step, "checkpoint": manifest_cid}
        if "train_loss" in values:
            status["loss"] = real(values["train_loss"])
        if "samples_per_s" in values:
            status["samples_per_s"] = real(values["samples_per_s"])
        self.announcer.set_status(**status)
        log.info(
            "published %s step %d: %s %s",
            self.job,
            step,
            manifest_cid,
            " ".join(f"{k}={v:.4g}" for k, v in values.items()),
        )
        kept = {cid for m, fs, _ in self.history[-self.keep :] for cid in (m, *fs)}
        for old_manifest, old_files, _ in self.history[: -self.keep]:
            self.announcer.unprovide([old_manifest])
            for cid in {old_manifest, *old_files} - kept:  # identical files in a kept checkpoint stay pinned
                self.store.unpin(cid)
        del self.history[: -self.keep]
