"""`python -m paris_node.swarm`: a bare swarm node that reports JSON lines on stdout (tests, benchmarks).

Same code path as `paris-node start` with the idle job runner; `--report-every` adds periodic `view` events
with the owners this node computes from the leases it reads. `main(argv, on_session=...)` runs a caller's hook once
the node has joined, before its first claim (tests/swarm/gated_node.py uses it to hold nodes at the start line).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable

from paris_node.home import Home
from paris_node.swarm.claims import ClaimRules, owners
from paris_node.swarm.dht import dht_now_ms
from paris_node.swarm.membership import SwarmUnavailable, read_leases
from paris_node.swarm.runner import Session, StopSignal, SwarmOptions, run_node

_out_lock = threading.Lock()


def emit(name: str, data: dict) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps({"event": name, "t_ms": dht_now_ms(), **data}) + "\n")
        sys.stdout.flush()


def _claim(value: str) -> str | int:
    return value if value in ("auto", "router") else int(value)


def main(argv: list[str] | None = None, on_session: Callable[[Session], None] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m paris_node.swarm")
    ap.add_argument("--home", required=True)
    ap.add_argument("--run", default="demo")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--no-router", action="store_true")
    ap.add_argument("--claim", type=_claim, default="auto")
    ap.add_argument("--join", action="append", default=[])
    ap.add_argument("--ttl", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=8.0)
    ap.add_argument("--jitter", type=float, default=2.0)
    ap.add_argument("--skew-ms", type=int, default=3000)
    ap.add_argument("--report-every", type=float, default=0.0)
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")

    stop = StopSignal()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    options = SwarmOptions(
        home=Home.resolve(args.home),
        run=args.run,
        experts=args.experts,
        router=not args.no_router,
        claim=args.claim,
        join=tuple(args.join),
        lease_ttl_s=args.ttl,
        settle_s=args.settle,
        jitter_s=args.jitter,
        skew_ms=args.skew_ms,
    )

    def joined(session: Session) -> None:
        if args.report_every > 0:
            threading.Thread(target=_report, args=(session, options, stop, args.report_every), daemon=True).start()
        if on_session is not None:
            on_session(session)

    run_node(options, stop=stop, on_event=emit, on_session=joined)


def _report(session: Session, options: SwarmOptions, stop: threading.Event, every: float) -> None:
    rules = ClaimRules(skew_ms=options.skew_ms)
    jobs = options.job_list()
    while not stop.wait(every):
        try:
            leases = read_leases(session.dht, options.run, jobs, options.skew_ms)
        except SwarmUnavailable:
            continue
        now = dht_now_ms()
        won = owners(leases, now, run=options.run, rules=rules)
        emit(
            "view",
            {
                "owners": {job: lease.holder for job, lease in won.items()},
                "leases": [[lease.job, lease.holder, lease.state] for lease in leases],
                "mine": session.membership.owned_job,
            },
        )


if __name__ == "__main__":
    main()
