"""The node's home directory: where its key, content store and caches live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = "~/.paris-node"
HOME_ENV = "PARIS_NODE_HOME"


@dataclass(frozen=True)
class Home:
    """Paths under one node home. Creating the object touches nothing; `ensure()` creates the root."""

    root: Path

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> Home:
        raw = path if path is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
        return cls(Path(raw).expanduser().resolve())

    def ensure(self) -> Home:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def identity_path(self) -> Path:
        return self.root / "identity.key"

    @property
    def blocks_dir(self) -> Path:
        return self.root / "blocks"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def cache_dir(self) -> Path:
        """Fetched, verified checkpoints, one folder per run and job."""
        return self.root / "cache"

    @property
    def work_dir(self) -> Path:
        """Local training output (checkpoints being written, training state)."""
        return self.root / "work"
