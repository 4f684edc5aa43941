"""Lease history as this reader saw it: who won which job's lease, and when. Pure module.

A lease record only says what its signer claims; winning is decided by each reader with claims.py's rules. A
reader that keeps the owners it observed can later tell whether a checkpoint's signer held the job when it
issued the checkpoint (node/selection.py) without trusting anybody's word for it. Bounded per job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from paris_node.records import SignedRecord
from paris_node.swarm.claims import DEFAULT_RULES, ClaimRules, Lease, effective_start, owners


@dataclass(frozen=True)
class Tenure:
    """An interval in which this reader saw `holder` win `job`'s lease (ms, DHT time)."""

    job: str
    holder: str
    start_ms: int
    end_ms: int


class LeaseHistory:
    """Owner tenures this reader has observed, bounded per job. Feed it every lease read (`observe`)."""

    def __init__(self, per_job: int = 64):
        self.per_job = per_job
        self._tenures: dict[str, dict[tuple[str, int], Tenure]] = {}

    def observe(
        self,
        leases: Iterable[Lease],
        now_ms: int,
        *,
        run: str = "",
        first_seen: Mapping | None = None,
        rules: ClaimRules = DEFAULT_RULES,
    ) -> None:
        """Record the current owner of every job: its tenure runs from its (clamped) start to its expiry."""
        for job, lease in owners(list(leases), now_ms, run=run, first_seen=first_seen, rules=rules).items():
            start = effective_start(lease, first_seen, rules)
            self.add(Tenure(job, lease.holder, start, max(now_ms, lease.expires_ms)))

    def add(self, tenure: Tenure) -> None:
        group = self._tenures.setdefault(tenure.job, {})
        k = (tenure.holder, tenure.start_ms)
        old = group.get(k)
        if old is not None:
            tenure = Tenure(
                tenure.job, tenure.holder, min(old.start_ms, tenure.start_ms), max(old.end_ms, tenure.end_ms)
            )
        group[k] = tenure
        while len(group) > self.per_job:  # forget the tenure that ended longest ago
            del group[min(group, key=lambda x: group[x].end_ms)]

    def tenures(self, job: str) -> list[Tenure]:
        return list(self._tenures.get(job, {}).values())

    def current_owner(self, job: str, now_ms: int) -> str | None:
        live = [t for t in self.tenures(job) if t.end_ms >= now_ms]
        return max(live, key=lambda t: t.start_ms).holder if live else None


def serving_of(statuses: list[SignedRecord]) -> dict[str, str | None]:
    """node id -> the job its latest status says it trains (None for standbys, readers, offline nodes)."""
    latest: dict[str, SignedRecord] = {}
    for rec in statuses:
        if rec.signer not in latest or rec.issued_ms > latest[rec.signer].issued_ms:
            latest[rec.signer] = rec
    return {who: (rec.body.job if rec.body.role in ("expert", "router") else None) for who, rec in latest.items()}
