#!/usr/bin/env python
"""Benchmark swarm claims: N node processes on 127.0.0.1, K experts, until a complete duplicate-free assignment.

For each N: start a bootstrap node, then N-1 nodes joining it (all at once), and measure
  - join_s:   from launch to the last node's DHT being ready ("last node joined"),
  - assign_s: from the last join (with `--gated`: from the instant all N nodes, held at a start line once
              joined, are released together into their first claim) to the first moment every job has exactly
              one node that believes it owns it (beliefs from each node's owner/lost events) and no job has two,
  - dup:      whether two nodes ever believed they owned the same job at the same time (must be False),
  - memory per node: RSS of the Python process, its forked DHT process and its p2pd (psutil), and the USS sum.
Ratios are printed against the first N measured in the same run (the baseline). `--repeats R` runs each N R
times (interleaved: N1, N2, ..., N1, N2, ...) and prints a summary line per N: median assign time with its
range, and how many runs converged and how many saw a duplicate.

    .venv/bin/python scripts/bench_claims.py --nodes 8 16 32 --experts 8 --gated --repeats 3
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "swarm"))
from swarm_harness import Swarm  # noqa: E402


def node_memory(pid: int) -> dict:
    """RSS (MiB) of the node's Python process, its DHT child and p2pd, plus their summed USS."""
    proc = psutil.Process(pid)
    out = {"python_rss": 0.0, "dht_rss": 0.0, "p2pd_rss": 0.0, "uss_total": 0.0}
    for p in [proc, *proc.children(recursive=True)]:
        try:
            info = p.memory_full_info()
            name = p.name()
        except psutil.Error:
            continue
        mib = info.rss / 2**20
        if p.pid == pid:
            out["python_rss"] += mib
        elif "p2pd" in name:
            out["p2pd_rss"] += mib
        else:
            out["dht_rss"] += mib
        out["uss_total"] += info.uss / 2**20
    return out


def bench(
    n: int, experts: int, ttl: float, settle: float, jitter: float, deadline_s: float, gated: bool = False
) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-claims-{n}-"))
    common = [
        "--experts",
        str(experts),
        "--no-router",
        "--ttl",
        str(ttl),
        "--settle",
        str(settle),
        "--jitter",
        str(jitter),
        "--skew-ms",
        "500",
    ]
    swarm = Swarm(tmp, run=f"bench{n}", common=common)
    t0 = time.monotonic()
    try:
        boot = swarm.start("n0", gated=gated)
        maddrs = boot.wait_for("ready", t0 + deadline_s)["maddrs"]
        for i in range(1, n):
            swarm.start(f"n{i}", join=maddrs, gated=gated)
        for node in swarm.nodes:
            node.wait_for("ready", t0 + deadline_s)
        if gated:
            for node in swarm.nodes:  # one write each, back to back: the claims start within milliseconds
                node.release()
        joined = time.monotonic()
        jobs = {f"expert/{k}" for k in range(experts)}
        belief: dict[str, str | None] = {}
        dup = False
        done_at = None
        while time.monotonic() < t0 + deadline_s and done_at is None:
            for node in swarm.nodes:
                for ev in node.drain():
                    if ev["event"] == "owner":
                        belief[node.name] = ev["job"]
                    elif ev["event"] in ("lost", "stopped"):
                        belief[node.name] = None
            held = [j for j in belief.values() if j]
            if len(held) != len(set(held)):
                dup = True
            if set(held) == jobs and len(held) == len(jobs):
                done_at = time.monotonic()
            time.sleep(0.05)
        mem = [node_memory(node.proc.pid) for node in swarm.nodes]
        return {
            "nodes": n,
            "experts": experts,
            "join_s": round(joined - t0, 2),
            "assign_s": None if done_at is None else round(max(0.0, done_at - joined), 2),
            "dup": dup,
            "python_rss_mib": round(statistics.mean(m["python_rss"] for m in mem), 1),
            "dht_rss_mib": round(statistics.mean(m["dht_rss"] for m in mem), 1),
            "p2pd_rss_mib": round(statistics.mean(m["p2pd_rss"] for m in mem), 1),
            "uss_per_node_mib": round(statistics.mean(m["uss_total"] for m in mem), 1),
            "load1": round(psutil.getloadavg()[0], 1),
        }
    except AssertionError as e:
        return {"nodes": n, "experts": experts, "error": str(e)[:300], "elapsed_s": round(time.monotonic() - t0, 1)}
    finally:
        swarm.close()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the finally blocks: kill every node we started
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--ttl", type=float, default=20.0)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--jitter", type=float, default=1.0)
    ap.add_argument("--deadline", type=float, default=400.0, help="seconds per N before giving up")
    ap.add_argument("--repeats", type=int, default=1, help="runs per N (interleaved), summarised per N")
    ap.add_argument("--gated", action="store_true", help="hold joined nodes and release them at one instant")
    args = ap.parse_args()
    print(
        f"machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB; "
        f"ttl={args.ttl}s settle={args.settle}s jitter={args.jitter}s",
        flush=True,
    )
    results = []
    for rep in range(args.repeats):
        for n in args.nodes:
            r = bench(n, args.experts, args.ttl, args.settle, args.jitter, args.deadline, gated=args.gated)
            r["repeat"] = rep
            results.append(r)
            base = results[0]
            if r.get("assign_s") is not None and base.get("assign_s"):
                r["assign_ratio_vs_first"] = round(r["assign_s"] / base["assign_s"], 2)
            print(json.dumps(r), flush=True)
    if args.repeats > 1:
        for n in args.nodes:
            print(json.dumps(summary(n, [r for r in results if r["nodes"] == n])), flush=True)


def summary(n: int, runs: list[dict]) -> dict:
    """Median assign time over the runs that converged, its range, and the counts that matter."""
    times = sorted(r["assign_s"] for r in runs if r.get("assign_s") is not None)
    return {
        "summary": True,
        "nodes": n,
        "runs": len(runs),
        "converged": len(times),
        "with_duplicate": sum(bool(r.get("dup")) for r in runs),
        "assign_median_s": round(statistics.median(times), 2) if times else None,
        "assign_range_s": [times[0], times[-1]] if times else None,
        "load1": [r.get("load1") for r in runs],
    }


if __name__ == "__main__":
    main()
