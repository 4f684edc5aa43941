"""A malicious swarm member for the attack tests: its own DHT identity, joined to a live swarm.

It writes only what any peer may write (records signed by keys it generates, values in its own DHT storage)
and performs the attacks of issue 16: a takeover pointer at a huge step for a job it never held, pointer spam
from sybil keys, a flood of valid sybil leases, malformed DHT values served to every find, and (as a lease owner)
a checkpoint of all-zero weights.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path

import torch
from hivemind.dht.routing import DHTID
from hivemind.dht.storage import DictionaryDHTValue
from safetensors.torch import load_file, save_file

from paris_node import __version__
from paris_node.content.blockstore import Blockstore
from paris_node.content.exchange import ExchangeService
from paris_node.home import Home
from paris_node.identity import Identity, load_or_create
from paris_node.node import cache
from paris_node.node.publish import store_checkpoint
from paris_node.node.session import held_run
from paris_node.records import LeasePayload, PointerPayload, StatusPayload, sign_record
from paris_node.swarm import keys
from paris_node.swarm.announcer import POINTER_TTL_S, Announcer
from paris_node.swarm.dht import dht_now_ms, start_dht, stop_dht, store, visible_maddrs
from paris_node.training.run_dir import latest_checkpoint


def garbage_cid(seed: str, i: int) -> str:
    """The i-th manifest CID nobody serves (the parent can list what the DHT process signed)."""
    return "bafkrei" + hashlib.sha256(f"{seed}/{i}".encode()).hexdigest()[:52]


class _Spam:
    """Runs in the attacker's DHT process: sign and store records there (hivemind's pipe chokes on big calls).

    kind "pointer": `n` pointers per job, each by a fresh key, naming garbage_cid(seed, i) at `step`;
    kind "lease": `n` active leases on each job by fresh keys, backdated as far as readers allow; the first
    `serving` of those keys also store a status saying they train that job (so the leases look worked).
    """

    def __init__(self, kind: str, run: str, jobs: list[str], n: int, step: int = 0, seed: str = "", serving=0):
        self.kind, self.run, self.jobs, self.n, self.step, self.seed = kind, run, jobs, n, step, seed
        self.serving = serving

    async def __call__(self, _dht, node):
        now = dht_now_ms()
        entries, i = [], 0
        for job in self.jobs:
            for k in range(self.n):
                who = Identity.generate()
                if self.kind == "pointer":
                    body = PointerPayload(job=job, manifest_cid=garbage_cid(self.seed, i), step=self.step, seq=0)
                    key, exp = keys.pointer_key(self.run, job), now / 1000 + 3600
                else:
                    body = LeasePayload(
                        job=job, peer=who.peer_id, lease_start_ms=now - 59_000, seq=0, ttl_ms=600_000, state="active"
                    )
                    key, exp = keys.lease_key(self.run, job), (now + 600_000) / 1000
                    if k < self.serving:
                        status = StatusPayload(role="expert", peer=who.peer_id, version=__version__, job=job)
                        rec = sign_record(who, status, run=self.run, issued_ms=now)
                        entries.append((keys.status_key(self.run), who.node_id, rec.to_bytes(), exp - 10))
                rec = sign_record(who, body, run=self.run, issued_ms=now)
                entries.append((key, who.node_id, rec.to_bytes(), exp))
                i += 1
        stored = 0
        for s in range(0, len(entries), 50):
            ks, subs, vals, exps = zip(*entries[s : s + 50], strict=True)
            done = await node.store_many(
                list(ks), list(vals), list(exps), subkeys=list(subs), await_all_replicas=False
            )
            stored += sum(bool(v) for v in done.values())
        return stored


class _Poison:
    """Runs in the attacker's DHT process: malformed dictionaries it will serve for `keys` (issue 16's TypeError)."""

    def __init__(self, keys: list[str]):
        self.keys = keys

    async def __call__(self, _dht, node):
        from hivemind.utils import get_dht_time

        storage = node.protocol.storage
        for key in self.keys:
            bad = DictionaryDHTValue()
            bad.maxsize = "x"
            storage.data.pop(DHTID.generate(key), None)  # replace whatever this replica holds for the key
            super(type(storage), storage).store(DHTID.generate(key), bad, get_dht_time() + 3600)
        return len(self.keys)


class MaliciousPeer:
    def __init__(self, root: Path, run: str, join: list[str]):
        self.run = run
        self.identity = load_or_create(root / "mallory.key")
        self.stored = 0  # entries the last spam_pointers call got stored
        self.dht = start_dht(root / "mallory.key", initial_peers=join)

    def close(self) -> None:
        stop_dht(self.dht)

    def takeover_pointer(self, job: str, step: int = 1_000_400) -> None:
        """A pointer signed by this identity for a job it never held, at a step far past any budget."""
        now = dht_now_ms()
        cid = garbage_cid("takeover", 0)
        rec = sign_record(self.identity, PointerPayload(job=job, manifest_cid=cid, step=step, seq=0), self.run, now)
        store(self.dht, keys.pointer_key(self.run, job), self.identity.node_id, rec.to_bytes(), now / 1000 + 3600)

    def spam_pointers(self, jobs: list[str], per_job: int, step: int) -> list[str]:
        """`per_job` pointers per job, each from a fresh key, naming manifests nobody serves; their CIDs."""
        seed = secrets.token_hex(8)
        self.stored = self.dht.run_coroutine(_Spam("pointer", self.run, jobs, per_job, step=step, seed=seed))
        return [garbage_cid(seed, i) for i in range(per_job * len(jobs))]

    def flood_leases(self, job: str, n: int, serving: int = 0) -> int:
        """`n` valid active leases on `job` from fresh keys (about 1.9 KB each), backdated, the first `serving` of
        them with a status saying they train `job`; how many entries (leases and statuses) were stored."""
        return self.dht.run_coroutine(_Spam("lease", self.run, [job], n, serving=serving))

    def poison(self, jobs: list[str]) -> int:
        """Serve malformed dictionaries for the run's lease, pointer and status keys from now on."""
        targets = [keys.status_key(self.run), *(keys.lease_key(self.run, j) for j in jobs)]
        targets += [keys.pointer_key(self.run, j) for j in jobs]
        return self.dht.run_coroutine(_Poison(targets))


