"""Replicas that outlive their owner: every node serves the verified copies it holds and tops up replication.

An owner that dies with `kill -9` or leaves takes its content store with it; without a copy elsewhere, its
successor would start over. This thread:
- at start, adopts the verified checkpoints already in the node's cache (a reader's `fetch`, a former owner's
  or standby's mirror): re-checked against their manifests, pinned, announced as provided;
- every `every_s` seconds, fetches (with full verification, node/fetcher.py, `state` included so training can
  resume exactly) the newest checkpoint of each job: all of them on a standby; on an owner, only those with
  fewer than the run's replication target of live holders (`training.replicas`, default 2), never its own job;
- on a clean exit, `hand_off`: for each latest checkpoint this node is the only live holder of, it says so and
  waits, bounded, for another node to fetch it (the exchange keeps serving meanwhile).
The copy a newer one replaces is unpinned and withdrawn. What a crash can lose is the work since the last
checkpoint held by anyone else.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time

from paris_node.checkpoint import FOR_TRAINING
from paris_node.content.dag import missing_blocks
from paris_node.node import cache
from paris_node.node.verify import Candidate
from paris_node.swarm import keys

log = logging.getLogger(__name__)

DEFAULT_REPLICAS = 2  # holders of each job's latest checkpoint the swarm aims for
DEFAULT_HANDOFF_WAIT_S = 60.0


def replication_target(manifest) -> int:
    return int(manifest.training.get("replicas", DEFAULT_REPLICAS))


ESCALATE_ROUNDS = 10  # mirror rounds a short checkpoint may stay short before one more owner is elected to copy it
ESCALATE_MIN_S = 10.0


def needs_copy(
    holders: list[str],
    live: list[str],
    me: str,
    cid: str,
    target: int,
    standby: bool,
    own_job: bool,
    extra: int = 0,
) -> bool:
    """Whether this node should fetch the checkpoint `cid` (pure: the decision, not the fetch).

    Standbys copy everything (they have the CPU). Owners top up: of the live nodes not holding it, the
    `target - holders + extra` first in an order every node computes alike (sha256 of peer and CID) fetch it, so
    a deficit of one does not send every owner downloading at once. `extra` grows while the checkpoint stays
    short (an elected node may be stuck, or refuse the copy), so one silent node cannot leave it unreplicated.
    """
    if own_job or me in holders:
        return False
    if standby:
        return True
    deficit = target - len(holders)
    if deficit <= 0:
        return False
    others = sorted({*live, me} - set(holders), key=lambda p: hashlib.sha256(f"{p} {cid}".encode()).digest())
    return me in others[: deficit + max(0, extra)]


def escalation(short_for_s: float, every_s: float) -> int:
    """How many more owners than the deficit are elected once a checkpoint has been short for `short_for_s`."""
    return int(short_for_s // max(ESCALATE_MIN_S, ESCALATE_ROUNDS * every_s))


class Mirror:
    def __init__(self, node, every_s: float, handoff_wait_s: float = DEFAULT_HANDOFF_WAIT_S):
        self.node, self.every_s, self.handoff_wait_s = node, every_s, handoff_wait_s
        self.held: dict[str, list[str]] = {}  # job -> pinned CIDs of the copy we hold
        self._short: dict[str, tuple[str, float]] = {}  # job -> (CID, since when it has had too few holders)
        self._said: dict[str, str] = {}  # job -> the last thing logged about it (each change logged once)
        self._adopted = False
        self._leaving = threading.Event()  # set by hand_off: fetch nothing more, only wait for other holders
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="paris-mirror", daemon=True)

    def start(self) -> Mirror:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            session = self.node.session
            if session is None or self._leaving.is_set():
                continue
            if not self._adopted:
                self._adopted = True
                try:
                    self.adopt(session)
                except Exception as e:  # a damaged cache must not stop the mirror: it fetches afresh instead
                    log.warning("could not serve the copies held here: %s", e)
            own = session.membership.owned_job
            try:  # once per round, not once per job: the status key is the largest read
                statuses = self._statuses(session)
            except Exception as e:  # the swarm misbehaving must never stop the node
                log.debug("mirror round skipped: %s", e)
                continue
            for job in keys.jobs_for(self.node.manifest.experts, router=self.node.manifest.experts > 1):
                if self._stop.is_set():
                    break
                try:
                    self.mirror(session, job, statuses, standby=own is None, own_job=job == own)
                except Exception as e:  # the swarm misbehaving must never stop the node
                    self._say(job, f"mirroring {job} failed: {e}", logging.WARNING)

    def _say(self, job: str, message: str, level: int = logging.INFO) -> None:
        """Log `message` about `job` once, until something else is said about it (a round runs every second)."""
        if self._said.get(job) != message:
            self._said[job] = message
            log.log(level, "%s", message)
        else:
            log.debug("%s", message)

    def adopt(self, session) -> None:
        """Serve the verified copies already in the cache (fetched by `paris-node fetch`, or mirrored before)."""
        m, store = self.node.manifest, self.node.store
        for job, inst in cache.installed_jobs(self.node.home, m.run_id).items():
            folder = cache.job_dir(self.node.home, m.run_id, job)
            if any(missing_blocks(store, c) for c in inst.cids()) or cache.check(folder, inst):
                continue  # not whole in the store, or damaged: `verify --repair` first
            for cid in inst.cids():
                store.pin(cid)
            session.announcer.provide([inst.manifest_cid], vouch=True)
            self.held[job] = inst.cids()
            log.info("serving the copy of %s step %d held here (%s)", job, inst.step, inst.manifest_cid)

    def _statuses(self, session) -> list:
        from paris_node.swarm.membership import read_statuses

        return read_statuses(session.dht, self.node.manifest.run_id)

    def _holders(self, session, cid: str, statuses: list) -> tuple[list[str], list[str]]:
        """(live holders of `cid`, every live node's peer id), from the run's `statuses` read by the caller."""
        from paris_node.swarm.membership import read_providers
        from paris_node.swarm.report import live_holders

        run = self.node.manifest.run_id
        live = [r.body.peer for r in statuses if r.body.role != "offline"]
        return live_holders(read_providers(session.dht, run, cid), statuses), live

    def mirror(self, session, job: str, statuses: list, standby: bool = True, own_job: bool = False) -> None:
        from paris_node.swarm.membership import read_pointers

        m, store = self.node.manifest, self.node.store
        pointers = read_pointers(session.dht, m.run_id, job)
        if not pointers:
            return
        fetcher = self.node.runner.fetcher(session)
        candidates = [Candidate(p) for p in pointers]
        # the newest checkpoint the fetcher's own rules would consider (node/selection.py), not the highest claim:
        # a pointer nobody may publish must not decide what is replicated
        ahead = fetcher.plan_for(job, candidates)
        latest = max((c for c, _ in ahead.evaluate), key=lambda c: (c.body.step, c.pointer.issued_ms), default=None)
        if latest is None:
            codes = ", ".join(sorted({why.code for _, why in ahead.skipped}))
            self._say(job, f"nothing of {job} to mirror: every pointer was skipped ({codes})")
            return
        if latest.signer == session.identity.node_id:
            return  # our own publication: the store holds it already
        holders, live = self._holders(session, latest.body.manifest_cid, statuses)
        me, cid, target = session.identity.peer_id, latest.body.manifest_cid, replication_target(m)
        now = time.monotonic()
        if len(holders) >= target or me in holders:
            self._short.pop(job, None)
        elif self._short.get(job, ("", 0.0))[0] != cid:
            self._short[job] = (cid, now)
        extra = escalation(now - self._short.get(job, (cid, now))[1], self.every_s)
        if not needs_copy(holders, live, me, cid, target, standby, own_job, extra):
            return
        accepted, verdicts = fetcher.fetch_job(job, candidates, roles=FOR_TRAINING)
        inst = cache.read_installed(self.node.home, m.run_id, job)
        if accepted is None or accepted.manifest_cid != cid:
            why = next((v.reason for v in verdicts if v.manifest_cid == cid), "not planned")
            self._say(job, f"not mirroring {job} step {latest.body.step} ({cid}): {why}")
        if accepted is None or inst is None:
            return
        cids = inst.cids()
        if self.held.get(job) == cids:
            return
        for cid in cids:
            store.pin(cid)
        old = self.held.get(job, [])
        for cid in set(old) - set(cids):
            store.unpin(cid)
        if old:
            session.announcer.unprovide([old[0]])
        session.announcer.provide([cids[0]], vouch=True)
        self.held[job] = cids
        self._short.pop(job, None)
        self._say(job, f"mirrored {job} step {accepted.step} ({cids[0]}); holders were {len(holders)}")

    # ------------------------------------------------------------------ leaving
    def sole_holdings(self, session) -> dict[str, tuple[int, str]]:
        """What only this node (among live holders) holds whole: job -> (step, CID) of its latest checkpoint, and
        `data <CID>` -> (0, CID) for the run's manifest, shards and seeds."""
        from paris_node.swarm.membership import read_pointers

        m, store, me = self.node.manifest, self.node.store, session.identity.peer_id
        statuses, out = self._statuses(session), {}
        for job in keys.jobs_for(m.experts, router=m.experts > 1):
            pointers = read_pointers(session.dht, m.run_id, job)
            if not pointers:
                continue
            latest = max(pointers, key=lambda p: (p.body.step, p.issued_ms)).body
            if missing_blocks(store, latest.manifest_cid):
                continue  # we do not hold it
            others = [p for p in self._holders(session, latest.manifest_cid, statuses)[0] if p != me]
            if not others:
                out[job] = (latest.step, latest.manifest_cid)
        # the data a job cannot start without: the run manifest, the shards, the seeds (a run's creator is often
        # their only holder; a node that claims a job after it left could not train it)
        for cid in [m.run_id, *(c for c in m.cids() if c != m.centroids.cid)]:
            if missing_blocks(store, cid):
                continue
            if not [p for p in self._holders(session, cid, statuses)[0] if p != me]:
                out[f"data {cid}"] = (0, cid)
        return out

    def hand_off(self, timeout_s: float | None = None) -> dict[str, tuple[int, str]]:
        """Before a clean exit: wait (bounded) until each checkpoint and shard only we hold has another holder.

        Returns what is still held by this node alone when it gives up (empty when all were handed off).
        """
        session, wait = self.node.session, self.handoff_wait_s if timeout_s is None else timeout_s
        if session is None or wait <= 0:
            return {}
        self._leaving.set()
        try:
            alone = self.sole_holdings(session)
            if not alone:
                return {}
            for job, (step, cid) in alone.items():
                what = "the run's data" if job.startswith("data ") else f"{job} step {step}"
                log.warning(
                    "this node is the only holder of %s (%s); waiting up to %.0f s for another holder "
                    "(--handoff-wait)", what, cid, wait
                )  # fmt: skip
            deadline = time.monotonic() + wait
            while alone and time.monotonic() < deadline:
                time.sleep(min(2.0, max(deadline - time.monotonic(), 0)))  # polling the DHT, bounded
                alone = self.sole_holdings(session)
            for job, (step, cid) in alone.items():
                what = "the run's data" if job.startswith("data ") else f"{job} step {step}"
                log.warning("leaving as the only holder of %s (%s): it is lost", what, cid)
            if not alone:
                log.info("every checkpoint and shard held here has another holder now")
            return alone
        except Exception as e:  # the DHT may be failing on the way out: leave anyway
            log.warning("could not check who else holds our checkpoints: %s", e)
            return {}
