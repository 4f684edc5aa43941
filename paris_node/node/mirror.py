"""Standbys keep verified copies of every job's latest checkpoint, so a crashed owner's work survives it.

An owner that dies with `kill -9` takes its content store with it; without a copy elsewhere, its successor
would start over. While a node has no job, this thread fetches (with full verification, node/fetcher.py) the
newest checkpoint of each job every `every_s` seconds, pins it, and announces itself as a provider; the copy
it replaces is unpinned and withdrawn. What a crash can lose is the work since the last *mirrored* checkpoint.
"""

from __future__ import annotations

import json
import logging
import threading

from paris_node.node import cache
from paris_node.node.verify import Candidate
from paris_node.swarm import keys

log = logging.getLogger(__name__)


def checkpoint_cids(info: dict) -> list[str]:
    """The manifest CID and file CIDs of an installed checkpoint (from its cache info)."""
    files = json.loads(info["record"])["payload"]["files"] if info.get("record") else {}
    return [info["manifest_cid"], *(f["cid"] for f in files.values())]


class Mirror:
    def __init__(self, node, every_s: float):
        self.node, self.every_s = node, every_s
        self.held: dict[str, list[str]] = {}  # job -> pinned CIDs of the copy we hold
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="paris-mirror", daemon=True)

    def start(self) -> Mirror:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            session = self.node.session
            if session is None or session.membership.owned_job is not None:
                continue  # owners spend their CPU on training
            for job in keys.jobs_for(self.node.manifest.experts):
                if self._stop.is_set() or session.membership.owned_job is not None:
                    break
                try:
                    self.mirror(session, job)
                except Exception as e:  # the swarm misbehaving must never stop the node
                    log.debug("mirroring %s failed: %s", job, e)

    def mirror(self, session, job: str) -> None:
        from paris_node.swarm.membership import read_pointers

        m, store = self.node.manifest, self.node.store
        pointers = read_pointers(session.dht, m.run_id, job)
        if not pointers:
            return
        accepted, _ = self.node.runner.fetcher(session).fetch_job(job, [Candidate(p) for p in pointers])
        info = cache.read_info(self.node.home, m.run_id, job)
        if accepted is None or info is None:
            return
        cids = checkpoint_cids(info)
        if self.held.get(job) == cids:
            return
        for cid in cids:
            store.pin(cid)
        old = self.held.get(job, [])
        for cid in set(old) - set(cids):
            store.unpin(cid)
        if old:
            session.announcer.unprovide([old[0]])
        session.announcer.provide([cids[0]])
        self.held[job] = cids
        log.info("mirrored %s step %d (%s)", job, accepted.step, cids[0])
