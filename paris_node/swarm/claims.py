"""Claim decisions as pure functions: who owns a job, which job to claim, when to take over.

Every reader computes ownership from the same signed leases with the same rule, so all nodes agree without
talking to each other:

- A lease is *live* while `state != released` and `now <= issued_ms + ttl_ms + skew_ms` (the signer's clock
  plus the allowed skew, so a reader whose clock runs ahead does not expire a lease its holder still renews).
- Each holder is honoured for at most one job: its most recently issued live lease (a node flooding leases
  for every job gets one of them, not all).
- Among live leases for a job the winner is the smallest
  `(state != active, effective_start // bucket_ms, sha256(run | job | holder))`: an active holder that keeps
  renewing stays (stickiness), claims inside one bucket are broken by a hash nobody can choose in advance
  without grinding keys, and a reader clamps `lease_start_ms` to no earlier than `first_seen - clamp_ms` (a
  signature does not stop backdating).
- `choose_job` picks, among jobs with no live lease by anyone else, the one least advanced (`progress`), then
  by rendezvous hash of (run, job, me): simultaneous joiners spread over different jobs and converge in about
  one settle round instead of one round per job, which "lowest free expert id first" would need.

- Before any of this, `credible` drops leases a key generator could flood the job with: an `active` lease whose
  holder does not serve the job once it is older than `serve_grace_ms` (its status names another job or none;
  holders with no status at all only when the job has more than `max_new_claimants` of them), a
  `claiming` lease older than `claim_grace_ms` (a race lasts one settle), and foreign young leases beyond the
  first `max_new_claimants` per job (first-seen order of the reader). Readers that keep watching (standbys,
  owners) also clamp backdating of a lease they first saw while watching to `fresh_clamp_ms`.
- A watcher also drops, for good, every lease it first saw written into a job that another holder had already
  been winning for `occupied_ms` by its watch (`born_squatting`): honest nodes never claim a job with a live
  owner (they wait as its standby), so such a lease is a squatter's whatever statuses its signer publishes,
  and it cannot inherit the job when the owner crashes.

- A short-lived reader (`status`, `fetch`) has watched nothing: every lease it reads is new to it, so serving
  sybil leases look as old as the owner's and the hash decides. It trusts instead the peer it joined through
  (the user chose that address): that node's status names, per job, the owner its own watch sees (`owners`),
  and `attested` drops every other holder's lease on a job whose attested owner has a live lease in the read.
  A witness that names nobody live for a job changes nothing there.

Clock assumption: node clocks agree within `skew_ms` (default 3 s; hivemind bootstrap refuses larger skew).
The owner renews at TTL/3, so a live owner's lease never looks expired to a reader within that skew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from paris_node.records import ACTIVE, CLAIMING, RELEASED, StatusPayload  # defined with the records


@dataclass(frozen=True)
class Lease:
    """One verified lease as every reader sees it (times in ms of the signer's clock)."""

    job: str
    holder: str  # node id of the signer (== DHT subkey)
    lease_start_ms: int
    seq: int
    ttl_ms: int
    state: str
    issued_ms: int

    @property
    def expires_ms(self) -> int:
        return self.issued_ms + self.ttl_ms


@dataclass(frozen=True)
class ClaimRules:
    """Tunables every node of a run must share (they change who wins)."""

    skew_ms: int = 3_000
    bucket_ms: int = 2_000
    clamp_ms: int = 60_000  # how far before its first sighting a lease may say it started
    fresh_clamp_ms: int = 15_000  # the same, for a lease first seen by a reader that was already watching
    serve_grace_ms: int = 30_000  # an active lease must be backed by a serving status after this long
    claim_grace_ms: int = 30_000  # a claiming lease older than this is a stalled (or flooding) claim
    max_new_claimants: int = 4  # young foreign leases per job a reader considers (first seen first)
    occupied_ms: int = 30_000  # a job won this long (by a watcher's watch) is occupied: new leases squat it


DEFAULT_RULES = ClaimRules()


def is_live(lease: Lease, now_ms: int, rules: ClaimRules = DEFAULT_RULES) -> bool:
    return lease.state != RELEASED and now_ms <= lease.expires_ms + rules.skew_ms


def effective_start(lease: Lease, first_seen: Mapping[tuple[str, str, int], int] | None, rules: ClaimRules) -> int:
    seen = (first_seen or {}).get((lease.job, lease.holder, lease.lease_start_ms))
    return lease.lease_start_ms if seen is None else max(lease.lease_start_ms, seen - rules.clamp_ms)


def _hash(run: str, job: str, who: str) -> bytes:
    return hashlib.sha256(f"{run}|{job}|{who}".encode()).digest()


def rank(lease: Lease, run: str, first_seen=None, rules: ClaimRules = DEFAULT_RULES) -> tuple:
    start = effective_start(lease, first_seen, rules)
    return (lease.state != ACTIVE, start // rules.bucket_ms, _hash(run, lease.job, lease.holder))


def honoured(leases: Iterable[Lease], now_ms: int, rules: ClaimRules = DEFAULT_RULES) -> list[Lease]:
    """Live leases, at most one per holder: its most recently issued (ties: smallest job id)."""
    best: dict[str, Lease] = {}
    for lease in leases:
        if not is_live(lease, now_ms, rules):
            continue
        cur = best.get(lease.holder)
        if cur is None or (lease.issued_ms, _neg(lease.job)) > (cur.issued_ms, _neg(cur.job)):
            best[lease.holder] = lease
    return list(best.values())


def _neg(job: str) -> tuple:
    return tuple(-ord(c) for c in job)


def resolve_conflict(
    leases: Iterable[Lease], now_ms: int, *, run: str = "", first_seen=None, rules: ClaimRules = DEFAULT_RULES
) -> Lease | None:
    """The winning live lease among leases *for one job* (None if none is live)."""
    live = [lease for lease in leases if is_live(lease, now_ms, rules)]
    assert len({lease.job for lease in live}) <= 1, "resolve_conflict takes the leases of one job"
    return min(live, key=lambda lease: rank(lease, run, first_seen, rules), default=None)


def owners(
    leases: Iterable[Lease], now_ms: int, *, run: str = "", first_seen=None, rules: ClaimRules = DEFAULT_RULES
) -> dict[str, Lease]:
    """job -> winning lease, over the leases of all jobs (applies the one-job-per-holder rule first)."""
    by_job: dict[str, list[Lease]] = {}
    for lease in honoured(leases, now_ms, rules):
        by_job.setdefault(lease.job, []).append(lease)
    out = {}
    for job, group in by_job.items():
        winner = resolve_conflict(group, now_ms, run=run, first_seen=first_seen, rules=rules)
        if winner is not None:
            out[job] = winner
    return out


def live_owner(
    leases_for_job: Iterable[Lease], now_ms: int, *, run: str = "", first_seen=None, rules: ClaimRules = DEFAULT_RULES
) -> str | None:
    """Node id owning the job now, or None (free). For one job's leases; see `owners` for the flood rule."""
    winner = resolve_conflict(leases_for_job, now_ms, run=run, first_seen=first_seen, rules=rules)
    return None if winner is None else winner.holder


def free_jobs(leases: Iterable[Lease], jobs: Iterable[str], now_ms: int, me: str, *, rules=DEFAULT_RULES) -> list[str]:
    """Jobs with no honoured live lease by anyone but `me` (claiming counts as taken: let that race finish)."""
    taken = {lease.job for lease in honoured(leases, now_ms, rules) if lease.holder != me}
    return [job for job in jobs if job not in taken]


def choose_job(
    leases: Iterable[Lease],
    jobs: Iterable[str],
    now_ms: int,
    me: str,
    *,
    run: str = "",
    progress: Mapping[str, int] | None = None,
    first_seen=None,
    rules: ClaimRules = DEFAULT_RULES,
) -> str | None:
    """The job `me` should hold or claim now; None means: be a standby.

    If `me` already wins a job, that job (stickiness). Otherwise the free job with the least progress, then
    by rendezvous hash so that nodes deciding at the same moment prefer different jobs.
    """
    leases, jobs = list(leases), list(jobs)
    for job, lease in owners(leases, now_ms, run=run, first_seen=first_seen, rules=rules).items():
        if lease.holder == me and job in jobs:
            return job
    free = free_jobs(leases, jobs, now_ms, me, rules=rules)
    if not free:
        return None
    progress = progress or {}
    return min(free, key=lambda job: (progress.get(job, 0), _hash(run, job, me)))


def may_claim(leases: Iterable[Lease], job: str, now_ms: int, me: str, *, rules: ClaimRules = DEFAULT_RULES) -> bool:
    """For `--claim N` / `--claim router`: is `job` free for `me` right now (otherwise wait as its standby)?"""
    return job in free_jobs(leases, [job], now_ms, me, rules=rules)


def still_owner(
    leases: Iterable[Lease], job: str, now_ms: int, me: str, *, run: str = "", first_seen=None, rules=DEFAULT_RULES
) -> bool:
    """After settling (and on every heartbeat): does `me` win `job`? False means withdraw / stop training."""
    winner = owners(leases, now_ms, run=run, first_seen=first_seen, rules=rules).get(job)
    return winner is not None and winner.holder == me


def credible(
    leases: Iterable[Lease],
    now_ms: int,
    *,
    serving: Mapping[str, str | None] | None = None,
    first_seen: Mapping[tuple[str, str, int], int] | None = None,
    me: str | None = None,
    rules: ClaimRules = DEFAULT_RULES,
) -> list[Lease]:
    """The leases worth counting: drops squatters and flood claims (module docstring). Own leases always count.

    `serving` maps a node id to the job its latest live status names (None: a standby, reader or offline node);
    `serving is None` (no statuses read) disables the serving rule. A holder with no status at all in this read
    (a lagging read, or a generated key) is dropped only when its job carries more such leases than
    `max_new_claimants`, i.e. under a flood: an honest swarm never has that many live leases on one job.
    """
    out, young, unknown = [], {}, {}
    for lease in leases:
        if lease.holder == me or lease.state == RELEASED:
            out.append(lease)
            continue
        age = now_ms - effective_start(lease, first_seen, rules)
        if lease.state == CLAIMING and age > rules.claim_grace_ms:
            continue
        if lease.state == ACTIVE and age > rules.serve_grace_ms:
            if serving is None or serving.get(lease.holder) == lease.job:
                out.append(lease)
            elif lease.holder not in serving:
                unknown.setdefault(lease.job, []).append(lease)
            continue  # its status names another job, or says it trains nothing: a squatter
        young.setdefault(lease.job, []).append(lease)
    for group in unknown.values():
        if len(group) <= rules.max_new_claimants:
            out.extend(group)
    seen = first_seen or {}
    for group in young.values():
        group.sort(
            key=lambda x: (seen.get((x.job, x.holder, x.lease_start_ms), now_ms), rank(x, "", first_seen, rules))
        )
        out.extend(group[: rules.max_new_claimants])
    return out


def born_squatting(
    new: Iterable[Lease],
    winners: Mapping[str, Lease],
    held_since: Mapping[str, tuple[str, int]],
    now_ms: int,
    *,
    me: str | None = None,
    rules: ClaimRules = DEFAULT_RULES,
) -> list[Lease]:
    """Of the leases first seen in this read (`new`), those written into an occupied job: a job whose winner in
    this read (`winners`, job -> lease) is another holder that this watcher has seen winning it continuously since
    `held_since[job] = (holder, since_ms)`, at least `occupied_ms` before now.

    Honest nodes write a lease only for a job they found free (a claim race lasts a settle plus a jitter, well
    under `occupied_ms`; a winner whose lease has less than the clock skew left may look expired to a claimer,
    so it does not count) or for a job they already won, so what this returns is a squatter's lease: the caller
    keeps ignoring it (by job, holder and lease start), so the lease cannot inherit the job when its owner
    crashes, whatever statuses its signer publishes. Own leases and released ones never count.
    """
    out = []
    for lease in new:
        if lease.holder == me or lease.state == RELEASED:
            continue
        winner, since = winners.get(lease.job), held_since.get(lease.job)
        if winner is None or winner.holder == lease.holder or since is None or since[0] != winner.holder:
            continue
        if now_ms > winner.expires_ms - rules.skew_ms:
            continue  # a reader whose clock runs ahead by the skew may already see the job free: a fair claim
        if now_ms - since[1] >= rules.occupied_ms:
            out.append(lease)
    return out


def owner_tag(holder: str) -> str:
    """How a status's `owners` names a holder: the first characters of its node id (a second preimage of 20
    base58 characters, about 93 bits past the key-type prefix, is out of any key generator's reach)."""
    return holder[: StatusPayload.OWNER_ID_CHARS]


def attested(
    leases: Iterable[Lease], attestation: Mapping[str, str], now_ms: int, rules: ClaimRules = DEFAULT_RULES
) -> list[Lease]:
    """`leases` with a trusted witness's view applied: for each job whose attested owner (job -> owner_tag) holds
    a live, unreleased lease on it here, the other holders' leases on that job are dropped. Jobs the witness does
    not name, or names a holder without a live lease for (it crashed, or the witness is behind), are unchanged.
    """
    leases = list(leases)
    backed = {
        x.job
        for x in leases
        if x.state != RELEASED and is_live(x, now_ms, rules) and attestation.get(x.job) == owner_tag(x.holder)
    }
    return [x for x in leases if x.job not in backed or attestation[x.job] == owner_tag(x.holder)]
