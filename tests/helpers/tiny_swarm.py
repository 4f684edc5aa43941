"""Tiny runs and tiny swarms for the tests (tests/helpers is on every test folder's import path).

`tiny_spec` is the run every test trains: the tiny presets on a `shapes` dataset, 20 steps of batch 8, a
checkpoint every 10 steps; each test overrides what it needs. `start_owners` starts the three owners of a
2-expert run (node a starts the swarm, b and c join it) and waits, on their events (`start --events json`),
until each holds one job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from paris_node.data.manifest import RunSpec, build_run
from paris_node.home import Home
from paris_node.identity import Identity, load_or_create
from paris_node.procs import NodeProc

OWNED_JOBS = ["expert/0", "expert/1", "router"]


def tiny_spec(name: str, samples: int = 64, experts: int = 2, **overrides: Any) -> RunSpec:
    """A run of the tiny presets on `shapes:SAMPLES`; `overrides` are RunSpec fields."""
    fields: dict[str, Any] = dict(
        name=name,
        dataset=f"shapes:{samples}",
        samples=samples,
        experts=experts,
        expert_preset="tiny",
        router_preset="tiny",
        steps=20,
        batch=8,
        publish_every_steps=10,
    )
    return RunSpec(**{**fields, **overrides})


def build_tiny_run(home_dir: Path, spec: RunSpec, identity: Identity | None = None) -> str:
    """Build `spec` in the home at `home_dir`, signed by `identity` (default: the home's own key); the run id."""
    home = Home(home_dir).ensure()
    run_id, _ = build_run(spec, home, identity or load_or_create(home.identity_path))
    return run_id


def local_maddr(ready: dict) -> str:
    """The 127.0.0.1 address in a node's `ready` event (what the others `--join`)."""
    return next(m for m in ready["maddrs"] if m.startswith("/ip4/127.0.0.1/"))


def start_owners(
    start: Callable[[str, list[str]], NodeProc], run: str, first: Sequence[str] = ()
) -> tuple[str, dict[str, str]]:
    """`start(name, args)` nodes a (with `first` too), then b and c joining a's address, all on `run`, each a
    `start --events json` process; waits until the three own expert/0, expert/1 and router (their `claimed`
    events). Returns (a's address, job -> node name)."""
    a = start("a", ["--run", run, *first])
    maddr = local_maddr(a.wait_for("ready", time.monotonic() + 90))
    nodes = {"a": a, **{name: start(name, ["--run", run, "--join", maddr]) for name in ("b", "c")}}
    deadline = time.monotonic() + 120
    owners = {node.wait_for("claimed", deadline)["job"]: name for name, node in nodes.items()}
    assert sorted(owners) == OWNED_JOBS, owners
    return maddr, owners
