"""A run folder on disk: `step-N` checkpoint folders, the `latest` pointer, resume lookup and pruning."""

from __future__ import annotations

import shutil
from pathlib import Path

from paris_node.checkpoint import STATE_JSON
from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write

LATEST = "latest"


def step_dir(out_dir: Path, step: int) -> Path:
    return out_dir / f"step-{step:08d}"


def write_latest(out_dir: Path, ckpt: Path) -> None:
    atomic_write(out_dir / LATEST, ckpt.name + "\n")


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run directory, or None."""
    p = Path(out_dir) / LATEST
    if not p.exists():
        return None
    ckpt = Path(out_dir) / p.read_text().strip()
    return ckpt if ckpt.is_dir() else None


def resolve_resume(path: str | Path) -> Path:
    """A checkpoint directory with training state, or a run directory (its `latest`)."""
    path = Path(path)
    if (path / STATE_JSON).exists():
        return path
    latest = latest_checkpoint(path)
    if latest is not None and (latest / STATE_JSON).exists():
        return latest
    raise UsageError(f"--resume {path}: neither a checkpoint with training state nor a run directory with one")


def prune_checkpoints(out_dir: Path, keep: int, in_use: set[Path]) -> None:
    """Delete all but the newest `keep` step directories, sparing any the publisher still reads."""
    dirs = sorted(p for p in out_dir.glob("step-*") if p.is_dir())
    for p in dirs[: max(0, len(dirs) - keep)]:
        if p not in in_use:
            shutil.rmtree(p, ignore_errors=True)
