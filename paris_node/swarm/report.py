"""What `paris-node status` shows, computed from verified leases, statuses and pointers. Pure module."""

from __future__ import annotations

from paris_node.records import SignedRecord
from paris_node.swarm.claims import DEFAULT_RULES, ClaimRules, Lease, credible, owners
from paris_node.swarm.tenure import latest_by_signer, serving_of


def live_holders(providers: list[SignedRecord], statuses: list[SignedRecord]) -> list[str]:
    """Peers that announce a CID and have not said they went offline (provider records outlive their node)."""
    last: dict[str, SignedRecord] = {}
    for rec in statuses:
        peer = rec.body.peer
        if peer not in last or rec.issued_ms > last[peer].issued_ms:
            last[peer] = rec
    peers = dict.fromkeys(r.body.peer for r in providers)
    return [p for p in peers if p not in last or last[p].body.role != "offline"]


def swarm_report(
    run: str,
    jobs: list[str],
    leases: list[Lease],
    statuses: list[SignedRecord],
    pointers: dict[str, list[SignedRecord]],
    now_ms: int,
    rules: ClaimRules = DEFAULT_RULES,
    providers: dict[str, list[SignedRecord]] | None = None,
) -> dict:
    """A JSON-able summary: one row per job (owner, lease, latest status, newest pointer) and every node."""
    # the same rules a node applies: leases of a flood that serves nothing do not name an owner
    leases = credible(leases, now_ms, serving=serving_of(statuses), rules=rules)
    won = owners(leases, now_ms, run=run, rules=rules)
    latest = latest_by_signer(statuses)
    rows = []
    for job in jobs:
        lease = won.get(job)
        st = latest.get(lease.holder).body if lease is not None and lease.holder in latest else None
        # a pointer's step is its signer's claim: show the owner's (else one of a holder that just released the
        # job, else one of a node with a status), never whoever claims the highest step
        holders = {x.holder for x in leases if x.job == job}
        mine = [r for r in pointers.get(job, []) if lease is not None and r.signer == lease.holder]
        of_job = pointers.get(job, [])
        shown = mine or [r for r in of_job if r.signer in holders] or [r for r in of_job if r.signer in latest]
        ptrs = sorted(shown, key=_newest, reverse=True)  # last resort: a node of the run (it has a status)
        rows.append(
            {
                "job": job,
                "owner": lease.holder if lease else None,
                "state": lease.state if lease else "free",
                "held_s": round((now_ms - lease.lease_start_ms) / 1000, 1) if lease else None,
                "step": st.step if st else None,
                "loss": _num(st.loss) if st else None,
                "samples_per_s": _num(st.samples_per_s) if st else None,
                "checkpoint": ptrs[0].body.manifest_cid if ptrs else (st.checkpoint if st else None),
                "checkpoint_step": ptrs[0].body.step if ptrs else None,
                "checkpoint_age_s": round((now_ms - ptrs[0].issued_ms) / 1000, 1) if ptrs else None,
            }
        )
        if providers is not None:  # nodes serving the latest checkpoint (owner, standbys, readers, ex-owners)
            cid = rows[-1]["checkpoint"]
            rows[-1]["holders"] = len(live_holders(providers.get(cid, []), statuses)) if cid else 0
    nodes = [
        {
            "node_id": rec.signer,
            "role": rec.body.role,
            "job": rec.body.job,
            "step": rec.body.step,
            "version": rec.body.version,
            "age_s": round((now_ms - rec.issued_ms) / 1000, 1),
            "error": rec.body.error,
        }
        for rec in sorted(latest.values(), key=lambda r: r.signer)
    ]
    return {
        "run": run,
        "jobs": rows,
        "nodes": nodes,
        "standbys": [n["node_id"] for n in nodes if n["role"] == "standby"],
    }


def _newest(rec: SignedRecord) -> tuple[int, int]:
    return rec.body.step, rec.issued_ms


def _num(value: str | None) -> float | None:
    """Status numbers travel as decimal strings (canonical JSON has no floats); reports give numbers."""
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def _cell(col: str, value) -> str:
    if value is None:
        return "-"
    if col == "owner":
        return _short(value)
    if col == "checkpoint":
        return f"{value[:20]}.." if len(value) > 22 else value
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _short(node_id: str | None) -> str:
    return "-" if not node_id else f"{node_id[:8]}..{node_id[-4:]}"


def format_report(report: dict) -> str:
    """The human table of `swarm_report`."""
    cols = (
        "job", "owner", "state", "held_s", "step", "loss", "samples_per_s", "checkpoint_step", "checkpoint_age_s",
        "checkpoint",
    )  # fmt: skip
    if report["jobs"] and "holders" in report["jobs"][0]:
        cols = (*cols[:-1], "holders", cols[-1])
    rows = [[_cell(c, r[c]) for c in cols] for r in report["jobs"]]
    widths = (
        [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)] if rows else [len(c) for c in cols]
    )
    lines = [f"run {report['run']}", "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"nodes: {len(report['nodes'])}  standbys: {', '.join(map(_short, report['standbys'])) or '-'}")
    lines += [f"failed on {_short(n['node_id'])}: {n['error']}" for n in report["nodes"] if n.get("error")]
    return "\n".join(lines)
