"""Shared by the CLI tests: a tiny one-expert run (trains in seconds), subprocess runners, process cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from procs import stop_group  # noqa: F401  (re-exported: the CLI tests import it from here)

from paris_node.data.manifest import RunSpec, build_run
from paris_node.home import Home
from paris_node.identity import load_or_create

REPO = Path(__file__).resolve().parents[2]
PARIS_NODE = [sys.executable, "-c", "from paris_node.cli import main; main(prog_name='paris-node')"]
QUICK = ["--settle", "1.5", "--lease-ttl", "20", "--no-progress", "--threads", "1", "--mirror-every", "0"]

# one expert (no router), 20 steps of the tiny preset: a whole run trains and publishes in seconds
TINY_ONE = RunSpec(
    name="cli-tests",
    dataset="shapes:64",
    samples=64,
    experts=1,
    expert_preset="tiny",
    router_preset="tiny",
    steps=20,
    batch=8,
    lr=3e-3,
    ema=0.0,
    publish_every_steps=10,
    val_loss_threshold=10.0,
)


def tiny_run(home: Path) -> str:
    h = Home(home).ensure()
    run_id, _ = build_run(TINY_ONE, h, load_or_create(h.identity_path))
    return run_id


def env_for(home: Path) -> dict[str, str]:
    return dict(os.environ, PARIS_NODE_HOME=str(home), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")


def run_cli(args: list[str], home: Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PARIS_NODE, *args], cwd=cwd, env=env_for(home), capture_output=True, text=True, timeout=timeout
    )


def spawn_cli(args: list[str], home: Path, cwd: Path, log: Path) -> subprocess.Popen:
    """A long-running command in its own process group, output to `log`."""
    out = open(log, "w")
    return subprocess.Popen(
        [*PARIS_NODE, *args], cwd=cwd, env=env_for(home), stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True, text=True,
    )  # fmt: skip


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)  # polling with a deadline
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
