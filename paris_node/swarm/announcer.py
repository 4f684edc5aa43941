"""One background thread per node that keeps this node's expiring DHT records alive.

It re-publishes each record at a fraction of its TTL (the lease at TTL/3 with seq+1), wakes early when the
node changes state (`set_status`, `provide`, `set_pointer`), retries failed stores soon, and on `stop()`
withdraws: the lease is re-written as `released` and the status as `offline`. A withdrawal is an ordinary
newer record, not a delete: the DHT keeps the entry with the highest expiration per subkey, so a "short
expiry" write would be refused; correctness never depends on a delete reaching every peer (a crash is handled
by expiry alone).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

import hivemind

from paris_node import __version__
from paris_node.errors import RecordTooLarge
from paris_node.identity import Identity
from paris_node.records import LeasePayload, PointerPayload, ProviderPayload, StatusPayload, sign_record
from paris_node.swarm import keys
from paris_node.swarm.claims import RELEASED
from paris_node.swarm.dht import dht_now_ms, store

logger = logging.getLogger(__name__)

RETRY_S = 2.0
STATUS_TTL_S = 60.0
PROVIDER_TTL_S = 3600.0
POINTER_TTL_S = 6 * 3600.0
REFRESH_FRACTION = 1 / 3


@dataclass
class _Item:
    key: str
    ttl_s: float
    build: object  # () -> Payload, called at publish time so fresh fields go out
    due_ms: int = 0
    generation: int = 0  # bumped by every change, so a change during a store is not lost


class Announcer:
    """Owns every record this node publishes. Thread-safe; `start()` once, `stop()` once."""

    def __init__(
        self,
        dht: hivemind.DHT,
        identity: Identity,
        run: str,
        *,
        status_ttl_s: float = STATUS_TTL_S,
        provider_ttl_s: float = PROVIDER_TTL_S,
        pointer_ttl_s: float = POINTER_TTL_S,
        addrs: list[str] | None = None,
    ):
        self.dht, self.identity, self.run = dht, identity, keys.check_run(run)
        self.me = keys.subkey_for(identity)
        self.status_ttl_s, self.provider_ttl_s, self.pointer_ttl_s = status_ttl_s, provider_ttl_s, pointer_ttl_s
        self.addrs = list(addrs or [])[:4]
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lease: LeasePayload | None = None
        self._lease_ok_ms = 0  # issued_ms of the last lease write a replica accepted
        self._lease_due_ms = 0
        self._status = dict(role="standby", job=None, step=0)
        self._items: dict[str, _Item] = {"status": _Item(keys.status_key(run), status_ttl_s, self._status_payload)}
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ API for the node
    def set_status(self, **fields) -> None:
        """Update status fields (role, job, step, loss, samples_per_s, checkpoint) and publish soon."""
        unknown = set(fields) - {f for f in StatusPayload.__dataclass_fields__ if f not in ("peer", "version")}
        assert not unknown, f"unknown status fields {unknown}"
        with self._cond:
            self._update_status(fields)

    def _update_status(self, fields: dict) -> None:
        """With the lock held: apply `fields`, and publish soon only if something changed."""
        if all(k in self._status and self._status[k] == v for k, v in fields.items()):
            return  # unchanged: the refresh timer re-publishes it in time (a standby polls every few s)
        self._status.update(fields)
        self._items["status"].due_ms = 0
        self._items["status"].generation += 1
        self._cond.notify()

    def provide(self, cids: list[str], vouch: bool = False) -> None:
        """Announce that this node serves `cids` (one small record per CID, refreshed until stop).

        `vouch`: the CIDs are checkpoint manifests this node verified (its own, or accepted by the selection
        rules); its status lists them in `holds`, which a fresh reader may take as evidence (node/selection.py).
        """
        with self._cond:
            if vouch:
                held = [*self._status.get("holds", []), *cids]
                self._update_status({"holds": list(dict.fromkeys(held))[-StatusPayload.MAX_HOLDS :]})
            for cid in cids:
                payload = ProviderPayload(peer=self.identity.peer_id, cids=[cid], addrs=self.addrs)
                self._items[f"provider:{cid}"] = _Item(
                    keys.provider_key(self.run, cid), self.provider_ttl_s, lambda p=payload: p
                )
            self._cond.notify()

    def unprovide(self, cids: list[str]) -> None:
        """Stop re-announcing `cids`; their provider records lapse at expiry (fetchers fall back to others)."""
        with self._cond:
            for cid in cids:
                self._items.pop(f"provider:{cid}", None)
            held = self._status.get("holds", [])
            if any(c in held for c in cids):
                self._update_status({"holds": [c for c in held if c not in cids]})

    def set_pointer(self, job: str, manifest_cid: str, step: int) -> None:
        """Point `job`'s checkpoint pointer (under our subkey) at `manifest_cid`; seq grows with every call."""
        with self._cond:
            old = self._items.get(f"pointer:{job}")
            seq = 0 if old is None else old.build().seq + 1
            payload = PointerPayload(job=job, manifest_cid=manifest_cid, step=step, seq=seq)
            self._items[f"pointer:{job}"] = _Item(keys.pointer_key(self.run, job), self.pointer_ttl_s, lambda: payload)
            self._cond.notify()

    # ------------------------------------------------------------------ lease (called by Membership)
    def write_lease(self, job: str, state: str, lease_start_ms: int, ttl_ms: int) -> bool:
        """Write our lease for `job` now (seq 0 for a new lease) and keep heartbeating it until changed."""
        with self._cond:
            old = self._lease
            same = old is not None and old.job == job and old.lease_start_ms == lease_start_ms
            seq = old.seq + 1 if same else 0
            if not same:
                self._lease_ok_ms = 0  # "accepted" refers to the current lease only
            self._lease = LeasePayload(
                job=job,
                peer=self.identity.peer_id,
                lease_start_ms=lease_start_ms,
                seq=seq,
                ttl_ms=ttl_ms,
                state=state,
            )
        ok = self._publish_lease()
        with self._cond:
            self._cond.notify()
        return ok

    def release_lease(self) -> bool:
        """Withdraw our lease (state released); returns whether a replica accepted it."""
        with self._cond:
            if self._lease is None or self._lease.state == RELEASED:
                return True
            self._lease = replace(self._lease, seq=self._lease.seq + 1, state=RELEASED)
        return self._publish_lease()

    @property
    def lease(self) -> LeasePayload | None:
        return self._lease

    @property
    def lease_ok_ms(self) -> int:
        return self._lease_ok_ms

    def _publish_lease(self) -> bool:
        with self._write_lock:
            lease = self._lease
            if lease is None:
                return True
            now = dht_now_ms()
            rec = sign_record(self.identity, lease, run=self.run, issued_ms=now)
            ok = store(
                self.dht, keys.lease_key(self.run, lease.job), self.me, rec.to_bytes(), (now + lease.ttl_ms) / 1000
            )
            if ok and lease.state != RELEASED:
                self._lease_ok_ms = now
            retry_ms = min(RETRY_S * 1000, lease.ttl_ms / 6)
            self._lease_due_ms = now + int(lease.ttl_ms * REFRESH_FRACTION if ok else retry_ms)
            logger.debug("lease %s %s seq=%d stored=%s", lease.job, lease.state, lease.seq, ok)
            return ok

    # ------------------------------------------------------------------ thread
    def start(self) -> Announcer:
        assert self._thread is None
        self._thread = threading.Thread(target=self._loop, name="paris-announcer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread (bounded by `timeout`), store the pointers once more, then withdraw the lease and status."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("announcer did not stop within %.1f s", timeout)
        try:
            with self._cond:
                pointers = [item for name, item in self._items.items() if name.startswith("pointer:")]
            for item in pointers:  # the last checkpoint's pointer (often set just before stopping) is stored now
                self._publish_item(item)
            self.release_lease()
            with self._cond:
                self._status.update(role="offline")
            self._publish_item(self._items["status"])
        except Exception as e:  # the DHT may already be gone; expiry covers us
            logger.debug("withdrawal failed: %s", e)

    def _status_payload(self) -> StatusPayload:
        with self._cond:
            fields = dict(self._status)
        body = StatusPayload(peer=self.identity.peer_id, version=__version__, addrs=self.addrs, **fields)
        return fit_status(self.identity, self.run, body)

    def _publish_item(self, item: _Item) -> bool:
        with self._cond:
            generation = item.generation
        now = dht_now_ms()
        rec = sign_record(self.identity, item.build(), run=self.run, issued_ms=now)
        with self._write_lock:
            ok = store(self.dht, item.key, self.me, rec.to_bytes(), now / 1000 + item.ttl_s)
        with self._cond:
            if item.generation == generation:  # else: changed while we stored; publish again at once
                item.due_ms = now + int(item.ttl_s * 1000 * REFRESH_FRACTION if ok else RETRY_S * 1000)
        return ok

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                now = dht_now_ms()
                lease = self._lease
                heartbeat = lease is not None and lease.state != RELEASED and self._lease_due_ms <= now
                due = [item for item in self._items.values() if item.due_ms <= now]
                if not heartbeat and not due:
                    waits = [i.due_ms for i in self._items.values()]
                    if lease is not None and lease.state != RELEASED:
                        waits.append(self._lease_due_ms)
                    self._cond.wait(timeout=max(0.05, min(RETRY_S, (min(waits) - now) / 1000)))
                    continue
                if heartbeat:
                    self._lease = replace(lease, seq=lease.seq + 1)
            try:
                if heartbeat:
                    self._publish_lease()
                for item in due:
                    self._publish_item(item)
            except Exception as e:  # never let a record problem kill the node's heartbeat
                logger.warning("announcer: %s: %s", type(e).__name__, e)
                with self._cond:
                    self._cond.wait(timeout=RETRY_S)


def fit_status(identity: Identity, run: str, body: StatusPayload) -> StatusPayload:
    """`body`, trimmed until its signed record fits the DHT's record cap: a status that does not fit is never
    stored, and a node without a status looks absent (its lease stops counting). The optional parts go first:
    the owners it attests (readers then decide by the claim rules alone), then the oldest CIDs it vouches for."""
    while True:
        try:
            sign_record(identity, body, run=run, issued_ms=0)
            return body
        except RecordTooLarge:
            if body.owners:
                logger.debug("status over the record cap: attesting no owners")
                body = replace(body, owners={})
            elif body.holds:
                body = replace(body, holds=body.holds[1:])
            else:
                raise
