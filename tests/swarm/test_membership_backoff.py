"""A standby whose swarm reads fail backs off (capped), instead of spinning (issue 16: 4,900 retries in 3.5 min)."""

from __future__ import annotations

import threading
import time

from paris_node.identity import Identity
from paris_node.swarm import membership
from paris_node.swarm.membership import Membership


class _DeadDHT:
    """Every call fails, as a DHT blinded by a malformed reply did before the hivemind patch."""

    def __init__(self):
        self.calls = 0

    def run_coroutine(self, *_a, **_k):
        self.calls += 1
        raise RuntimeError("the DHT did not answer")


class _Announcer:
    lease = None
    lease_ok_ms = 0

    def set_status(self, **_):
        pass


def test_failed_reads_back_off_up_to_the_cap():
    dht = _DeadDHT()
    m = Membership(dht, Identity.from_seed(b"s" * 32), "r", ["expert/0"], ttl=12.0, announcer=_Announcer())
    stop = threading.Event()
    t = threading.Thread(target=m.acquire, args=(stop,), daemon=True)
    t0 = time.monotonic()
    t.start()
    time.sleep(8.0)  # the quantity under test is a rate over time: waiting is the measurement, not a sync
    stop.set()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 8.0 + membership.READ_RETRY_S[1] + 1
    # 0.5 + 1 + 2 + 4 (cap: min(5 s, poll = 4 s)) -> about 5 reads in 8 s, not thousands
    assert 3 <= dht.calls <= 7, dht.calls
