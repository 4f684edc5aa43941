"""A misbehaving peer for tests: joins with NO validator and asks every peer to store forged leases.

Prints one JSON line: for each attempt, the list of store_ok answers from the peers it reached.
Usage: python tests/swarm/forger.py RUN VICTIM_NODE_ID N_PEERS MADDR [MADDR...]
"""

import asyncio
import json
import sys

import hivemind
from hivemind.dht.routing import DHTID
from hivemind.utils import MSGPackSerializer, get_dht_time

from paris_node.identity import Identity
from paris_node.records import LeasePayload, sign_record
from paris_node.swarm import keys


class _StoreAll:
    def __init__(self, attempts, want: int):
        self.attempts, self.want = attempts, want

    async def __call__(self, _dht, node):
        peers = []
        for _ in range(100):  # the routing table fills as peers answer
            peers = list(node.protocol.routing_table.peer_id_to_uid.keys())
            if len(peers) >= self.want:
                break
            await asyncio.sleep(0.1)
        out = {}
        for name, (key, subkey, value, exp) in self.attempts.items():
            calls = [
                node.protocol.call_store(
                    peer, [DHTID.generate(source=key)], [MSGPackSerializer.dumps(value)], [exp], subkeys=[subkey]
                )
                for peer in peers
            ]
            answers = await asyncio.gather(*calls)
            out[name] = [bool(ok[0]) for ok in answers if ok is not None]  # None: a peer that did not answer
        return out


def main() -> None:
    run, victim, expected_peers, *maddrs = sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:]
    me = Identity.generate()
    now_ms = int(get_dht_time() * 1000)
    exp = now_ms / 1000 + 10
    lease = LeasePayload(
        job="expert/0", peer=me.peer_id, lease_start_ms=now_ms - 10**7, seq=0, ttl_ms=10_000, state="active"
    )
    mine = sign_record(me, lease, run=run, issued_ms=now_ms).to_bytes()
    key = keys.lease_key(run, "expert/0")
    attempts = {
        # a lease signed by the forger, stored under the victim's subkey
        "under_victim_subkey": (key, victim, mine, exp),
        # a lease that names the victim as signer but carries the forger's signature
        "victim_as_signer": (key, victim, mine.replace(me.node_id.encode(), victim.encode()), exp),
        # control: the forger's own, honestly signed lease (for a job outside the honest run's K)
        "own_valid_outside_run": (
            keys.lease_key(run, "expert/7"),
            me.node_id,
            sign_record(
                me,
                LeasePayload(
                    job="expert/7", peer=me.peer_id, lease_start_ms=now_ms, seq=0, ttl_ms=10_000, state="active"
                ),
                run=run,
                issued_ms=now_ms,
            ).to_bytes(),
            exp,
        ),
    }
    dht = hivemind.DHT(initial_peers=maddrs, start=True)  # no ParisValidator: it stores anything locally
    try:
        answers = dht.run_coroutine(_StoreAll(attempts, expected_peers))
        print(json.dumps({"peers": expected_peers, "answers": answers}), flush=True)
    finally:
        dht.shutdown()


if __name__ == "__main__":
    main()
