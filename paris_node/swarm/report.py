"""What `paris-node status` shows, computed from verified leases, statuses and pointers. Pure module."""

from __future__ import annotations

from paris_node.records import SignedRecord
from paris_node.swarm.claims import DEFAULT_RULES, ClaimRules, Lease, owners


def swarm_report(
    run: str,
    jobs: list[str],
    leases: list[Lease],
    statuses: list[SignedRecord],
    pointers: dict[str, list[SignedRecord]],
    now_ms: int,
    rules: ClaimRules = DEFAULT_RULES,
) -> dict:
    """A JSON-able summary: one row per job (owner, lease, latest status, newest pointer) and every node."""
    won = owners(leases, now_ms, run=run, rules=rules)
    latest: dict[str, SignedRecord] = {}
    for rec in statuses:
        if rec.signer not in latest or rec.issued_ms > latest[rec.signer].issued_ms:
            latest[rec.signer] = rec
    rows = []
    for job in jobs:
        lease = won.get(job)
        st = latest.get(lease.holder).body if lease is not None and lease.holder in latest else None
        ptrs = sorted(pointers.get(job, []), key=lambda r: (r.body.step, r.issued_ms), reverse=True)
        rows.append(
            {
                "job": job,
                "owner": lease.holder if lease else None,
                "state": lease.state if lease else "free",
                "held_s": round((now_ms - lease.lease_start_ms) / 1000, 1) if lease else None,
                "step": st.step if st else None,
                "loss": st.loss if st else None,
                "samples_per_s": st.samples_per_s if st else None,
                "checkpoint": ptrs[0].body.manifest_cid if ptrs else (st.checkpoint if st else None),
                "checkpoint_step": ptrs[0].body.step if ptrs else None,
                "checkpoint_age_s": round((now_ms - ptrs[0].issued_ms) / 1000, 1) if ptrs else None,
            }
        )
    nodes = [
        {
            "node_id": rec.signer,
            "role": rec.body.role,
            "job": rec.body.job,
            "step": rec.body.step,
            "version": rec.body.version,
            "age_s": round((now_ms - rec.issued_ms) / 1000, 1),
        }
        for rec in sorted(latest.values(), key=lambda r: r.signer)
    ]
    return {
        "run": run,
        "jobs": rows,
        "nodes": nodes,
        "standbys": [n["node_id"] for n in nodes if n["role"] == "standby"],
    }


def _short(node_id: str | None) -> str:
    return "-" if not node_id else f"{node_id[:8]}..{node_id[-4:]}"


def format_report(report: dict) -> str:
    """The human table of `swarm_report`."""
    cols = ("job", "owner", "state", "held_s", "step", "loss", "samples_per_s", "checkpoint_step", "checkpoint")
    rows = [
        [_short(r[c]) if c == "owner" else ("-" if r[c] is None else str(r[c])) for c in cols] for r in report["jobs"]
    ]
    widths = (
        [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)] if rows else [len(c) for c in cols]
    )
    lines = [f"run {report['run']}", "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    lines.append(f"nodes: {len(report['nodes'])}  standbys: {', '.join(map(_short, report['standbys'])) or '-'}")
    return "\n".join(lines)
