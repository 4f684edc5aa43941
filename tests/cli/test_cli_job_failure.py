"""A job that fails at run time never takes the node down: one error, the lease released with the reason (in the
node's status, so `status` shows it), the node stays up and retries or stands by. One in-process DHT node."""

from __future__ import annotations

import threading

import pytest
from cli_helpers import wait_for

from paris_node.home import Home
from paris_node.swarm.membership import read_leases, read_statuses
from paris_node.swarm.report import format_report, swarm_report
from paris_node.swarm.runner import StopSignal, SwarmOptions, run_node

pytestmark = [pytest.mark.swarm, pytest.mark.timeout(120)]


def test_failing_job_releases_with_reason_and_node_stays_up(tmp_path):
    events: list[tuple[str, dict]] = []
    sessions = []
    calls = []

    def boom(job: str, stop: threading.Event, session) -> None:
        calls.append(job)
        raise RuntimeError("The size of tensor a (16) must match the size of tensor b (64)")

    opts = SwarmOptions(
        home=Home(tmp_path), run="fail-run", experts=1, router=False, claim=0, lease_ttl_s=3.0, settle_s=0.3,
        jitter_s=0.0, skew_ms=200,
    )  # fmt: skip
    stop = StopSignal()
    node = threading.Thread(
        target=run_node,
        args=(opts, boom),
        kwargs={"stop": stop, "on_event": lambda n, d: events.append((n, d)), "on_session": sessions.append},
        daemon=True,
    )
    node.start()
    try:
        failed = wait_for(lambda: [d for n, d in events if n == "failed"], 60, "the job to fail")[0]
        assert failed["job"] == "expert/0" and "size of tensor a" in failed["error"]
        session = sessions[0]
        statuses = wait_for(lambda: [r for r in read_statuses(session.dht, "fail-run") if r.body.error], 15, "status")
        assert "RuntimeError" in statuses[-1].body.error and statuses[-1].body.role == "standby"
        leases = read_leases(session.dht, "fail-run", ["expert/0"])
        assert [lease.state for lease in leases] == ["released"]
        report = swarm_report("fail-run", ["expert/0"], leases, statuses, {}, statuses[-1].issued_ms)
        assert "failed on" in format_report(report) and "size of tensor a" in format_report(report)
        assert node.is_alive() and events[-1][0] == "standby"  # still up, waiting to retry
        assert calls == ["expert/0"]
    finally:
        stop.set()
        node.join(30)
    assert not node.is_alive() and events[-1][0] == "stopped"
