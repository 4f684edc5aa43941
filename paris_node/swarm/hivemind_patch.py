"""Start-up patches for hivemind 1.1.12's DHT: it trusts the shape of a peer's reply (docs/hivemind-patches.md).

What hivemind does not check, and a single malicious replica exploits:
- `DictionaryDHTValue.unpackb` takes `maxsize`, `latest_expiration_time` and the items of a peer's dictionary
  as they come. An empty dictionary with `maxsize="x"` passes the record validator (no item to check); the
  traversal's `_SearchState.add_candidate` then runs `max(float, "x")` and raises TypeError inside the DHT
  process, failing the whole get; and if it arrives first it is cached and served onward to other peers.
- `DHTProtocol.call_find` accepts any expiration for a found value: an empty dictionary "expiring" in the year
  10^300 ends every later search at once (it is in the cache) with nothing.

The patches (pure checks, each a few lines; hivemind's behaviour for well-formed replies is unchanged):
1. `DictionaryDHTValue.unpackb` refuses a dictionary whose maxsize is not a positive number, whose expiration
   is not a number, that has more than MAX_ENTRIES items, or whose items are not (subkey, bytes <= 16 KiB,
   finite expiration). The error is raised inside `call_find`'s own `try`, so the reply is dropped and the
   sender is reported unresponsive: hivemind's blacklist suspends it with exponential back-off (the penalty).
2. `DHTProtocol.call_find` drops a whole reply that carries a value of the wrong type, an expiration that is not
   finite or more than MAX_FUTURE_S ahead, or a dictionary that is empty or claims a later expiration than its
   newest item; that sender is blacklisted too. Nothing of such a reply reaches the traversal or the cache.
3. `_SearchState.add_candidate` never raises: a candidate it cannot merge is dropped (defence in depth).
4. `DHTLocalStorage.store_subkey` keeps at most MAX_ENTRIES subkeys per key (existing ones still update).

Applied in this process before the DHT child is forked (it inherits them). `apply()` refuses other versions.
"""

from __future__ import annotations

import logging
import math
import threading

import hivemind
from hivemind.dht import node as dht_node
from hivemind.dht import protocol as dht_protocol
from hivemind.dht.storage import DHTLocalStorage, DictionaryDHTValue
from hivemind.utils import MSGPackSerializer, get_dht_time

logger = logging.getLogger(__name__)

HIVEMIND_VERSION = "1.1.12"
MAX_VALUE_BYTES = 16 * 1024  # hivemind itself can crash its DHT process on messages around this size
MAX_ENTRIES = 4096  # subkeys per key: far above any honest key (one per node), and what one reply may carry
MAX_FUTURE_S = 25 * 3600  # the longest record TTL (pointer, 24 h) plus slack

_applied = False
_guard = threading.Lock()


class MalformedReply(ValueError):
    """A peer's DHT value or reply does not have the shape hivemind assumes."""


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and not math.isnan(x)


def _finite(x: object) -> bool:
    return _number(x) and math.isfinite(x)


def check_dictionary_fields(maxsize: object, latest: object, items: object) -> None:
    """Raise MalformedReply unless the three packed fields of a DictionaryDHTValue are well-formed."""
    if not _number(maxsize) or maxsize <= 0:
        raise MalformedReply(f"dictionary maxsize {maxsize!r} is not a positive number")
    if not _number(latest) or latest == math.inf:
        raise MalformedReply(f"dictionary expiration {latest!r} is not a number")
    if not isinstance(items, (list, tuple)) or len(items) > MAX_ENTRIES:
        raise MalformedReply(f"dictionary items are not a list of at most {MAX_ENTRIES} entries")
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise MalformedReply("dictionary item is not [subkey, value, expiration]")
        subkey, value, expiration = item
        if not isinstance(subkey, (bytes, str, int)) or isinstance(subkey, bool):
            raise MalformedReply(f"dictionary subkey of type {type(subkey).__name__}")
        if not isinstance(value, bytes) or len(value) > MAX_VALUE_BYTES:
            raise MalformedReply("dictionary value is not bytes of at most 16 KiB")
        if not _finite(expiration):
            raise MalformedReply(f"dictionary item expiration {expiration!r} is not finite")


