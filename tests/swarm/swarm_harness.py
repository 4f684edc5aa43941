"""Launch `python -m paris_node.swarm` node processes on 127.0.0.1 and read their JSON-line events (a thin
layer over paris_node/procs.py).

A node started with `gated=True` runs tests/swarm/gated_node.py instead: it holds before its first claim until
`release()` (several nodes released together claim at the same instant).

Every process is started in its own process group and killed (with its p2pd and DHT children) by `close()`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from paris_node.procs import REPO, NodeProc, ProcGroup

TTL, SETTLE, JITTER, SKEW_MS = 4.0, 1.5, 0.5, 300
COMMON = ["--ttl", str(TTL), "--settle", str(SETTLE), "--jitter", str(JITTER), "--skew-ms", str(SKEW_MS)]
GATED_NODE = Path(__file__).with_name("gated_node.py")
__all__ = ["COMMON", "JITTER", "REPO", "SETTLE", "SKEW_MS", "TTL", "Swarm", "SwarmNode", "agreed_view"]


class SwarmNode(NodeProc):
    """A `python -m paris_node.swarm` process: JSON events on stdout, its log (stderr) in NAME.log."""

    def __init__(self, name: str, home: Path, args: list[str], gated: bool = False):
        self.home = home
        program = [str(GATED_NODE)] if gated else ["-m", "paris_node.swarm"]
        argv = [sys.executable, *program, "--home", str(home), *args]
        super().__init__(name, argv, home.parent / f"{name}.log", merge_stderr=False, stdin=gated)

    def release(self) -> None:
        """Let a gated node go on to its first claim."""
        self.send("go")


class Swarm:
    """A set of node processes sharing one temp dir; `close()` kills them all (p2pd/DHT children included)."""

    def __init__(self, tmp: Path, run: str = "t", common: list[str] | None = None):
        self.tmp, self.run, self.common = tmp, run, common or []
        self.group = ProcGroup()
        self.nodes: list[SwarmNode] = self.group.procs

    def start(self, name: str, *args: str, join: list[str] | None = None, gated: bool = False) -> SwarmNode:
        home = self.tmp / name
        home.mkdir(parents=True, exist_ok=True)
        joins = [a for m in (join or []) for a in ("--join", m)]
        node = SwarmNode(name, home, ["--run", self.run, *self.common, *joins, *args], gated=gated)
        self.group.procs.append(node)
        return node

    def close(self) -> None:
        self.group.close()


def agreed_view(nodes, deadline: float, pred) -> dict:
    """Poll the nodes' latest `view` events until all alive nodes report the same owners and `pred` holds."""
    last = None
    while time.monotonic() < deadline:
        views = [n.last("view") for n in nodes]
        if all(views):
            owners = [v["owners"] for v in views]
            last = {"owners": owners[0], "mine": {n.name: v["mine"] for n, v in zip(nodes, views, strict=True)}}
            if all(o == owners[0] for o in owners) and pred(last):
                return last
        time.sleep(0.2)
    raise AssertionError(f"no agreement before the deadline; last: {last}")
