"""Lease history as this reader saw it: who won which job's lease, and when. Pure module.

A lease record only says what its signer claims; winning is decided by each reader with claims.py's rules. A
reader that keeps the owners it observed can later tell whether a checkpoint's signer held the job when it
issued the checkpoint (node/selection.py) without trusting anybody's word for it. Bounded per job.

It also keeps what the current owners vouch for (their statuses' `holds`): a reader that joined after a job's
owner left never saw that tenure, but the owners it does see may have verified and kept the checkpoint.
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
        self._holds: dict[str, frozenset[str]] = {}  # current owner -> checkpoint manifests its status vouches for

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

    def current_owners(self, now_ms: int) -> set[str]:
        """Every node seen winning some job's lease whose tenure has not ended."""
        return {t.holder for group in self._tenures.values() for t in group.values() if t.end_ms >= now_ms}

    def observe_holdings(self, statuses: Iterable[SignedRecord], now_ms: int) -> None:
        """Remember what the current owners' latest statuses say they hold (`holds`); other nodes' are ignored,
        so a key generator's statuses cost nothing here and the memory is bounded by the number of jobs."""
        owners_now = self.current_owners(now_ms)
        for who, rec in latest_by_signer(statuses).items():
            if who in owners_now:
                self._holds[who] = frozenset(getattr(rec.body, "holds", ()) or ())
        self._holds = {who: held for who, held in self._holds.items() if who in owners_now}

    def vouchers(self, manifest_cid: str, now_ms: int) -> list[str]:
        """Current owners whose status says they verified and serve `manifest_cid` (sorted node ids)."""
        owners_now = self.current_owners(now_ms)
        return sorted(who for who, held in self._holds.items() if manifest_cid in held and who in owners_now)


def latest_by_signer(statuses: Iterable[SignedRecord]) -> dict[str, SignedRecord]:
    """Each signer's most recently issued record."""
    latest: dict[str, SignedRecord] = {}
    for rec in statuses:
        if rec.signer not in latest or rec.issued_ms > latest[rec.signer].issued_ms:
            latest[rec.signer] = rec
    return latest


def serving_of(statuses: list[SignedRecord]) -> dict[str, str | None]:
    """node id -> the job its latest status says it trains (None for standbys, readers, offline nodes)."""
    return {
        who: (rec.body.job if rec.body.role in ("expert", "router") else None)
        for who, rec in latest_by_signer(statuses).items()
    }
