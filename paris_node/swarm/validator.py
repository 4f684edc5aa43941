"""Ed25519 record validator: only a record's signer may write under its subkey, only under the key it names.

Why not hivemind's `RSASignatureValidator`: it is RSA-only (our identity is the node's Ed25519 libp2p key),
puts a ~400-byte `[owner:...]` marker in the subkey and appends a signature to the value, and its signature
does not bind the record to a run. Our records are already signed envelopes (paris_node.records), so this
validator adds no bytes: `sign_value` / `strip_value` are the identity and `validate` re-verifies the envelope
and ties it to where it is stored:

- the value is one signed record of a DHT kind (lease, status, pointer, provider), at most 2 KB;
- subkey == record signer (a node id), so nobody can overwrite or forge another node's entry;
- the DHT key hash equals the hash of the key computed from the record's own run + job / cid (keys.py), so a
  record cannot be replayed into another run, another job or an expert id outside the key space;
- `lease.peer` / `status.peer` / `provider.peer` name the signer's own key;
- lease TTL within [MIN_LEASE_TTL_MS, MAX_LEASE_TTL_MS]; the DHT expiration may not exceed the record's
  issue time plus its kind's maximum TTL plus the allowed clock skew (a replayed record cannot outlive it).

Every node must run the same validator: records rejected here are neither stored nor returned by this node.

Verdicts are remembered in a bounded cache keyed by the exact (key, subkey, value bytes, expiration): the same
record returned by many peers is checked once, and a changed value (other bytes) is checked again. A verdict
that depends on the clock (a record "from the future") is never cached.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from hivemind.dht.validation import DHTRecord, RecordValidatorBase
from hivemind.utils import MSGPackSerializer

from paris_node.errors import FutureRecord, RecordError
from paris_node.identity import peer_id_from_public, public_from_node_id
from paris_node.records import (
    DHT_RECORD_CAP,
    LeasePayload,
    PointerPayload,
    ProviderPayload,
    SignedRecord,
    StatusPayload,
    decode_record,
)
from paris_node.swarm import keys

logger = logging.getLogger(__name__)

MIN_LEASE_TTL_MS = 1_000
MAX_LEASE_TTL_MS = 600_000
STATUS_MAX_TTL_MS = 600_000
PROVIDER_MAX_TTL_MS = 6 * 3600_000
POINTER_MAX_TTL_MS = 24 * 3600_000
DEFAULT_SKEW_MS = 3_000  # hivemind bootstrap itself refuses peers with more skew than about this


VERDICT_CACHE_SIZE = 8192  # entries; a verdict is ~100 bytes plus the value it is keyed by (<= 2 KB)


class VerdictCache:
    """A bounded, thread-safe LRU of verdicts (any value) keyed by exact bytes."""

    def __init__(self, size: int = VERDICT_CACHE_SIZE):
        self.size = size
        self._data: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> object | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


_entries = VerdictCache()  # decode_entry's verdicts in this process (readers decode what the DHT returned)


class InvalidEntry(RecordError):
    """A DHT entry that is a well-signed record but does not belong where it is stored."""


@dataclass(frozen=True)
class Entry:
    """A verified DHT entry: the record, its subkey and its DHT expiration (seconds, DHT time)."""

    record: SignedRecord
    subkey: str
    expiration_s: float


def expected_keys(record: SignedRecord) -> list[str]:
    """The DHT key(s) a record may be stored under, computed from its signed content only."""
    body = record.body
    if isinstance(body, LeasePayload):
        return [keys.lease_key(record.run, body.job)]
    if isinstance(body, StatusPayload):
        return [keys.status_key(record.run)]
    if isinstance(body, PointerPayload):
        return [keys.pointer_key(record.run, body.job)]
    if isinstance(body, ProviderPayload):
        return [keys.provider_key(record.run, cid) for cid in body.cids]
    raise InvalidEntry(f"{record.kind} records do not travel in the DHT")


def max_ttl_ms(record: SignedRecord) -> int:
    body = record.body
    if isinstance(body, LeasePayload):
        return body.ttl_ms
    return {"status": STATUS_MAX_TTL_MS, "provider": PROVIDER_MAX_TTL_MS, "pointer": POINTER_MAX_TTL_MS}[record.kind]


def check_entry(
    record: SignedRecord, subkey: object, expiration_s: float, *, key_ok, skew_ms: int = DEFAULT_SKEW_MS
) -> None:
    """Raise InvalidEntry unless `record` (already signature-checked) may live at (key, subkey, expiration).

    `key_ok(candidate_key_str) -> bool` says whether the entry's key is that candidate key.
    """
    if subkey != record.signer:
        raise InvalidEntry(f"subkey {subkey!r} is not the signer {record.signer}")
    try:
        keys.check_run(record.run)
        candidates = expected_keys(record)
    except ValueError as e:  # bad run id, job or cid inside a validly signed record
        raise InvalidEntry(str(e)) from None
    if not any(key_ok(k) for k in candidates):
        raise InvalidEntry(f"{record.kind} record for run {record.run!r} is stored under a key it does not name")
    body = record.body
    peer = getattr(body, "peer", None)
    if peer is not None:
        public = public_from_node_id(record.signer)
        if peer not in (record.signer, peer_id_from_public(public)):
            raise InvalidEntry(f"{record.kind}.peer {peer!r} is not the signer's own id")
    if isinstance(body, LeasePayload) and not MIN_LEASE_TTL_MS <= body.ttl_ms <= MAX_LEASE_TTL_MS:
        raise InvalidEntry(f"lease TTL {body.ttl_ms} ms outside [{MIN_LEASE_TTL_MS}, {MAX_LEASE_TTL_MS}]")
    limit_s = (record.issued_ms + max_ttl_ms(record) + skew_ms) / 1000
    if expiration_s > limit_s:
        raise InvalidEntry(f"{record.kind} DHT expiration {expiration_s:.3f} is past its record's limit {limit_s:.3f}")


def decode_entry(
    key: str,
    subkey: object,
    value: object,
    expiration_s: float,
    *,
    kind: str,
    run: str,
    skew_ms: int = DEFAULT_SKEW_MS,
) -> Entry:
    """Decode and verify one entry read back from `key`; raise RecordError (logged by callers) if it is bad."""
    if not isinstance(value, (bytes, bytearray)):
        raise InvalidEntry(f"DHT value under {key} is {type(value).__name__}, not a record")
    if not isinstance(subkey, str) or not isinstance(expiration_s, (int, float)):
        raise InvalidEntry(f"DHT entry under {key} has a {type(subkey).__name__} subkey, not a node id")
    cache_key = (key, subkey, bytes(value), float(expiration_s), kind, run, skew_ms)
    verdict = _entries.get(cache_key)
    if verdict is None:
        try:
            record = decode_record(bytes(value), kind=kind, run=run, max_skew_ms=skew_ms)
            check_entry(record, subkey, expiration_s, key_ok=lambda k: k == key, skew_ms=skew_ms)
            verdict = Entry(record=record, subkey=subkey, expiration_s=expiration_s)
        except FutureRecord:
            raise  # may be valid later: not cached
        except RecordError as e:
            verdict = e
        _entries.put(cache_key, verdict)
    if isinstance(verdict, RecordError):
        raise verdict
    return verdict


class ParisValidator(RecordValidatorBase):
    """hivemind validator enforcing `check_entry` on every store and every value returned by a peer."""

    def __init__(self, skew_ms: int = DEFAULT_SKEW_MS, cache_size: int = VERDICT_CACHE_SIZE):
        self.skew_ms = skew_ms
        self.cache = VerdictCache(cache_size)

    def validate(self, record: DHTRecord) -> bool:
        if not isinstance(record.value, bytes) or len(record.value) > DHT_RECORD_CAP + 8:
            return False  # over any paris record's size (msgpack adds 3 bytes): not worth parsing or caching
        cache_key = (record.key, record.subkey, record.value, record.expiration_time)
        verdict = self.cache.get(cache_key)
        if verdict is None:
            verdict = self._validate(record)
            if verdict is not None:
                self.cache.put(cache_key, verdict)
        return verdict is True

    def _validate(self, record: DHTRecord) -> bool | None:
        """True / False, or None for a verdict that may change with the clock (not to be cached)."""
        try:
            subkey = MSGPackSerializer.loads(record.subkey)
            value = MSGPackSerializer.loads(record.value)
            if not isinstance(subkey, str) or not isinstance(value, bytes):
                raise InvalidEntry("paris records are bytes stored under a string subkey")
            rec = decode_record(value, max_skew_ms=self.skew_ms)
            check_entry(
                rec,
                subkey,
                record.expiration_time,
                key_ok=lambda k: keys.dht_key_id(k) == record.key,
                skew_ms=self.skew_ms,
            )
        except FutureRecord as e:
            logger.debug("rejected DHT record for now: %s", e)
            return None
        except Exception as e:  # any failure means reject; a peer's garbage must never raise into hivemind
            logger.debug("rejected DHT record: %s: %s", type(e).__name__, e)
            return False
        return True

    @property
    def priority(self) -> int:
        return 5

    def merge_with(self, other: RecordValidatorBase) -> bool:
        return isinstance(other, ParisValidator)  # one instance is enough
