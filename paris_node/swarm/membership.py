"""The networked claim loop and the record readers. Decisions are claims.py's; this module reads and writes.

Protocol (protocol/dht.md): read every job's leases, `choose_job`, wait a random jitter, re-check, write a
`claiming` lease, wait `settle`, re-read, and if `still_owner` write `active` (else `released` and try
again). A watcher re-reads at TTL/3 and sets `lost_event` when another lease wins or our renewals have
failed for a whole TTL; the node then stops training that job.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterable

import hivemind

from paris_node.errors import ParisError, RecordError, UsageError
from paris_node.identity import Identity
from paris_node.records import ROUTER_JOB, SignedRecord, StatusPayload, job_of_expert
from paris_node.swarm import keys
from paris_node.swarm.announcer import Announcer
from paris_node.swarm.claims import (
    ACTIVE,
    CLAIMING,
    DEFAULT_RULES,
    RELEASED,
    ClaimRules,
    Lease,
    attested,
    born_squatting,
    choose_job,
    credible,
    is_live,
    may_claim,
    owner_tag,
    owners,
    still_owner,
)
from paris_node.swarm.dht import dht_now_ms, get_many
from paris_node.swarm.tenure import LeaseHistory, latest_by_signer, serving_of
from paris_node.swarm.validator import decode_entry

logger = logging.getLogger(__name__)


FIRST_SEEN_CAP = 4096  # lease sightings kept before pruning the ones no longer in the DHT
READ_RETRY_S = (0.5, 5.0)  # back-off after a failed swarm read: first wait, cap (and never over the poll)


class SwarmUnavailable(ParisError):
    """The DHT did not answer a read; callers retry."""


# ------------------------------------------------------------------------------------------- readers
def _read(dht: hivemind.DHT, key_kinds: dict[str, str], run: str, skew_ms: int) -> dict[str, list]:
    t0 = time.monotonic()
    raw = get_many(dht, list(key_kinds))
    if raw is None:
        raise SwarmUnavailable("the DHT did not answer")
    out: dict[str, list] = {}
    for key, kind in key_kinds.items():
        good = []
        for subkey, value, expiration in raw.get(key, []):
            try:
                good.append(decode_entry(key, subkey, value, expiration, kind=kind, run=run, skew_ms=skew_ms))
            except RecordError as e:  # a misbehaving peer's record: drop it, survive
                logger.debug("dropped %s entry under %s from %r: %s", kind, key, subkey, e)
        out[key] = good
        logger.debug("read %s %s: %d of %d entries valid", kind, key, len(good), len(raw.get(key, [])))
    logger.debug("DHT read of %d keys took %.2f s", len(key_kinds), time.monotonic() - t0)
    return out


def read_leases(
    dht: hivemind.DHT,
    run: str,
    jobs: list[str],
    skew_ms: int = DEFAULT_RULES.skew_ms,
    witnesses: Iterable[str] = (),
) -> list[Lease]:
    """Every verified, credible lease on `jobs` (claims.credible with the statuses read in the same DHT call):
    what a short-lived reader (status, fetch) should decide from. Leases outside the run are never read.
    `witnesses`: node ids of the peers this reader joined through, whose watched view of the owners it trusts
    (claims.attested)."""
    leases, serving, statuses = read_claims(dht, run, jobs, skew_ms)
    now = dht_now_ms()
    return attested(credible(leases, now, serving=serving), attestation(statuses or [], witnesses), now)


def attestation(statuses: list[SignedRecord], witnesses: Iterable[str]) -> dict[str, str]:
    """job -> owner tag, from the latest status of each witness (node ids, in trust order: the first naming a job
    decides it). Statuses are signed: only the witness's own key can speak for it."""
    latest = latest_by_signer(statuses)
    out: dict[str, str] = {}
    for w in witnesses:
        if w in latest and latest[w].body.role != "offline":
            for job, tag in latest[w].body.owners.items():
                out.setdefault(job, tag)
    return out