class ZeroCheckpointOwner:
    """The frozen-job attack of issue 16, as the lease owner itself: a node that held `job` legitimately publishes a
    checkpoint whose weights are all zero (its val-loss ratio is the zero predictor's 1.0), then goes away.

    `prepare` runs while the owner still holds the lease: it copies the owner's latest checkpoint folder, zeroes the
    weights, stores it in its own blockstore and signs the manifest and a pointer with the owner's key (a signer
    chooses its records' issue time, so the pointer is issued inside the lease). `serve`, after the owner's process
    is gone (one peer ID, one process), joins the swarm under the owner's key, serves the blocks, announces them and
    stores the pointer over the owner's last one.
    """

    def __init__(self, root: Path, owner_home: Home, run: str, job: str):
        self.root, self.owner_home, self.run, self.job = root, owner_home, run, job
        self.identity = load_or_create(owner_home.identity_path)
        self.store = Blockstore(root / "zero-owner-blocks")
        self.dht = self.exchange = self.announcer = None
        self.manifest_cid, self.step = "", 0
        self._files: list[str] = []
        self._pointer = None

    def prepare(self, parent: str, ahead: int = 5) -> str:
        """Sign the zero checkpoint `ahead` steps past the owner's newest checkpoint on disk (so newer than any it
        published), with `parent` as its parent; its manifest CID (`self.step` is its step)."""
        src = latest_checkpoint(self.owner_home.work_dir / self.run / cache.job_dirname(self.job))
        assert src is not None, f"the owner has no checkpoint of {self.job} to copy"
        step = int(src.resolve().name.removeprefix("step-")) + ahead
        ckpt = self.root / "zero-checkpoint"
        shutil.copytree(src, ckpt)
        weights = load_file(str(ckpt / "model.safetensors"))
        save_file({k: torch.zeros_like(v) for k, v in weights.items()}, str(ckpt / "model.safetensors"))
        manifest = held_run(self.owner_home, self.run)
        self.manifest_cid, _, self._files = store_checkpoint(
            self.store, self.identity, self.run, self.job, ckpt, step, {}, parent, manifest.cid_profile
        )
        self.step = step
        body = PointerPayload(job=self.job, manifest_cid=self.manifest_cid, step=step, seq=1_000)
        self._pointer = sign_record(self.identity, body, self.run, dht_now_ms())
        return self.manifest_cid

    def serve(self, join: list[str]) -> None:
        self.dht = start_dht(self.owner_home.identity_path, initial_peers=join)
        self.exchange = ExchangeService(self.dht, self.store).start()
        self.announcer = Announcer(self.dht, self.identity, self.run, addrs=visible_maddrs(self.dht))
        self.announcer.set_status(role="expert", job=self.job, step=self.step)
        self.announcer.start()
        self.announcer.provide([self.manifest_cid, *self._files])
        # the longest life its record allows: the owner's own pointer under this subkey expires earlier, so it loses
        expiration = self._pointer.issued_ms / 1000 + POINTER_TTL_S
        key = keys.pointer_key(self.run, self.job)
        assert store(self.dht, key, self.identity.node_id, self._pointer.to_bytes(), expiration), "pointer refused"

    def close(self) -> None:
        if self.announcer is not None:
            self.announcer.stop()
        if self.exchange is not None:
            self.exchange.stop()
        if self.dht is not None:
            stop_dht(self.dht)
