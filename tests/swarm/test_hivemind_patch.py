"""The hivemind start-up patches as pure checks (the real-process attack is test_dht_attack.py)."""

from __future__ import annotations

import asyncio
import math

import msgpack
import pytest
from hivemind.dht.node import _SearchState
from hivemind.dht.routing import DHTID
from hivemind.dht.storage import DHTLocalStorage, DictionaryDHTValue
from hivemind.utils import MSGPackSerializer, ValueWithExpiration, get_dht_time

from paris_node.swarm import hivemind_patch as hp

hp.apply()


def packed(maxsize, latest, items) -> bytes:
    return msgpack.packb([maxsize, latest, items], use_bin_type=True)


def test_well_formed_dictionaries_round_trip_unchanged():
    d = DictionaryDHTValue()
    d.store("z6Mkabc", b"record", get_dht_time() + 60)
    back = MSGPackSerializer.loads(MSGPackSerializer.dumps(d))  # through the ext hook, i.e. the patched unpackb
    assert isinstance(back, DictionaryDHTValue) and back.maxsize == math.inf
    assert back.get("z6Mkabc").value == b"record"
    empty = MSGPackSerializer.loads(MSGPackSerializer.dumps(DictionaryDHTValue()))
    assert len(empty.data) == 0 and empty.latest_expiration_time == -math.inf


@pytest.mark.parametrize(
    "fields, why",
    [
        (("x", -math.inf, []), "maxsize"),  # the attack: a string maxsize
        ((0, -math.inf, []), "maxsize"),
        ((True, -math.inf, []), "maxsize"),
        ((math.inf, "soon", []), "expiration"),
        ((math.inf, math.nan, []), "expiration"),
        ((math.inf, 1.0, "items"), "items"),
        ((math.inf, 1.0, [[b"k", b"v"]]), "item"),
        ((math.inf, 1.0, [[b"k", "not bytes", 1.0]]), "value"),
        ((math.inf, 1.0, [[b"k", b"v" * 17_000, 1.0]]), "value"),
        ((math.inf, 1.0, [[b"k", b"v", math.inf]]), "expiration"),
        ((math.inf, 1.0, [[[1, 2], b"v", 1.0]]), "subkey"),
        ((math.inf, 1.0, [[b"k%d" % i, b"v", 1.0] for i in range(hp.MAX_ENTRIES + 1)]), "items"),
    ],
)
def test_malformed_dictionaries_are_refused(fields, why):
    with pytest.raises(hp.MalformedReply, match=why):
        hp.checked_unpackb(packed(*fields))


def test_found_values_are_checked_for_type_and_expiration():
    now = get_dht_time()
    d = DictionaryDHTValue()
    d.store("a", b"x", now + 60)
    hp.check_found(d, now + 60, now)
    hp.check_found(b"raw", now + 60, now)
    for value, expiration, why in [
        (DictionaryDHTValue(), now + 60, "empty"),
        (d, now + 3600, "later expiration"),
        (d, 1e300, "too far"),
        (d, math.nan, "not finite"),
        ({"a": b"x"}, now + 60, "type dict"),
    ]:
        with pytest.raises(hp.MalformedReply, match=why):
            hp.check_found(value, expiration, now)


def test_a_search_never_raises_on_a_candidate_it_cannot_merge():
    async def run():
        state = _SearchState(DHTID.generate("k"), sufficient_expiration_time=math.inf)
        good = DictionaryDHTValue()
        good.store("a", b"x", get_dht_time() + 60)
        state.add_candidate(ValueWithExpiration(good, get_dht_time() + 60), source_node_id=None)
        bad = DictionaryDHTValue()
        bad.maxsize = "x"  # as unpatched unpackb would have built it
        state.add_candidate(ValueWithExpiration(bad, get_dht_time() + 61), source_node_id=None)  # no TypeError
        return state.binary_value

    assert asyncio.run(run()).get("a").value == b"x"


def test_storage_keeps_a_bounded_number_of_subkeys_per_key():
    storage, key, exp = DHTLocalStorage(), DHTID.generate("k"), get_dht_time() + 60
    for i in range(hp.MAX_ENTRIES):
        assert storage.store_subkey(key, f"s{i}", b"v", exp)
    assert not storage.store_subkey(key, "one-too-many", b"v", exp)
    assert storage.store_subkey(key, "s0", b"newer", exp + 1)  # an existing subkey still updates