def witnesses_of(maddrs: Iterable[str]) -> list[str]:
    """The node ids of the peers named by `/p2p/<peer id>` in `maddrs` (the addresses a reader joined)."""
    from multiaddr import Multiaddr

    from paris_node.identity import peer_id_to_node_id

    out = []
    for m in maddrs:
        try:
            out.append(peer_id_to_node_id(Multiaddr(m).value_for_protocol("p2p")))
        except Exception:  # no /p2p/ part, or not an Ed25519 peer id: that address attests nothing
            continue
    return list(dict.fromkeys(out))


def read_claims(
    dht: hivemind.DHT, run: str, jobs: list[str], skew_ms: int = DEFAULT_RULES.skew_ms, *, statuses: bool = True
) -> tuple[list[Lease], dict[str, str | None] | None, list[SignedRecord] | None]:
    """Leases on `jobs` and (one DHT call) the statuses and who serves which job by them (None when not read)."""
    wanted = {keys.lease_key(run, job): "lease" for job in jobs}
    if statuses:
        wanted[keys.status_key(run)] = "status"
    entries = _read(dht, wanted, run, skew_ms)
    records = [e.record for e in entries.pop(keys.status_key(run), [])] if statuses else None
    serving = serving_of(records) if records is not None else None
    leases = [_lease(entry) for group in entries.values() for entry in group]
    if logger.isEnabledFor(logging.DEBUG):  # the leases of nodes with a status (not a flood's), with their age
        now = dht_now_ms()
        for x in [x for x in leases if serving and x.holder in serving][:64]:
            logger.debug("lease %s %s... %s seq %d issued %.1f s ago", x.job, x.holder[:16], x.state, x.seq,
                         (now - x.issued_ms) / 1000)  # fmt: skip
    if serving:
        for job in lagging_jobs(leases, serving, dht_now_ms(), skew_ms):
            again = [_lease(e) for e in _read(dht, {keys.lease_key(run, job): "lease"}, run, skew_ms).popitem()[1]]
            logger.debug("re-read %s's lease on its own: %d entries", job, len(again))
            leases = newest_leases([*leases, *again])
    return leases, serving, records


def _sighting(lease: Lease) -> tuple[str, str, int]:
    """What identifies one lease across renewals: (job, holder, lease start)."""
    return (lease.job, lease.holder, lease.lease_start_ms)


def _lease(entry) -> Lease:
    body = entry.record.body
    return Lease(
        job=body.job,
        holder=entry.subkey,
        lease_start_ms=body.lease_start_ms,
        seq=body.seq,
        ttl_ms=body.ttl_ms,
        state=body.state,
        issued_ms=entry.record.issued_ms,
    )


