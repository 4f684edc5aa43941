"""The node's home directory: where its key, content store and caches live."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paris_node.errors import UsageError

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

    def check(self) -> Home:
        """UsageError (naming the path and the fix) if the home cannot be used; creates nothing."""
        for parent in (self.root, *self.root.parents):
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(
                        f"--home {self.root}: {parent} is a file, not a directory; choose another --home "
                        f"(or ${HOME_ENV})"
                    )
                if not os.access(parent, os.W_OK | os.X_OK):
                    raise UsageError(
                        f"--home {self.root}: {parent} is not writable; fix its permissions or choose another --home"
                    )
                return self
        return self

    def ensure(self) -> Home:
        """Create the root if needed; UsageError (not an OSError traceback) if that is impossible."""
        self.check()
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise UsageError(
                f"--home {self.root} cannot be used ({e.strerror or e}); choose a writable --home (or ${HOME_ENV})"
            ) from None
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

    @property
    def swarm_file(self) -> Path:
        """The swarm this home's node joined or started and the run it trains (`start` and `init` write it)."""
        return self.root / "swarm.json"

    @property
    def node_lock(self) -> Path:
        """Held by `start` for the node's life: one node per home."""
        return self.root / "node.lock"

    @property
    def cache_lock(self) -> Path:
        """Held by `fetch` while it writes the cache, so two fetches never interleave."""
        return self.root / "cache.lock"
