"""The product end to end with real processes on 127.0.0.1 (real p2pd, DHT, block exchange, training).

One swarm serves every test in this module: 3 owners (2 experts + router) and a standby, on a tiny run. Each test
waits (through the `published` fixture) for the state it needs, so any one of them also runs alone; states are read
from the nodes' JSON events (`start --events json`), not from log wording. Every process runs in its own process
group and is killed at the end whatever happens.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tiny_swarm import build_tiny_run, local_maddr, start_owners, tiny_spec

from paris_node.procs import CLI, ENV, REPO, NodeProc

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(400)]
TTL = 20
COMMON = [
    "--lease-ttl",
    str(TTL),
    "--settle",
    "1.5",
    "--no-progress",
    "--threads",
    "1",
    "--publish-every",
    "20",
    "--mirror-every",
    "3",
]


class Node(NodeProc):
    """A `paris-node start --events json` process (NAME.log beside its home).

    Its events (stdout) and its log (stderr) come through one pipe, each line one write, so neither splits the
    other. What the node reports as an event (ready, standby, claimed, published, took_over, released) is read
    from its events; only diagnostics that have none (mirrored copies, refused checkpoints, the hand-off) from
    its log lines.
    """

    def __init__(self, name: str, home: Path, *args: str):
        argv = [*CLI, "--home", str(home), "start", "--events", "json", *args]
        super().__init__(name, argv, home.parent / f"{name}.log")

    def ready(self, timeout: float = 90) -> dict:
        return self.wait_for("ready", time.monotonic() + timeout)

    @property
    def maddr(self) -> str:
        return local_maddr(self.ready())

    def mark(self) -> int:
        """Where its events stand now: pass it as `since` to look only at what comes later."""
        self.poll_lines()
        return len(self.history)

    def events(self, name: str, since: int = 0, **match) -> list[dict]:
        """Its `name` events from `since` on whose fields equal `match`, after reading all it printed so far."""
        self.poll_lines()
        return [ev for ev in self.history[since:] if ev["event"] == name and match.items() <= ev.items()]

    def wait_event(self, name: str, timeout: float, since: int = 0, pred=lambda ev: True, **match) -> dict:
        """The first `name` event from `since` on with `match` and `pred` (fails fast if the node exits)."""
        before = {id(ev) for ev in self.history[:since]}
        return self.wait_for(
            name,
            time.monotonic() + timeout,
            lambda ev: id(ev) not in before and match.items() <= ev.items() and pred(ev),
        )

    def published(self) -> list[tuple[str, int, str]]:
        """Every checkpoint it published so far: (job, step, manifest CID)."""
        return [(ev["job"], ev["step"], ev["cid"]) for ev in self.events("published")]

    def wait_published(self, job: str, min_step: int = 0, timeout: float = 150, since: int = 0) -> int:
        """The step of its first publication of `job` at `min_step` or later (from `since` on)."""
        return self.wait_event("published", timeout, since, lambda ev: ev["step"] >= min_step, job=job)["step"]

    def kill(self) -> None:
        self.kill9()


def cli(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "--home", str(home), *args], cwd=REPO, env=ENV, text=True, capture_output=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def swarm(tmp_path_factory):
    root = tmp_path_factory.mktemp("swarm")
    spec = tiny_spec("e2e", samples=192, lr=1e-3, ema=0.9, steps=100_000, fine_clusters=16)
    run = build_tiny_run(root / "a", spec)
    nodes: dict[str, Node] = {}

    def start(name: str, args: list[str]) -> Node:
        nodes[name] = Node(name, root / name, *args, *COMMON)
        return nodes[name]

    try:
        maddr, owners = start_owners(start, run)
        nodes["d"] = Node("d", root / "d", "--run", run, "--join", maddr, *COMMON)
        nodes["d"].wait_for("standby", time.monotonic() + 90)
        yield {"root": root, "run": run, "maddr": maddr, "nodes": nodes, "owners": owners}
    finally:
        for node in nodes.values():
            node.kill()


@pytest.fixture
def published(swarm):
    """The swarm once every first owner has published a checkpoint past step 40 (idempotent: seen lines count)."""
    for job, name in swarm["owners"].items():
        swarm["nodes"][name].wait_published(job, 40, 150)
    return swarm


def test_owners_publish_and_a_fresh_node_fetches_all_and_samples(published):
    swarm = published
    home = swarm["root"] / "reader"
    got = cli(home, "fetch", "--all", "--run", swarm["run"], "--join", swarm["maddr"], "--json", "--timeout", "30")
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-3000:]
    verdicts = json.loads(got.stdout)["checkpoints"]
    ok = {v["job"]: v for v in verdicts if v["verdict"] == "ok"}
    assert sorted(ok) == ["expert/0", "expert/1", "router"]
    assert all(v["step"] >= 40 and v["val_loss"] is not None for v in ok.values())

    out = swarm["root"] / "apple.png"
    made = cli(
        home, "sample", "a red circle on a blue background", "--steps", "6", "-n", "2", "--out", str(out), "--explain"
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    explain = json.loads(Path(str(out) + ".explain.json").read_text())
    rows = [s for step in explain["steps"] for s in step["samples"]]
    assert len(rows) == 6 * 2
    for row in rows:
        assert all(w >= 0 for w in row["weights"]) and abs(sum(row["weights"]) - 1) < 1e-5
        assert 1 <= len(row["experts"]) <= 2 and abs(sum(row["probs"]) - 1) < 1e-4  # top-2 of K=2


def test_kill_9_owner_another_node_resumes_from_last_checkpoint(published):
    swarm = published
    nodes, owners = swarm["nodes"], swarm["owners"]
    victim = nodes[owners["expert/1"]]
    mirrored = int(nodes["d"].wait_line(r"mirrored expert/1 step (\d+)", 90)[1])  # the standby holds a copy
    survivors = [n for n in nodes.values() if n is not victim]
    marks = {n.name: n.mark() for n in survivors}
    victim.kill()  # SIGKILL: no release; the lease must expire
    end = time.monotonic() + TTL + 1.5 + 90
    took = []
    while not took and time.monotonic() < end:  # the standby, or an owner that lost its own job meanwhile
        took = [(n, ev) for n in survivors for ev in n.events("took_over", marks[n.name], job="expert/1")]
        time.sleep(0.2)  # polling the survivors' events with a deadline
    assert took, "nobody took over expert/1"
    successor, resumed = took[0][0], took[0][1]["step"]
    assert resumed >= mirrored  # not older than the copy the standby held before the crash
    first = successor.wait_published("expert/1", 0, 90, since=marks[successor.name])
    assert first > resumed  # training continued from the checkpoint, not from step 0


def test_graceful_stop_publishes_final_checkpoint_and_frees_the_lease(published):
    swarm = published
    nodes, owners = swarm["nodes"], swarm["owners"]
    node = nodes[owners["router"]]
    if node.proc.poll() is not None:
        pytest.skip("the router owner is gone (killed by the previous test)")
    me = node.ready()["node_id"]
    node.wait_published("router", 0, 60)
    before = len(node.published())
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(90) == 0
    node.wait_for("released", time.monotonic() + 10)
    after = node.published()
    assert len(after) > before and after[-1][0] == "router"  # the final checkpoint went out on the way down
    live = [arg for n in nodes.values() if n.proc.poll() is None for arg in ("--join", n.maddr)]
    deadline = time.monotonic() + 30  # the final pointer may still be reaching the replicas a reader asks
    while True:
        report = cli(swarm["root"] / "reader", "status", "--run", swarm["run"], "--experts", "2", *live, "--json")
        assert report.returncode == 0, report.stderr[-2000:]
        row = {r["job"]: r for r in json.loads(report.stdout)["jobs"]}["router"]
        if row["checkpoint_step"] >= after[-1][1] or time.monotonic() > deadline:
            break
    assert row["owner"] != me or row["state"] == "released"  # freed at once, not left to expire
    assert row["checkpoint_step"] >= after[-1][1]
