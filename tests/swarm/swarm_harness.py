"""Launch `python -m paris_node.swarm` node processes on 127.0.0.1 and read their JSON-line events.

A node started with `gated=True` runs tests/swarm/gated_node.py instead: it holds before its first claim until
`release()` (several nodes released together claim at the same instant).

Every process is started in its own process group and killed (with its p2pd and DHT children) by `close()`.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TTL, SETTLE, JITTER, SKEW_MS = 4.0, 1.5, 0.5, 300
COMMON = ["--ttl", str(TTL), "--settle", str(SETTLE), "--jitter", str(JITTER), "--skew-ms", str(SKEW_MS)]


GATED_NODE = Path(__file__).with_name("gated_node.py")


class NodeProc:
    def __init__(self, name: str, home: Path, args: list[str], gated: bool = False):
        self.name, self.home = name, home
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        program = [str(GATED_NODE)] if gated else ["-m", "paris_node.swarm"]
        self.proc = subprocess.Popen(
            [sys.executable, *program, "--home", str(home), *args],
            cwd=REPO,
            stdin=subprocess.PIPE if gated else None,
            stdout=subprocess.PIPE,
            stderr=open(home.parent / f"{name}.log", "wb"),
            env=env,
            start_new_session=True,
            text=True,
        )
        self.events: queue.Queue = queue.Queue()
        self.history: list[dict] = []
        self.info: dict = {}
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            self.events.put(ev)

    def drain(self) -> list[dict]:
        out = []
        while True:
            try:
                ev = self.events.get_nowait()
            except queue.Empty:
                break
            self.history.append(ev)
            if ev["event"] == "ready":
                self.info = ev
            out.append(ev)
        return out

    def wait_for(self, name: str, deadline: float, pred=lambda ev: True) -> dict:
        for ev in self.history:
            if ev["event"] == name and pred(ev):
                return ev
        while time.monotonic() < deadline:
            try:
                ev = self.events.get(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError(f"{self.name} exited with {self.proc.returncode}; see its log") from None
                continue
            self.history.append(ev)
            if ev["event"] == "ready":
                self.info = ev
            if ev["event"] == name and pred(ev):
                return ev
        raise AssertionError(f"{self.name}: no {name!r} event before the deadline; got {self.history[-5:]}")

    def last(self, name: str) -> dict | None:
        self.drain()
        for ev in reversed(self.history):
            if ev["event"] == name:
                return ev
        return None

    def release(self) -> None:
        """Let a gated node go on to its first claim."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def kill9(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill9()


class Swarm:
    """A set of node processes sharing one temp dir; `close()` kills them all."""

    def __init__(self, tmp: Path, run: str = "t", common: list[str] | None = None):
        self.tmp, self.run, self.common = tmp, run, common or []
        self.nodes: list[NodeProc] = []

    def start(self, name: str, *args: str, join: list[str] | None = None, gated: bool = False) -> NodeProc:
        home = self.tmp / name
        home.mkdir(parents=True, exist_ok=True)
        joins = [a for m in (join or []) for a in ("--join", m)]
        node = NodeProc(name, home, ["--run", self.run, *self.common, *joins, *args], gated=gated)
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            if node.proc.poll() is None:
                node.kill9()
            else:  # p2pd / DHT children may outlive a dead parent
                try:
                    os.killpg(node.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


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
