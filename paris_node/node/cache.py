"""The local cache of fetched, verified checkpoints: `<home>/cache/<run>/<job>/`.

Each job folder holds the checkpoint's files (`config.json`, `model.safetensors`, ...) and `fetched.json`
(the manifest CID, its signed record, step, signer, validation loss). A folder is installed whole or not at
all: files are written into a hidden temporary folder that is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from paris_node.home import Home

INFO_FILE = "fetched.json"


def job_dirname(job: str) -> str:
    return job.replace("/", "-")  # expert/3 -> expert-3


def run_cache(home: Home, run_id: str) -> Path:
    return home.cache_dir / run_id


def job_dir(home: Home, run_id: str, job: str) -> Path:
    return run_cache(home, run_id) / job_dirname(job)


def read_info(home: Home, run_id: str, job: str) -> dict | None:
    path = job_dir(home, run_id, job) / INFO_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def held_step(home: Home, run_id: str, job: str) -> int | None:
    info = read_info(home, run_id, job)
    return None if info is None else int(info["step"])


class Staging:
    """A hidden folder next to the final one; `commit(info)` moves it into place atomically."""

    def __init__(self, home: Home, run_id: str, job: str):
        self.final = job_dir(home, run_id, job)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.", dir=self.final.parent))

    def commit(self, info: dict) -> Path:
        tmp = self.path / (INFO_FILE + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(info, indent=2, sort_keys=True))
            f.flush()
            os.fsync(f.fileno())  # durable before the rename makes the folder look complete
        os.replace(tmp, self.path / INFO_FILE)
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc) -> None:
        if self.path.exists():
            self.discard()
