"""The one module that owns the DHT key layout (protocol/dht.md mirrors it).

Every key is namespaced by run id; every per-node record lives under a subkey equal to the signer's node id,
so one node can never overwrite another's entry (the validator checks signer == subkey). hivemind hashes keys
(SHA-1 of their msgpack form), so a key protects nothing by itself: the validator recomputes the key a record
*must* live under from the record's own signed content and compares hashes (`dht_key_id`).

    paris/v1/<run>/lease/<job>      one lease per claimant            (job = expert/<k> | router)
    paris/v1/<run>/status           one status per node
    paris/v1/<run>/ckpt/<job>       one checkpoint pointer per publisher
    paris/v1/<run>/provider/<cid>   one provider record per serving node

Pure module: no network, no disk.
"""

from __future__ import annotations

import re

from paris_node.errors import UsageError
from paris_node.identity import Identity, node_id_from_public, peer_id_to_node_id, public_from_node_id
from paris_node.records import ROUTER_JOB, job_of_expert

PREFIX = "paris/v1"
MAX_EXPERTS = 1024  # a run with more experts than this is not one this version can carry
_RUN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CID_RE = re.compile(r"^[A-Za-z0-9]{8,128}$")
_EXPERT_RE = re.compile(r"^expert/(0|[1-9][0-9]{0,3})$")


def check_run(run: str) -> str:
    """Return `run` if it is a usable run id (letters, digits, `._-`, at most 128 chars), else UsageError."""
    if not isinstance(run, str) or not _RUN_RE.match(run):
        raise UsageError(f"run id {run!r} is not valid: use 1-128 letters, digits, '.', '_' or '-' (e.g. --run demo)")
    return run


def is_job(job: object) -> bool:
    """True for `router` and `expert/<k>` with 0 <= k < MAX_EXPERTS, written without leading zeros."""
    if job == ROUTER_JOB:
        return True
    m = _EXPERT_RE.match(job) if isinstance(job, str) else None
    return bool(m) and int(m.group(1)) < MAX_EXPERTS


def is_cid(cid: object) -> bool:
    return isinstance(cid, str) and bool(_CID_RE.match(cid))


def jobs_for(experts: int, router: bool = True) -> list[str]:
    """The jobs of a run with `experts` experts: expert/0 .. expert/K-1, then the router."""
    if not 1 <= experts <= MAX_EXPERTS:
        raise UsageError(f"a run needs 1..{MAX_EXPERTS} experts, got {experts} (check --experts)")
    return [job_of_expert(k) for k in range(experts)] + ([ROUTER_JOB] if router else [])


def _job(job: str) -> str:
    if not is_job(job):
        raise ValueError(f"not a job id: {job!r} (expected 'expert/<k>' or 'router')")
    return job


def lease_key(run: str, job: str) -> str:
    return f"{PREFIX}/{check_run(run)}/lease/{_job(job)}"


def status_key(run: str) -> str:
    return f"{PREFIX}/{check_run(run)}/status"


def pointer_key(run: str, job: str) -> str:
    return f"{PREFIX}/{check_run(run)}/ckpt/{_job(job)}"


def provider_key(run: str, cid: str) -> str:
    if not is_cid(cid):
        raise ValueError(f"not a CID: {cid!r}")
    return f"{PREFIX}/{check_run(run)}/provider/{cid}"


def subkey_for(who: Identity | str) -> str:
    """The subkey of a node's records: its node id (`z6Mk...`). Accepts an Identity, a node id or a peer id."""
    if isinstance(who, Identity):
        return who.node_id
    if isinstance(who, str) and who.startswith("z"):
        return node_id_from_public(public_from_node_id(who))  # validates
    if isinstance(who, str):
        return peer_id_to_node_id(who)
    raise TypeError(f"expected an Identity, node id or peer id, got {type(who).__name__}")


def dht_key_id(key: str) -> bytes:
    """The bytes hivemind stores a key under (DHTID of the key); what a validator sees as `record.key`."""
    from hivemind.dht.routing import DHTID  # hivemind imports torch: keep it out of pure importers' way

    return DHTID.generate(source=key).to_bytes()