def lagging_jobs(leases: list[Lease], serving: dict[str, str | None], now_ms: int, skew_ms: int) -> list[str]:
    """Jobs whose read shows no fresh lease although a holder's status (same read) says it serves the job.

    Fresh: at least half its TTL left. An owner renews at TTL/3, so a copy with less left missed a renewal: the
    read most likely reached only lagging replicas of that lease key (hivemind reads all keys in one traversal,
    and next to a flooded key, 1,000 sybil leases, replies are slow and may time out). Seen under the attack test:
    the router's copy was 22.6 s old at TTL 20 s + 3 s skew, live when read and expired by the time a reader
    used it. Such a job is re-read on its own (a small, fast traversal) before anyone calls it free or nearly so.
    After a crash this costs one extra read per poll until the crashed owner's status expires (60 s)."""
    rules = ClaimRules(skew_ms=skew_ms)
    live = {x.job for x in leases if is_live(x, now_ms + x.ttl_ms // 2, rules)}
    lagging = {x.job for x in leases if x.state != RELEASED and serving.get(x.holder) == x.job}
    return sorted(lagging - live)


def newest_leases(leases: list[Lease]) -> list[Lease]:
    """One lease per (job, holder): the most recently issued (then highest seq)."""
    best: dict[tuple[str, str], Lease] = {}
    for x in leases:
        k = (x.job, x.holder)
        if k not in best or (x.issued_ms, x.seq) > (best[k].issued_ms, best[k].seq):
            best[k] = x
    return list(best.values())


def read_history(
    dht: hivemind.DHT,
    run: str,
    jobs: list[str],
    history: LeaseHistory | None = None,
    witnesses: Iterable[str] = (),
) -> LeaseHistory:
    """`history` (or a new one) with the owners of `jobs` seen now and what they vouch for: what a short-lived
    reader (fetch) knows. Pass every job of the run: an owner of any job may vouch for another job's checkpoint.
    `witnesses` as for read_leases."""
    history = LeaseHistory() if history is None else history
    leases, serving, statuses = read_claims(dht, run, jobs)
    now = dht_now_ms()
    leases = attested(credible(leases, now, serving=serving), attestation(statuses or [], witnesses), now)
    history.observe(leases, now, run=run)
    history.observe_holdings(statuses or [], now)
    return history


def read_statuses(dht: hivemind.DHT, run: str, skew_ms: int = DEFAULT_RULES.skew_ms) -> list[SignedRecord]:
    return [e.record for e in _read(dht, {keys.status_key(run): "status"}, run, skew_ms)[keys.status_key(run)]]


def read_pointers(dht: hivemind.DHT, run: str, job: str, skew_ms: int = DEFAULT_RULES.skew_ms) -> list[SignedRecord]:
    key = keys.pointer_key(run, job)
    return [e.record for e in _read(dht, {key: "pointer"}, run, skew_ms)[key]]


def read_providers(dht: hivemind.DHT, run: str, cid: str, skew_ms: int = DEFAULT_RULES.skew_ms) -> list[SignedRecord]:
    key = keys.provider_key(run, cid)
    return [e.record for e in _read(dht, {key: "provider"}, run, skew_ms)[key]]


def peers_providing(dht: hivemind.DHT, run: str, cid: str, also: Iterable[str] = ()) -> list[str]:
    """Who to ask for `cid`: the peers announcing it, then `also` (peers known to have held it: the run's creator,
    a checkpoint's signer), each once, in that order. The one provider lookup of every fetch path (takeover,
    mirror, fetch, repair, the run manifest); a DHT that does not answer gives just `also` (callers retry).
    """
    try:
        found = [r.body.peer for r in read_providers(dht, run, cid)]
    except SwarmUnavailable as e:
        logger.debug("provider lookup for %s failed: %s", cid, e)
        found = []
    return list(dict.fromkeys([*found, *also]))


# ------------------------------------------------------------------------------------------- claims
def claim_target(claim: str | int, jobs: list[str]) -> str | None:
    """The single job `--claim N|router` asks for (None for auto); UsageError if it is not in the run."""
    if claim == "auto":
        return None
    job = ROUTER_JOB if claim == "router" else job_of_expert(int(claim))
    if job not in jobs:
        raise UsageError(f"--claim {claim}: the run has no job {job!r} (its jobs: {', '.join(jobs)})")
    return job


class Membership:
    """Claims one job of `run` for this node and watches that it keeps it."""

    def __init__(
        self,
        dht: hivemind.DHT,
        identity: Identity,
        run: str,
        jobs: list[str],
        *,
        claim: str | int = "auto",
        ttl: float = 60.0,
        settle: float = 8.0,
        jitter: float = 2.0,
        rules: ClaimRules = DEFAULT_RULES,
        announcer: Announcer | None = None,
    ):
        self.dht, self.identity, self.run, self.jobs = dht, identity, keys.check_run(run), list(jobs)
        self.me = keys.subkey_for(identity)
        self.target = claim_target(claim, self.jobs)
        self.ttl_ms, self.settle, self.jitter, self.rules = int(ttl * 1000), settle, jitter, rules
        self.poll = min(ttl / 3, 5.0)
        self.announcer = announcer or Announcer(dht, identity, run).start()
        self._own_announcer = announcer is None
        self.owned_job: str | None = None
        self.lost_event = threading.Event()
        self._first_seen: dict[tuple[str, str, int], int] = {}
        self._squatters: set[tuple[str, str, int]] = set()  # leases written into an occupied job (ignored)
        self._held_since: dict[str, tuple[str, int]] = {}  # job -> (winner, since when this watch sees it win)
        self._started_ms = dht_now_ms()
        self.history = LeaseHistory()  # owners seen by this node: the fetcher's eligibility evidence
        self._watch: threading.Thread | None = None
        self._watch_stop = threading.Event()
        self._on_loss: list[threading.Event] = []

    # -------------------------------------------------------------- reading
    def leases(self) -> list[Lease]:
        """Current verified leases, with our own lease as we last wrote it (a lagging read cannot drop it)."""
        leases, serving, statuses = read_claims(self.dht, self.run, self.jobs, self.rules.skew_ms)
        now = dht_now_ms()
        # first-seen order by this reader: once it has watched a whole TTL, every live lease it had not seen was
        # written since, so it may claim an earlier start by `fresh_clamp_ms` at most (instead of `clamp_ms`)
        warm = now - self._started_ms > self.ttl_ms + self.rules.skew_ms
        seen = now - self.rules.fresh_clamp_ms + self.rules.clamp_ms if warm else now
        new = [lease for lease in leases if _sighting(lease) not in self._first_seen]
        for lease in new:
            self._first_seen[_sighting(lease)] = seen
        if len(self._first_seen) > 4 * FIRST_SEEN_CAP:  # forget sightings of leases no longer around
            live = {_sighting(x) for x in leases}
            self._first_seen = {k: v for k, v in self._first_seen.items() if k in live}
            self._squatters &= live
        leases = [lease for lease in leases if _sighting(lease) not in self._squatters]
        leases = credible(leases, now, serving=serving, first_seen=self._first_seen, me=self.me, rules=self.rules)
        leases = self._with_mine(leases)
        leases = self._drop_squatters(leases, new, now)
        if warm:  # only a watch that has seen a whole TTL knows more than a fresh reader: then attest it
            self._attest()
        self.history.observe(leases, now, run=self.run, first_seen=self._first_seen, rules=self.rules)
        self.history.observe_holdings(statuses or [], now)
        return leases

    def _with_mine(self, leases: list[Lease]) -> list[Lease]:
        mine = self.announcer.lease
        if mine is not None and self.announcer.lease_ok_ms:
            leases = [lease for lease in leases if not (lease.holder == self.me and lease.job == mine.job)]
            leases.append(
                Lease(
                    mine.job,
                    self.me,
                    mine.lease_start_ms,
                    mine.seq,
                    mine.ttl_ms,
                    mine.state,
                    self.announcer.lease_ok_ms,
                )
            )
        return leases

    def _drop_squatters(self, leases: list[Lease], new: list[Lease], now: int) -> list[Lease]:
        """Mark and drop the leases first seen in this read that were written into an occupied job (claims.
        born_squatting), then remember since when each job's winner has been winning (by this watch)."""
        winners = owners(leases, now, run=self.run, first_seen=self._first_seen, rules=self.rules)
        squat = born_squatting(new, winners, self._held_since, now, me=self.me, rules=self.rules)
        if squat:
            self._squatters.update(_sighting(x) for x in squat)
            for job in sorted({x.job for x in squat}):
                n = sum(x.job == job for x in squat)
                logger.info("ignoring %d lease(s) on %s written while %s... held it (squatting)", n, job,
                            winners[job].holder[:16])  # fmt: skip
            leases = [x for x in leases if _sighting(x) not in self._squatters]
        held = {}
        for job, lease in winners.items():
            prev = self._held_since.get(job)
            held[job] = prev if prev is not None and prev[0] == lease.holder else (lease.holder, now)
        self._held_since = held
        return leases

    def _attest(self) -> None:
        """Say in our status who this watch sees owning each job (claims.attested: readers joined through us):
        the winners of the last read, which `_drop_squatters` keeps in `_held_since`."""
        won = sorted(self._held_since.items())[: StatusPayload.MAX_OWNERS]
        self.announcer.set_status(owners={job: owner_tag(holder) for job, (holder, _) in won})

    def _pick(self, leases: list[Lease], now: int) -> str | None:
        if self.target is not None:
            return self.target if may_claim(leases, self.target, now, self.me, rules=self.rules) else None
        return choose_job(leases, self.jobs, now, self.me, run=self.run, first_seen=self._first_seen, rules=self.rules)

    def _wins(self, leases: list[Lease], job: str) -> bool:
        return still_owner(
            leases, job, dht_now_ms(), self.me, run=self.run, first_seen=self._first_seen, rules=self.rules
        )

    # -------------------------------------------------------------- claiming
    def acquire(self, stop_event: threading.Event) -> str | None:
        """Block until this node owns a job (returned) or `stop_event` is set (None). Standby meanwhile."""
        self.lost_event.clear()
        backoff = READ_RETRY_S[0]
        while not stop_event.is_set():
            try:
                job = self._try_once(stop_event)
                backoff = READ_RETRY_S[0]
            except SwarmUnavailable as e:
                # capped exponential back-off: a swarm that does not answer must not be hammered by standbys
                logger.info("swarm read failed (%s); retrying in %.1f s", e, backoff)
                job = None
                if stop_event.wait(backoff):
                    return None
                backoff = min(backoff * 2, READ_RETRY_S[1], max(self.poll, READ_RETRY_S[0]))
            if job is not None:
                self.owned_job = job
                self._start_watch()
                return job
        return None

    def _try_once(self, stop_event: threading.Event) -> str | None:
        delay = random.uniform(0, self.jitter)
        leases = self.leases()
        job = self._pick(leases, dht_now_ms())
        if job is None:
            self.announcer.set_status(role="standby", job=self.target)
            # a race still settling may free a job soon: look again after half a settle, not a full poll
            racing = any(lease.state == CLAIMING and lease.holder != self.me for lease in leases)
            stop_event.wait(min(self.poll, self.settle / 2) if racing else self.poll)
            return None
        if delay and stop_event.wait(delay):
            return None
        if delay and self._pick(self.leases(), dht_now_ms()) != job:
            return None  # someone got there during our jitter: decide again
        start = dht_now_ms()
        logger.info("claiming %s", job)
        self.announcer.write_lease(job, CLAIMING, start, self.ttl_ms)
        if stop_event.wait(self.settle):
            self.announcer.release_lease()
            return None
        if not self._wins(self.leases(), job):
            logger.info("lost the race for %s; trying again", job)
            self.announcer.release_lease()
            return None
        self.announcer.write_lease(job, ACTIVE, start, self.ttl_ms)
        self.announcer.set_status(role="router" if job == ROUTER_JOB else "expert", job=job)
        logger.info("owner of %s", job)
        return job

    # -------------------------------------------------------------- holding
    def _start_watch(self) -> None:
        self._watch_stop.clear()
        self._watch = threading.Thread(target=self._watch_loop, name="paris-lease-watch", daemon=True)
        self._watch.start()

    def _watch_loop(self) -> None:
        job = self.owned_job
        while not self._watch_stop.wait(self.poll):
            margin = min(self.rules.skew_ms, self.ttl_ms // 4)  # stop before any reader may call it expired
            lapsed = dht_now_ms() > self.announcer.lease_ok_ms + self.ttl_ms - margin
            try:
                lost = lapsed or not self._wins(self.leases(), job)
            except SwarmUnavailable:
                lost = lapsed
            if lost:
                logger.warning("lost the lease on %s (%s)", job, "renewals failed" if lapsed else "another node won")
                self.owned_job = None
                self.announcer.release_lease()
                self.lost_event.set()
                for ev in self._on_loss:
                    ev.set()
                return

    def also_set_on_loss(self, event: threading.Event) -> None:
        """Set `event` too when the lease is lost (the node passes its per-job stop event)."""
        self._on_loss = [event]
        if self.lost_event.is_set():
            event.set()

    def stop_watch(self, timeout: float = 10.0) -> None:
        self._watch_stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(timeout)
        self._watch = None

    def release_with_reason(self, reason: str) -> None:
        """Give up the owned job because it failed here: release the lease, say why in this node's status."""
        self.owned_job = None
        self.announcer.release_lease()
        self.announcer.set_status(role="standby", job=None, error=reason)

    def release(self, timeout: float = 10.0) -> None:
        """Stop watching and withdraw our lease (and stop the announcer if we started it)."""
        self.stop_watch(timeout)
        self.owned_job = None
        if self._own_announcer:
            self.announcer.stop(timeout)
        else:
            self.announcer.release_lease()
