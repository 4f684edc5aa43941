"""Where the page's data comes from: the run's DHT records and its content, read through the node's own parts.

`SwarmSource` is what the collector needs; `DhtSource` is the real one (hivemind DHT readers of
swarm/membership.py, which verify every record, and the block exchange, which verifies every block against
its CID). Tests can pass any object with the same methods.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import iter_file, missing_blocks
from paris_node.records import SignedRecord
from paris_node.swarm.claims import Lease

log = logging.getLogger(__name__)

MAX_CONTENT = 4 << 20  # a manifest or sample over this is not one we read


class SwarmSource(Protocol):
    def leases(self, jobs: list[str]) -> list[Lease]: ...
    def statuses(self) -> list[SignedRecord]: ...
    def pointers(self, job: str) -> list[SignedRecord]: ...
    def providers(self, cid: str) -> list[str]: ...
    def content(self, cid: str, peers: Sequence[str]) -> bytes: ...
    def has(self, cid: str) -> bool: ...


class DhtSource:
    """Reads `run` from a hivemind DHT; content comes through `exchange.fetch` into `store` (both verified)."""

    def __init__(
        self, dht, run: str, exchange, store: Blockstore, deadline_s: float = 20.0, witnesses: Sequence[str] = ()
    ):
        self.dht, self.run, self.exchange, self.store, self.deadline_s = dht, run, exchange, store, deadline_s
        self.witnesses = list(witnesses)  # node ids whose watched view of the owners this page trusts

    def leases(self, jobs: list[str]) -> list[Lease]:
        from paris_node.swarm.membership import read_leases

        return read_leases(self.dht, self.run, jobs, witnesses=self.witnesses)

    def statuses(self) -> list[SignedRecord]:
        from paris_node.swarm.membership import read_statuses

        return read_statuses(self.dht, self.run)

    def pointers(self, job: str) -> list[SignedRecord]:
        from paris_node.swarm.membership import read_pointers

        return read_pointers(self.dht, self.run, job)

    def providers(self, cid: str) -> list[str]:
        from paris_node.swarm.membership import read_providers

        return sorted({r.body.peer for r in read_providers(self.dht, self.run, cid)})

    def has(self, cid: str) -> bool:
        return not missing_blocks(self.store, cid)

    def content(self, cid: str, peers: Sequence[str]) -> bytes:
        """The bytes of the file `cid`, fetched from `peers` if not held; every block is checked against its CID."""
        if missing_blocks(self.store, cid):
            self.exchange.fetch(cid, list(peers), deadline_s=self.deadline_s)
        out, size = [], 0
        for piece in iter_file(self.store, cid):  # re-verifies each block as it reads it
            size += len(piece)
            if size > MAX_CONTENT:
                raise ValueError(f"{cid} is over {MAX_CONTENT} bytes")
            out.append(piece)
        return b"".join(out)