def checked_unpackb(raw: bytes) -> DictionaryDHTValue:
    """`DictionaryDHTValue.unpackb` with its fields checked first (patch 1)."""
    if not isinstance(raw, bytes) or len(raw) > MAX_ENTRIES * (MAX_VALUE_BYTES + 256):
        raise MalformedReply("dictionary is too large")
    fields = MSGPackSerializer.loads(raw)
    if not isinstance(fields, (list, tuple)) or len(fields) != 3:
        raise MalformedReply("dictionary is not [maxsize, expiration, items]")
    maxsize, latest, items = fields
    check_dictionary_fields(maxsize, latest, items)
    with DictionaryDHTValue(maxsize).freeze() as new_dict:
        for key, value, expiration_time in items:
            new_dict.store(key, value, expiration_time)
        new_dict.latest_expiration_time = latest
        return new_dict


def check_found(value: object, expiration: object, now: float) -> None:
    """Raise MalformedReply unless (value, expiration) is a well-formed found value (patch 2)."""
    if not _finite(expiration) or expiration > now + MAX_FUTURE_S:
        raise MalformedReply(f"found value expiration {expiration!r} is not finite or too far ahead")
    if isinstance(value, DictionaryDHTValue):
        entries = list(value.data.values())
        if not entries:
            raise MalformedReply("found an empty dictionary")
        if expiration > max(e.expiration_time for e in entries) + 1.0:
            raise MalformedReply("dictionary claims a later expiration than its newest entry")
    elif not isinstance(value, bytes):
        raise MalformedReply(f"found value of type {type(value).__name__}")


def _patched_call_find(original):
    async def call_find(self, peer, keys):
        output = await original(self, peer, keys)
        if not output:
            return output
        now = get_dht_time()
        try:
            for found, _nearest in output.values():
                if found is not None:
                    check_found(found.value, found.expiration_time, now)
        except MalformedReply as e:
            logger.debug("dropped a malformed find reply from %s: %s", peer, e)
            return None  # the caller registers a failure: hivemind's blacklist suspends the peer with back-off
        return output

    call_find.__wrapped__ = original
    return call_find


def _patched_add_candidate(original):
    def add_candidate(self, candidate, source_node_id):
        try:
            return original(self, candidate, source_node_id)
        except (TypeError, ValueError, AttributeError) as e:
            logger.debug("dropped a DHT candidate that could not be merged: %s", e)

    add_candidate.__wrapped__ = original
    return add_candidate


def _patched_store_subkey(original):
    def store_subkey(self, key, subkey, value, expiration_time):
        current = self.get(key)
        if current is not None and isinstance(current.value, DictionaryDHTValue):
            d = current.value
            if subkey not in d.data and len(d.data) >= MAX_ENTRIES:
                return False
        return original(self, key, subkey, value, expiration_time)

    store_subkey.__wrapped__ = original
    return store_subkey


def apply() -> None:
    """Apply the patches once; RuntimeError on any other hivemind version (they target 1.1.12's code)."""
    global _applied
    with _guard:
        if _applied:
            return
        if hivemind.__version__ != HIVEMIND_VERSION:
            raise RuntimeError(
                f"paris-node patches hivemind {HIVEMIND_VERSION}'s DHT, found hivemind {hivemind.__version__}; "
                f"install hivemind=={HIVEMIND_VERSION} (pip install 'hivemind=={HIVEMIND_VERSION}')"
            )
        DictionaryDHTValue.unpackb = staticmethod(checked_unpackb)
        proto = dht_protocol.DHTProtocol
        proto.call_find = _patched_call_find(proto.call_find)
        state = dht_node._SearchState
        state.add_candidate = _patched_add_candidate(state.add_candidate)
        DHTLocalStorage.store_subkey = _patched_store_subkey(DHTLocalStorage.store_subkey)
        _applied = True
        logger.debug("hivemind %s DHT patches applied", HIVEMIND_VERSION)


def applied() -> bool:
    return _applied
