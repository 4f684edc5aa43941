"""Short-lived swarm sessions for readers (`fetch`, `status`), which run and swarm a command means, and how a
node obtains its run manifest.

Which swarm and run (`choose_target`, `learn_run`): `--join` / `--run` when given; else what the home
remembers (`<home>/swarm.json`, written by `start` and `init`); a home given only `--join` learns the run from
the swarm when the swarm names exactly one. `--run` never silently means the demo run on a home that knows
another; every choice not given on the command line is said (`Target.notes`).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from paris_node.content.blockstore import Blockstore
from paris_node.data.manifest import DEMO_RUN, RunManifest, build_run, load_run
from paris_node.errors import UsageError
from paris_node.home import Home
from paris_node.identity import Identity, signer_peer
from paris_node.node.homestate import node_running, read_swarm

log = logging.getLogger(__name__)

DEMO = "demo"


def check_run_arg(run: str, flag: str = "--run") -> str:
    """`run` if it is 'demo' or a CID; else a UsageError naming the fix (checked before any network)."""
    from paris_node.content.cid import parse_cid

    if run == DEMO:
        return run
    try:
        parse_cid(run)
    except ValueError:
        raise UsageError(
            f"{flag} {run!r} is not a run id: give the id `paris-node init` printed or a node showed "
            "(a CID such as bafkrei...), or 'demo'; `paris-node runs` lists the runs this home holds"
        ) from None
    return run


class NoRunNamed(UsageError):
    """The joined swarm did not say which run it trains (and the home remembers none)."""


@dataclass
class Target:
    """The swarm addresses and run a reader uses; `run` None means: learn it from the swarm."""

    join: list[str]
    run: str | None
    fallback_run: str | None = None  # the home's remembered run, if the swarm names several or none
    notes: list[str] = field(default_factory=list)


def choose_target(home: Home, run: str | None, join: list[str] | tuple[str, ...]) -> Target:
    """Resolve `--run` / `--join` against what the home remembers; UsageError when there is nothing to go on."""
    if run is not None:
        check_run_arg(run)
    mem = read_swarm(home)
    notes: list[str] = []
    joins = list(join)
    if not joins:
        alive = node_running(home)
        joins = mem.join(alive is not None)
        if not joins and mem.maddrs:
            raise UsageError(
                f"this home's node started its own swarm but is not running, so the addresses in {home.swarm_file} "
                "are gone: start it again (`paris-node start`), or give --join MADDR"
            )
        if not joins:
            raise UsageError(
                "no swarm to join: give --join MADDR (an address `paris-node start` printed), or run "
                f"`paris-node start` on this home first (it records its swarm in {home.swarm_file})"
            )
        notes.append(f"swarm: {joins[0]}{' (+more)' if len(joins) > 1 else ''} (from {home.swarm_file})")
    if run is None and mem.run is not None and not list(join):  # with --join, the swarm's run comes first
        run = mem.run
        notes.append(f"run: {run} (from {home.swarm_file}; --run to choose another)")
    return Target(joins, run, fallback_run=mem.run, notes=notes)


def learn_run(dht, target: Target) -> str:
    """The run to use once joined: the given/remembered one, else the single run the swarm names."""
    if target.run is not None:
        return target.run
    from paris_node.swarm.runs import ask_runs

    hints = ask_runs(dht)
    names = {h.run for h in hints}
    if len(hints) == 1:
        target.notes.append(f"run: {hints[0].run} ({hints[0].name!r}, the only run the swarm trains)")
        return hints[0].run
    if hints and target.fallback_run in names:
        target.notes.append(f"run: {target.fallback_run} (from this home; the swarm trains {len(hints)} runs)")
        return target.fallback_run
    if hints:
        listing = "; ".join(f"{h.run} ({h.name!r}, {h.experts} experts)" for h in hints)
        raise UsageError(f"the swarm trains several runs: {listing}; choose one with --run")
    if target.fallback_run is not None:
        target.notes.append(f"run: {target.fallback_run} (from this home; the swarm did not name its run)")
        return target.fallback_run
    raise NoRunNamed("no node in the swarm named the run it trains (older nodes do not): give --run RUN_ID")


@contextlib.contextmanager
def reader_dht(join: list[str], timeout: float = 30.0) -> Iterator:
    """Join as a client-mode reader with a throwaway key (the node's own key may be in use by `start`)."""
    from paris_node.swarm.dht import start_dht, stop_dht
    from paris_node.swarm.lifeline import Lifeline

    if not join:
        raise UsageError("this command needs --join MADDR: an address a running node printed at start")
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "reader.key"
        key.write_bytes(Identity.generate().to_libp2p_bytes())
        key.chmod(0o600)
        dht = start_dht(key, initial_peers=join, startup_timeout=timeout, client_mode=True)
        lifeline = Lifeline().install(dht)
        try:
            yield dht
        finally:
            stop_dht(dht)
            lifeline.reap()


def demo_run(home: Home) -> RunManifest:
    """The built-in demo run: built locally (deterministic, so every machine gets the same run id)."""
    run_id, _ = build_run(DEMO_RUN, home)
    return load_run(home, run_id)


def held_run(home: Home, run: str) -> RunManifest | None:
    """The manifest of `run` if this home holds it; None otherwise (and for 'demo', which is built on demand)."""
    if run == DEMO or not home.root.is_dir():
        return None
    try:
        return load_run(home, run)
    except (UsageError, KeyError):
        return None


def obtain_run(home: Home, run: str, dht=None, exchange=None, timeout_s: float = 120.0) -> RunManifest:
    """The verified manifest of `run`: the demo run, a run held locally, or fetched by CID from the swarm."""
    if run == DEMO:
        return demo_run(home)
    check_run_arg(run)
    try:
        return load_run(home, run)
    except (UsageError, KeyError) as e:
        if dht is None or exchange is None:
            raise UsageError(f"run {run} is not held locally and no swarm is joined to fetch it ({e})") from None
    import time

    from paris_node.swarm.membership import peers_providing

    deadline, wait, providers = time.monotonic() + timeout_s, 1.0, []
    while True:  # a node that just started may not have announced its run yet
        providers = peers_providing(dht, run, run)
        if providers or time.monotonic() + wait > deadline:
            break
        log.info("no node announces run %s yet; looking again in %.0f s", run, wait)
        time.sleep(wait)  # polling the DHT with a deadline
        wait = min(wait * 2, 10.0)
    if not providers:
        raise UsageError(
            f"no node in the swarm announced run {run} within {timeout_s:.0f} s; check the run id and --join"
        )
    Blockstore(home.blocks_dir).pin(run)
    exchange.fetch(run, providers, deadline_s=timeout_s)  # verified block by block against the run id
    return load_run(home, run)


def creator_peers(manifest: RunManifest) -> list[str]:
    """The run's creator held every shard when it signed the run: the peer to ask when no provider record is found
    (a demo run is everyone's and has no creator to ask)."""
    return [] if manifest.is_demo else [signer_peer(manifest.signer)]
