"""Shared by the CLI tests: a tiny one-expert run (trains in seconds), subprocess runners on paris_node.procs."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from tiny_swarm import build_tiny_run, tiny_spec

from paris_node.procs import CLI, REPO, NodeProc, ProcGroup

__all__ = ["REPO", "TINY_ONE", "env_for", "run_cli", "spawn_cli", "tiny_run", "wait_for"]

# one expert (no router), 20 steps of the tiny preset: a whole run trains and publishes in seconds
TINY_ONE = tiny_spec("cli-tests", samples=64, experts=1, lr=3e-3, ema=0.0, val_loss_threshold=10.0)


def tiny_run(home: Path) -> str:
    return build_tiny_run(home, TINY_ONE)


def env_for(home: Path) -> dict[str, str]:
    return dict(os.environ, PARIS_NODE_HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def run_cli(args: list[str], home: Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env_for(home), capture_output=True, text=True, timeout=timeout)


def spawn_cli(group: ProcGroup, args: list[str], home: Path, cwd: Path, log: Path, **kw) -> NodeProc:
    """A long-running `paris-node ARGS` on `home` (PARIS_NODE_HOME), in its own process group, logged to `log`."""
    return group.start(log.stem, [*CLI, *args], log, env=env_for(home), cwd=cwd, **kw)


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)  # polling with a deadline
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
