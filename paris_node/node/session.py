"""Short-lived swarm sessions for readers (`fetch`, `status`) and how a node obtains its run manifest."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from paris_node.content.blockstore import Blockstore
from paris_node.data.manifest import DEMO_RUN, RunManifest, build_run, load_run
from paris_node.errors import UsageError
from paris_node.home import Home
from paris_node.identity import Identity

log = logging.getLogger(__name__)

DEMO = "demo"


@contextlib.contextmanager
def reader_dht(join: list[str], timeout: float = 30.0) -> Iterator:
    """Join as a client-mode reader with a throwaway key (the node's own key may be in use by `start`)."""
    from paris_node.swarm.dht import start_dht, stop_dht

    if not join:
        raise UsageError("this command needs --join MADDR: an address a running node printed at start")
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "reader.key"
        key.write_bytes(Identity.generate().to_libp2p_bytes())
        key.chmod(0o600)
        dht = start_dht(key, initial_peers=join, startup_timeout=timeout, client_mode=True)
        try:
            yield dht
        finally:
            stop_dht(dht)


def demo_run(home: Home) -> RunManifest:
    """The built-in demo run: built locally (deterministic, so every machine gets the same run id)."""
    run_id, _ = build_run(DEMO_RUN, home)
    return load_run(home, run_id)


def obtain_run(home: Home, run: str, dht=None, exchange=None, timeout_s: float = 120.0) -> RunManifest:
    """The verified manifest of `run`: the demo run, a run held locally, or fetched by CID from the swarm."""
    if run == DEMO:
        return demo_run(home)
    try:
        return load_run(home, run)
    except (UsageError, KeyError) as e:
        if dht is None or exchange is None:
            raise UsageError(f"run {run} is not held locally and no swarm is joined to fetch it ({e})") from None
    from paris_node.swarm.membership import read_providers

    providers = [r.body.peer for r in read_providers(dht, run, run)]
    if not providers:
        raise UsageError(f"no node in the swarm announces run {run}; check the run id and --join")
    Blockstore(home.blocks_dir).pin(run)
    exchange.fetch(run, providers, deadline_s=timeout_s)  # verified block by block against the run id
    return load_run(home, run)
