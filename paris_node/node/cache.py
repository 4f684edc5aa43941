"""The local cache of fetched, verified checkpoints: `<home>/cache/<run>/<job>/`, one typed record per job.

Each job folder holds the checkpoint files it was fetched for (`config.json` + `model.safetensors` for
sampling; `training_state.*` too for takeover and mirroring) and `fetched.json`, an `Installed` record: the
manifest CID, its signed record, step, signer, validation score, and the entries (CID, size, sha256, role) of
the files installed. A folder is installed whole or not at all (fsutil.atomic_replace_dir).

The cache checks itself: `check` compares every installed file with its entry (size, sha256, and the
safetensors header of the weights), so nothing is loaded that has not matched its manifest since it was
written; the fetcher repairs a folder that fails from the content store or the swarm.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paris_node.checkpoint import CheckpointFolder, CheckpointFormatError, FileEntry, manifest_entries
from paris_node.checkpoint.format import ROLE_OF_FILE, ROLE_WEIGHTS, safetensors_header, sha256_file
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import DAG_PB, RAW, parse_cid
from paris_node.content.dag import export_file
from paris_node.content.errors import ContentError
from paris_node.fsutil import atomic_replace_dir, atomic_write, recover_dir, staging_dir
from paris_node.home import Home
from paris_node.records import ROUTER_JOB

INFO_FILE = "fetched.json"
log = logging.getLogger(__name__)


def job_dirname(job: str) -> str:
    return job.replace("/", "-")  # expert/3 -> expert-3


def job_of_dirname(name: str) -> str:
    return name.replace("-", "/", 1) if name.startswith("expert-") else name


def run_cache(home: Home, run_id: str) -> Path:
    return home.cache_dir / run_id


def job_dir(home: Home, run_id: str, job: str) -> Path:
    return run_cache(home, run_id) / job_dirname(job)


@dataclass(frozen=True)
class Installed:
    """What `fetched.json` says about an installed checkpoint (typed; the one reader and writer of the file)."""

    job: str
    step: int
    signer: str
    manifest_cid: str
    record: str  # the signed manifest, canonical JSON (re-verifiable offline)
    files: dict[str, FileEntry]  # the files installed in the folder (a subset of the manifest's, by role)
    val_loss: float | None = None
    val_ratio: float | None = None
    parent: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def roles(self) -> set[str]:
        return {e.role for e in self.files.values()}

    def manifest_files(self) -> dict[str, FileEntry]:
        """Every file the signed manifest lists (also those not installed here)."""
        return manifest_entries(json.loads(self.record)["payload"]["files"])

    def cids(self) -> list[str]:
        """The manifest CID first, then the installed files' CIDs (what a holder pins and serves)."""
        return [self.manifest_cid, *(e.cid for e in self.files.values())]

    def to_json(self) -> str:
        body = {
            "job": self.job,
            "step": self.step,
            "signer": self.signer,
            "manifest_cid": self.manifest_cid,
            "record": self.record,
            "files": {n: e.to_dict() for n, e in sorted(self.files.items())},
            "val_loss": self.val_loss,
            "val_ratio": self.val_ratio,
            "parent": self.parent,
            **({"extra": self.extra} if self.extra else {}),
        }
        return json.dumps(body, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Installed:
        """Parse `fetched.json`; ValueError for anything that is not a record this module wrote."""
        d = json.loads(text)
        record = str(d["record"])
        payload = json.loads(record)["payload"]
        if "files" in d:
            files = {n: FileEntry(n, m["role"], m["cid"], int(m["size"]), m["sha256"]) for n, m in d["files"].items()}
        else:  # written before roles existed: everything the manifest lists was installed
            files = {
                n: FileEntry(n, ROLE_OF_FILE.get(n, ""), m["cid"], int(m["size"]), m["sha256"])
                for n, m in payload["files"].items()
            }
        return cls(
            job=str(d["job"]),
            step=int(d["step"]),
            signer=str(d["signer"]),
            manifest_cid=str(d["manifest_cid"]),
            record=record,
            files=files,
            val_loss=d.get("val_loss"),
            val_ratio=d.get("val_ratio"),
            parent=d.get("parent", payload.get("parent")),
            extra=d.get("extra", {}),
        )


def read_installed(home: Home, run_id: str, job: str) -> Installed | None:
    """The job's installed checkpoint, or None (none, or an unreadable record: treated as not installed)."""
    path = job_dir(home, run_id, job)
    recover_dir(path)  # a crash mid-swap: put the old folder back
    try:
        return Installed.from_json((path / INFO_FILE).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_info(home: Home, run_id: str, job: str) -> dict | None:
    """`read_installed` as the plain dict of `fetched.json` (for code not yet moved to `Installed`)."""
    inst = read_installed(home, run_id, job)
    return None if inst is None else json.loads(inst.to_json())


def installed_jobs(home: Home, run_id: str) -> dict[str, Installed]:
    """Every job of the run with an installed checkpoint."""
    base = run_cache(home, run_id)
    out: dict[str, Installed] = {}
    for p in sorted(base.iterdir()) if base.is_dir() else []:
        if p.is_dir() and not p.name.startswith("."):
            inst = read_installed(home, run_id, job_of_dirname(p.name))
            if inst is not None:
                out[inst.job] = inst
    return out


def check(folder: str | os.PathLike, inst: Installed, *, full: bool = True) -> list[str]:
    """Problems of an installed folder against its record (empty: it matches). `full` hashes every byte;
    otherwise sizes and the weights' safetensors header only (what `sample` checks before loading)."""
    problems = []
    for name, entry in sorted(inst.files.items()):
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{name} is missing")
            continue
        if path.stat().st_size != entry.size:
            problems.append(f"{name} has {path.stat().st_size} bytes, the manifest says {entry.size}")
            continue
        if entry.role == ROLE_WEIGHTS or name.endswith(".safetensors"):
            try:
                safetensors_header(path, entry.size)
            except CheckpointFormatError as e:
                problems.append(str(e).split(";")[0])
                continue
        if full and sha256_file(path) != entry.sha256:
            problems.append(f"{name}: sha256 differs from the manifest")
    return problems


# ------------------------------------------------------------------------------------------- installing


def install_file(store: Blockstore, entry: FileEntry, out: Path) -> str:
    """Put one verified file from the store at `out`; returns "link" or "copy".

    A file that is one raw block is that block's bytes: hard-linked (os.link) so it is stored once, read-only
    so an editor cannot change the store through the cache. Anything else is exported (every block re-verified
    on the way) -- a copy.
    """
    block = store.block_file(entry.cid) if parse_cid(entry.cid).codec == RAW else None
    if block is not None and block.stat().st_size == entry.size:
        try:
            os.link(block, out)
            os.chmod(out, 0o444)
            return "link"
        except OSError:
            pass  # another file system, or links not allowed: copy
    export_file(store, entry.cid, out)
    return "copy"


def reference_installed(store: Blockstore, folder: Path, inst: Installed) -> int:
    """Store each installed chunked file once: its raw leaves become no-copy references to the file in `folder`
    (content/filestore.py), read-only like a linked file. Returns the bytes freed in the store."""
    freed = 0
    for name, entry in sorted(inst.files.items()):
        if parse_cid(entry.cid).codec != DAG_PB:
            continue  # one raw block: install_file linked it already
        path = folder / name
        try:
            os.chmod(path, 0o444)
            freed += store.reference_file(entry.cid, path)
        except (ContentError, OSError) as e:  # the copy stays: stored twice, never lost
            log.warning("keeping a copy of %s in the store: %s", path, e)
    return freed


class Staging:
    """A hidden folder next to the final one; `commit(installed)` swaps it into place atomically."""

    def __init__(self, home: Home, run_id: str, job: str, store: Blockstore | None = None):
        self.final = job_dir(home, run_id, job)
        self.path = staging_dir(self.final)
        self.store = store  # given: the committed files' blocks become references to them (reference_installed)

    @property
    def folder(self) -> CheckpointFolder:
        return CheckpointFolder(self.path)

    def adopt(self, src: Path, names: Iterable[str]) -> None:
        """Hard-link (or copy) already verified files of the folder being replaced (a repair keeps good files)."""
        for name in names:
            try:
                os.link(src / name, self.path / name)
            except OSError:
                shutil.copy2(src / name, self.path / name)

    def commit(self, inst: Installed | dict) -> Path:
        """Write `fetched.json` and swap the folder in. A dict (job, step, signer, manifest_cid, record, val_*)
        becomes an `Installed` whose files are the manifest's entries present in the staging folder."""
        if isinstance(inst, dict):
            entries = manifest_entries(json.loads(inst["record"])["payload"]["files"])
            inst = Installed(
                job=inst["job"],
                step=int(inst["step"]),
                signer=inst["signer"],
                manifest_cid=inst["manifest_cid"],
                record=inst["record"],
                files={n: e for n, e in entries.items() if (self.path / n).is_file()},
                val_loss=inst.get("val_loss"),
                val_ratio=inst.get("val_ratio"),
                parent=json.loads(inst["record"])["payload"].get("parent"),
            )
        atomic_write(self.path / INFO_FILE, inst.to_json(), sync_dir=False)
        final = atomic_replace_dir(self.path, self.final)
        if self.store is not None:
            reference_installed(self.store, final, inst)
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        if self.path.exists():
            self.discard()


class DamagedCheckpoint(CheckpointFormatError):
    """An installed checkpoint no longer matches its manifest (a flipped byte, a truncated file)."""


def checked_dir(home: Home, run_id: str, inst: Installed) -> Path:
    """The folder of `inst` after a full check against its manifest; DamagedCheckpoint (naming the repair) if not."""
    folder = job_dir(home, run_id, inst.job)
    problems = check(folder, inst)
    if problems:
        raise DamagedCheckpoint(
            f"the cached {inst.job} checkpoint ({folder}) does not match its manifest: {'; '.join(problems)}. "
            f"Nothing was loaded; run `paris-node verify --repair` to restore it"
        )
    return folder


def sampling_dirs(home: Home, run_id: str) -> tuple[dict[int, Path], Path | None]:
    """Expert index -> folder, and the router's folder (None if not fetched), each checked in full first."""
    held = installed_jobs(home, run_id)
    experts = {
        int(job.split("/")[1]): checked_dir(home, run_id, inst) for job, inst in held.items() if job != ROUTER_JOB
    }
    router = checked_dir(home, run_id, held[ROUTER_JOB]) if ROUTER_JOB in held else None
    return dict(sorted(experts.items())), router
