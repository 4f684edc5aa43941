#!/usr/bin/env python
"""Benchmark `paris-node fetch --all` under pointer spam: 0, 30 and 300 garbage pointers per job, one run.

A tiny run (2 experts + router) is trained by three real `paris-node start` processes on 127.0.0.1 to its
step budget (they then only serve). An attacker (its own DHT identity, joined to the swarm) signs garbage
pointers with freshly generated keys for every job (half at a step inside the budget, half far past it),
each naming a manifest CID nobody serves, and stores them with one batched DHT call. Each condition is
measured `--repeats` times, each with a fresh reader home; the median and spread are printed with the ratio
of medians against the 0-pointer baseline (goal <= 1.2x). Every process is killed at the end.

    flock /tmp/cpu.lock timeout 1200 .venv/bin/python scripts/bench_swarm_attack.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "node"))
from malicious_peer import MaliciousPeer  # noqa: E402

from paris_node.data.manifest import RunSpec, build_run
from paris_node.home import Home
from paris_node.identity import load_or_create
from paris_node.procs import CLI, ENV, MADDR, REPO, ProcGroup, cli_node
from paris_node.swarm import keys

NODE_ARGS = ["--lease-ttl", "20", "--settle", "1.5", "--no-progress", "--threads", "1", "--publish-every", "20"]
BUDGET = 60


def fetch_all(root: Path, run: str, maddr: str, tag: str) -> tuple[float, dict]:
    home = root / f"reader-{tag}"
    t0 = time.monotonic()
    got = subprocess.run(
        [*CLI, "--home", str(home), "fetch", "--all", "--run", run, "--join", maddr, "--json", "--timeout", "30"],
        cwd=REPO,
        env=ENV,
        text=True,
        capture_output=True,
        timeout=600,
    )
    seconds = time.monotonic() - t0
    if got.returncode != 0:
        raise RuntimeError(f"fetch failed ({got.returncode}): {got.stderr[-1500:]}")
    rows = json.loads(got.stdout)["checkpoints"]
    summary = {
        "ok": sorted(r["job"] for r in rows if r["verdict"] == "ok"),
        "skipped": sum(1 for r in rows if r["reason"].startswith("skipped")),
        "rejected_after_download": sum(
            1 for r in rows if r["verdict"] != "ok" and not r["reason"].startswith("skipped")
        ),
    }
    return seconds, summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--counts", type=int, nargs="+", default=[0, 30, 300])
    a = p.parse_args()
    attacker = None
    with tempfile.TemporaryDirectory() as tmp, ProcGroup() as group:
        root = Path(tmp)
        try:
            spec = RunSpec(
                name="attack-bench", dataset="shapes:192", samples=192, experts=2, expert_preset="tiny",
                router_preset="tiny", batch=8, lr=1e-3, ema=0.9, steps=BUDGET, publish_every_steps=20,
                fine_clusters=16,
            )  # fmt: skip
            home = Home(root / "a").ensure()
            run, _ = build_run(spec, home, load_or_create(home.identity_path))
            nodes = [cli_node(group, "a", root / "a", "start", "--run", run, *NODE_ARGS)]
            maddr = nodes[0].wait_line(MADDR, 120)[1]
            nodes += [cli_node(group, n, root / n, "start", "--run", run, "--join", maddr, *NODE_ARGS) for n in "bc"]
            for n in nodes:
                n.wait_line(r"reached step \d+", 600)  # trained to the budget: the swarm is quiet from here on
            attacker = MaliciousPeer(root, run, [maddr])
            jobs = keys.jobs_for(2)
            print(f"swarm ready: run {run[:16]}..., budget {BUDGET} steps, load {os.getloadavg()[0]:.2f}", flush=True)
            results: dict[int, list[float]] = {}
            stored = 0
            for count in sorted(a.counts):
                if count > stored:  # half inside the step budget, half far past it; new keys each time
                    more = count - stored
                    attacker.spam_pointers(jobs, more // 2, step=BUDGET - 1)
                    attacker.spam_pointers(jobs, more - more // 2, step=1_000_000)
                    stored = count
                for r in range(a.repeats):
                    seconds, summary = fetch_all(root, run, maddr, f"{count}-{r}")
                    results.setdefault(count, []).append(seconds)
                    print(
                        f"{count:4d} garbage/job: fetch --all {seconds:6.2f} s  ok={summary['ok']} "
                        f"skipped={summary['skipped']} downloaded-and-rejected={summary['rejected_after_download']} "
                        f"load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
            base = statistics.median(results[min(results)])
            print("\ncount  median_s  min_s  max_s  ratio_of_medians")
            for count, xs in sorted(results.items()):
                med = statistics.median(xs)
                print(f"{count:5d}  {med:8.2f}  {min(xs):5.2f}  {max(xs):5.2f}  {med / base:6.2f}x")
        finally:
            if attacker is not None:
                attacker.close()


if __name__ == "__main__":
    main()
