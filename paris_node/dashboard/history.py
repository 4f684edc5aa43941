"""The dashboard's memory of each job's losses over time: bounded, and kept in a JSON file so it survives restarts.

One point per (job, step): when it was first seen, and whatever the swarm said about that step (train loss and
samples/s from the owner's status record, validation loss from the checkpoint manifest). The record is capped
twice: at most `max_points` per job (older points are thinned, every other one dropped, so a long run keeps its
whole shape at a coarser grain) and at most `max_jobs` jobs. The file is written atomically; a missing,
corrupt or foreign file starts an empty history instead of failing the node.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paris_node.fsutil import atomic_write

log = logging.getLogger(__name__)

FORMAT = "paris-node/dashboard-history/v1"
FIELDS = ("train_loss", "val_loss", "samples_per_s")
MAX_POINTS = 240
MAX_JOBS = 1025  # every job of the largest run (swarm/keys.py MAX_EXPERTS + the router)
MAX_FILE_BYTES = 16 << 20


@dataclass
class Point:
    step: int
    t_ms: int
    train_loss: float | None = None
    val_loss: float | None = None
    samples_per_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "t_ms": self.t_ms, **{f: getattr(self, f) for f in FIELDS}}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class History:
    """Per job, points ordered by step. Not thread-safe: the collector thread owns it."""

    run: str
    max_points: int = MAX_POINTS
    max_jobs: int = MAX_JOBS
    jobs: dict[str, list[Point]] = field(default_factory=dict)

    def add(self, job: str, step: int, t_ms: int, **values: float | None) -> bool:
        """Record what is known about `job` at `step`; True if anything changed. Unknown fields are ignored."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            return False
        known = {k: _number(v) for k, v in values.items() if k in FIELDS and _number(v) is not None}
        if not known:
            return False
        points = self.jobs.get(job)
        if points is None:
            if len(self.jobs) >= self.max_jobs:
                return False
            points = self.jobs[job] = []
        for p in reversed(points):  # new data is nearly always for the newest step
            if p.step == step:
                changed = any(getattr(p, k) != v for k, v in known.items())
                for k, v in known.items():
                    setattr(p, k, v)
                return changed
            if p.step < step:
                break
        points.append(Point(step, int(t_ms), **known))
        points.sort(key=lambda p: p.step)
        if len(points) > self.max_points:
            self._thin(points)
        return True

    def _thin(self, points: list[Point]) -> None:
        half = len(points) // 2
        older = points[:half]
        points[:half] = older[::2]

    def points(self, job: str) -> list[Point]:
        return list(self.jobs.get(job, []))

    # ------------------------------------------------------------------ the file
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "run": self.run,
            "jobs": {job: [p.to_dict() for p in pts] for job, pts in sorted(self.jobs.items())},
        }

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: Path, run: str, max_points: int = MAX_POINTS) -> History:
        """The history of `run` saved at `path`, or an empty one (missing, corrupt, too big, another run)."""
        history = cls(run, max_points=max_points)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                log.warning("dashboard history %s is over %d bytes; starting a new one", path, MAX_FILE_BYTES)
                return history
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return history
        except (OSError, ValueError, RecursionError) as e:
            log.warning("dashboard history %s is unreadable (%s); starting a new one", path, e)
            return history
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("run") != run:
            return history
        jobs = doc.get("jobs")
        for job, pts in (jobs if isinstance(jobs, dict) else {}).items():
            for p in pts if isinstance(pts, list) else []:
                if isinstance(p, dict) and isinstance(p.get("t_ms"), int):
                    history.add(str(job), p.get("step"), p["t_ms"], **{f: p.get(f) for f in FIELDS})
        return history
