"""Start or join the run's hivemind DHT with the paris validator, and the small batched calls on top of it.

Create the DHT first in a process, before torch threads or DataLoader workers: hivemind forks its DHT child.
Every call here sends a few hundred bytes over hivemind's pipe (the 16 KiB hazard: keep records tiny).
hivemind's pipe to its child is not made for concurrent writers, so calls from our threads take `_lock`.
"""

from __future__ import annotations

import logging
import shlex
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import hivemind
from hivemind.utils import get_dht_time

from paris_node.errors import UsageError
from paris_node.swarm import hivemind_patch
from paris_node.swarm.validator import ParisValidator

logger = logging.getLogger(__name__)

READ_MARGIN = 2  # nodes beyond the replica set a read also asks (routing tables of peers differ slightly)

_locks: dict[int, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(dht: hivemind.DHT) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(id(dht), threading.Lock())


def start_dht(
    identity_path: str | Path,
    *,
    initial_peers: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 0,
    announce: Sequence[str] | None = None,
    startup_timeout: float = 30.0,
    skew_ms: int | None = None,
    client_mode: bool = False,
) -> hivemind.DHT:
    """Start this node's DHT (a new swarm if `initial_peers` is empty), identified by the node key file.

    `host`/`port` is where p2pd listens (`0.0.0.0` and a fixed port for a public node); `announce` are the
    multiaddrs others should dial when they differ from the listen address (NAT, public IP). `client_mode`
    nodes (readers such as `paris-node status`) query the DHT but store nothing for others.
    """
    for maddr in initial_peers:
        if "/p2p/" not in maddr:
            raise UsageError(f"--join {maddr!r} lacks /p2p/<peer id>; copy the full address the other node printed")
    try:
        hivemind_patch.apply()  # before the DHT process forks: it must never trust a peer's reply shape
    except RuntimeError as e:
        raise UsageError(str(e)) from None
    proto = "ip6" if ":" in host else "ip4"
    validator = ParisValidator() if skew_ms is None else ParisValidator(skew_ms=skew_ms)
    deadline = time.monotonic() + startup_timeout
    attempt = 0
    while True:
        attempt += 1
        try:
            return hivemind.DHT(
                initial_peers=list(initial_peers),
                start=True,
                identity_path=str(identity_path),
                host_maddrs=[f"/{proto}/{host}/tcp/{int(port)}"],
                announce_maddrs=list(announce) if announce else None,
                record_validators=[validator],
                startup_timeout=startup_timeout,
                check_if_identity_free=False,  # its check assumes RSA keys; duplicates show up as status conflicts
                await_ready=True,
                client_mode=client_mode,
            )
        except Exception as e:
            # a busy bootstrap peer may miss the first ping (3 s): retry until startup_timeout
            if initial_peers and "bootstrap failed" in str(e) and time.monotonic() < deadline:
                logger.info("bootstrap attempt %d failed (%s); retrying", attempt, e)
                continue
            hint = " Check that --join addresses are reachable and the other node is running." if initial_peers else ""
            raise UsageError(f"could not start the DHT ({type(e).__name__}: {e}).{hint}") from e


def visible_maddrs(dht: hivemind.DHT) -> list[str]:
    """Addresses others can use to join through this node (each ends with /p2p/<peer id>)."""
    return [str(m) for m in dht.get_visible_maddrs()]


def join_command(maddrs: Sequence[str], extra: str = "") -> str:
    """The exact command line another machine runs to join this swarm."""
    joins = " ".join(f"--join {shlex.quote(m)}" for m in maddrs)
    return f"paris-node start {joins}{(' ' + extra) if extra else ''}"


def stop_dht(dht: hivemind.DHT, timeout: float = 10.0) -> None:
    """Shut the DHT process down, and kill it if it does not finish within `timeout`.

    hivemind's graceful shutdown talks to p2pd; if p2pd is already gone (Ctrl-C in a terminal signals the whole
    process group, and p2pd exits on SIGINT) the DHT process can hang in it and even ignore SIGTERM, which would
    keep this process from exiting. A bounded stop matters more than a graceful one here.
    """
    done = threading.Thread(target=dht.shutdown, daemon=True)
    done.start()
    done.join(timeout)
    if dht.is_alive():
        logger.warning("the DHT process did not stop; killing it")
        dht.kill()
        dht.join(5)


def dht_now_ms() -> int:
    return int(get_dht_time() * 1000)


def store(dht: hivemind.DHT, key: str, subkey: str, value: bytes, expiration_s: float, timeout: float = 20.0) -> bool:
    """Store one record; False (logged at debug) when no replica accepted it."""
    try:
        with _lock(dht):
            # the first accepting replica is enough; hivemind keeps storing to the others in the background
            fut = dht.store(key, value, expiration_s, subkey=subkey, return_future=True, await_all_replicas=False)
        return bool(fut.result(timeout=timeout))
    except Exception as e:
        logger.debug("DHT store of %s failed: %s", key, e)
        return False


async def _get_many(_dht, node, keys: list[str]) -> dict:
    """Runs inside the DHT process: latest entries of each dictionary key as plain tuples."""
    # The latest entries of every subkey live on the key's `num_replicas` nearest nodes (that is where stores go):
    # a beam of those plus a margin finds them all, instead of a bucket-wide crawl that asks (and validates the
    # replies of) every peer of a small swarm. `inf`: never stop at the first replica, whose view may be partial.
    beam = max(3, node.num_replicas) + READ_MARGIN
    found = await node.get_many(keys, sufficient_expiration_time=float("inf"), beam_size=beam)
    out = {}
    for key in keys:
        item = found.get(key)
        if item is None or item.value is None or not hasattr(item.value, "items"):
            out[key] = []
            continue
        out[key] = [(sub, val.value, val.expiration_time) for sub, val in item.value.items()]
    return out


def get_many(dht: hivemind.DHT, keys: Sequence[str], timeout: float = 20.0) -> dict[str, list[tuple]] | None:
    """key -> [(subkey, value, expiration_s)] for dictionary keys; missing keys map to []; None if the call failed."""
    if not keys:
        return {}
    try:
        with _lock(dht):
            fut = dht.run_coroutine(_get_many_call(list(keys)), return_future=True)
        return fut.result(timeout=timeout)
    except Exception as e:
        logger.debug("DHT get of %d keys failed: %s", len(keys), e)
        return None


class _get_many_call:
    """A picklable, module-level callable (hivemind sends it to the DHT process)."""

    def __init__(self, keys: list[str]):
        self.keys = keys

    async def __call__(self, dht, node):
        return await _get_many(dht, node, self.keys)
