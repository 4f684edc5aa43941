"""`run_node`: start or join the DHT, claim a job, run it, hold or re-claim it, and leave cleanly.

The node integration plugs training in as `job_runner(job, stop, session)`: it must return soon after `stop`
is set (SIGINT/SIGTERM, or this node lost the lease). Training reports through `session.announcer`
(`set_status`, `provide`, `set_pointer`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import hivemind

from paris_node.errors import UsageError
from paris_node.home import Home
from paris_node.identity import Identity, load_or_create
from paris_node.swarm import keys
from paris_node.swarm.announcer import Announcer
from paris_node.swarm.claims import ClaimRules
from paris_node.swarm.dht import join_command, start_dht, stop_dht, visible_maddrs
from paris_node.swarm.lifeline import Lifeline
from paris_node.swarm.membership import Membership, claim_target
from paris_node.swarm.validator import MAX_LEASE_TTL_MS, MIN_LEASE_TTL_MS

logger = logging.getLogger(__name__)

DEFAULT_LEASE_TTL_S = 60.0  # a crashed owner's job is taken over within about a minute plus settle
DEFAULT_SETTLE_S = 8.0  # covers DHT propagation on a slow link plus the claim jitter
RETRY_FAILED_S = (30.0, 600.0)  # a job that failed is retried after 30 s, doubling up to 10 min


@dataclass(frozen=True)
class SwarmOptions:
    """One field per `paris-node start` flag (swarm part)."""

    home: Home
    run: str = "demo"
    experts: int = 4
    router: bool = True
    claim: str | int = "auto"
    join: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 0
    announce: tuple[str, ...] = ()
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    settle_s: float = DEFAULT_SETTLE_S
    jitter_s: float = 2.0
    startup_timeout_s: float = 30.0
    skew_ms: int = 3_000
    jobs: tuple[str, ...] = field(default=())  # overrides experts/router when given (run manifests)

    def job_list(self) -> list[str]:
        return list(self.jobs) if self.jobs else keys.jobs_for(self.experts, router=self.router)


@dataclass
class Session:
    """What a job runner may use: the DHT handle, identity, run, announcer and membership."""

    dht: hivemind.DHT
    identity: Identity
    run: str
    announcer: Announcer
    membership: Membership
    maddrs: list[str]


class StopSignal(threading.Event):
    """An event that also sets every event derived from it with `child()` (per-job stop events)."""

    def __init__(self):
        super().__init__()
        self._children: list[threading.Event] = []
        self._guard = threading.Lock()

    def child(self) -> threading.Event:
        ev = threading.Event()
        with self._guard:
            self._children.append(ev)
            if self.is_set():
                ev.set()
        return ev

    def set(self) -> None:
        super().set()
        with self._guard:
            for ev in self._children:
                ev.set()


def idle_job(job: str, stop: threading.Event, session: Session) -> None:
    """The job runner until training is plugged in: hold the job until told to stop."""
    stop.wait()


Event = Callable[[str, dict], None]


@dataclass
class Prepared:
    """What a `prepare` hook decides once the DHT is up: the run's id and jobs, and what to close on exit."""

    run: str
    jobs: list[str]
    close: Callable[[], None] = lambda: None


# prepare(dht, identity) -> Prepared: runs after the DHT starts (so it may fetch the run manifest from peers)
Prepare = Callable[[hivemind.DHT, Identity], Prepared]


def run_node(
    options: SwarmOptions,
    job_runner: Callable[[str, threading.Event, Session], None] = idle_job,
    *,
    stop: StopSignal | None = None,
    on_event: Event | None = None,
    on_session: Callable[[Session], None] | None = None,
    prepare: Prepare | None = None,
) -> None:
    """Run this node in the swarm until `stop` is set; withdraws its records on the way out.

    Without `prepare`, the run and jobs come from `options`; with it, from `prepare(dht, identity)`, called once
    the DHT is up (the node uses it to obtain the run manifest, possibly from peers, and start its block exchange).
    """
    stop = stop or StopSignal()
    emit = on_event or (lambda name, data: None)
    run, jobs = options.run, options.job_list()
    if prepare is None:
        keys.check_run(run)
        claim_target(options.claim, jobs)  # a bad --claim fails before any network setup
    if not MIN_LEASE_TTL_MS <= options.lease_ttl_s * 1000 <= MAX_LEASE_TTL_MS:
        raise UsageError(f"--lease-ttl {options.lease_ttl_s} is outside 1..600 seconds")
    if options.lease_ttl_s * 1000 < 4 * options.skew_ms:
        raise UsageError(f"--lease-ttl {options.lease_ttl_s} s must be at least 4x the clock skew allowance")
    identity = load_or_create(options.home.ensure().identity_path)
    dht = start_dht(
        options.home.identity_path,
        initial_peers=list(options.join),
        host=options.host,
        port=options.port,
        announce=list(options.announce) or None,
        startup_timeout=options.startup_timeout_s,
        skew_ms=options.skew_ms,
    )
    lifeline = Lifeline().install(dht)  # the DHT process and its p2pd die with this process
    announcer = membership = prepared = None
    try:
        if prepare is not None:
            prepared = prepare(dht, identity)
            run, jobs = keys.check_run(prepared.run), prepared.jobs
            claim_target(options.claim, jobs)
        maddrs = visible_maddrs(dht)
        emit(
            "ready",
            {
                "node_id": identity.node_id,
                "peer_id": identity.peer_id,
                "maddrs": maddrs,
                "join": join_command(maddrs, f"--run {run}"),
                "run": run,
                "jobs": jobs,
            },
        )
        announcer = Announcer(dht, identity, run, addrs=maddrs).start()
        rules = ClaimRules(skew_ms=options.skew_ms)
        membership = Membership(
            dht,
            identity,
            run,
            jobs,
            claim=options.claim,
            ttl=options.lease_ttl_s,
            settle=options.settle_s,
            jitter=options.jitter_s,
            rules=rules,
            announcer=announcer,
        )
        session = Session(dht, identity, run, announcer, membership, maddrs)
        if on_session is not None:
            on_session(session)
        emit("standby", {})
        retry_s = RETRY_FAILED_S[0]
        while not stop.is_set():
            job = membership.acquire(stop)
            if job is None:
                break
            emit("owner", {"job": job})
            job_stop = stop.child()
            membership.also_set_on_loss(job_stop)
            try:
                job_runner(job, job_stop, session)
            except Exception as e:  # a job that cannot run never takes the node down
                reason = f"{type(e).__name__}: {e}"[:300]
                logger.error("%s failed: %s (the lease is released; retrying in %.0f s)", job, reason, retry_s)
                logger.debug("%s failed", job, exc_info=True)
                membership.stop_watch()
                membership.release_with_reason(reason)
                emit("failed", {"job": job, "error": reason, "retry_s": retry_s})
                emit("standby", {})
                stop.wait(retry_s)
                retry_s = min(retry_s * 2, RETRY_FAILED_S[1])
                continue
            membership.stop_watch()
            if membership.lost_event.is_set():
                emit("lost", {"job": job})
    finally:
        if membership is not None:
            membership.release()
        if announcer is not None:
            announcer.stop()
        if prepared is not None:
            prepared.close()
        emit("stopped", {})
        stop_dht(dht)
        lifeline.reap()
