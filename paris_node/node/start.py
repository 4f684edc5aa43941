"""`paris-node start`: the swarm runner (claims, leases) with the node's job (data, training, publishing)."""

from __future__ import annotations

import logging
import threading

from paris_node.content.blockstore import Blockstore
from paris_node.content.dag import iter_file, missing_blocks
from paris_node.errors import ParisError
from paris_node.home import Home
from paris_node.node.job import JobRunner, TrainOptions
from paris_node.records import decode_record
from paris_node.swarm import keys
from paris_node.swarm.runner import Prepared, Session, StopSignal, SwarmOptions, run_node

log = logging.getLogger(__name__)


class Node:
    """Owns what lives beside the DHT for a node's lifetime: the block exchange and the job runner."""

    def __init__(
        self,
        home: Home,
        train: TrainOptions,
        mirror_every_s: float = 30.0,
        dashboard: tuple[str, int] | None = None,  # serve the swarm's page on (host, port)
        on_event=None,  # on_event(name, data): "published", "took_over" (the CLI's --events json)
    ):
        self.home, self.train, self.mirror_every_s = home, train, mirror_every_s
        self.on_event = on_event or (lambda name, data: None)
        self._run: str | None = None
        self._fallback_run: str | None = None
        self.dashboard = dashboard
        self.store = Blockstore(home.blocks_dir)
        self.runner: JobRunner | None = None
        self.manifest = None
        self.exchange = None
        self.session: Session | None = None
        self.handoff_wait_s = 60.0  # on a clean exit, wait this long for another holder of what only we hold

    def prepare(self, dht, identity) -> Prepared:
        """After the DHT is up: serve our blocks, obtain the run manifest (demo, local, or from peers)."""
        from paris_node.content.exchange import ExchangeService
        from paris_node.node.mirror import Mirror
        from paris_node.node.session import obtain_run
        from paris_node.swarm.runs import serve_runs

        self.exchange = exchange = ExchangeService(dht, self.store).start()
        try:
            self.manifest = obtain_run(self.home, self._learn(dht), dht, exchange)
        except BaseException:
            exchange.stop()
            raise
        serve_runs(dht, self.manifest.run_id, self.manifest.name, self.manifest.experts)
        self.runner = JobRunner(self.home, self.store, self.manifest, exchange, self.train)
        self.runner.on_event = self.on_event
        mirror = Mirror(self, self.mirror_every_s, self.handoff_wait_s).start() if self.mirror_every_s > 0 else None
        board = self._start_dashboard(dht, identity)
        log.info("run %s: %d experts + router", self.manifest.run_id, self.manifest.experts)

        def close() -> None:
            if mirror is not None:
                mirror.hand_off()  # the exchange still serves while another node fetches what only we hold
            if board is not None:
                board.stop()
            if mirror is not None:
                mirror.stop()
            exchange.stop()

        jobs = keys.jobs_for(self.manifest.experts, router=self.manifest.experts > 1)  # K=1: no router
        return Prepared(self.manifest.run_id, jobs, close=close)

    def _start_dashboard(self, dht, identity):
        """The swarm's page (dashboard/), read through this node's DHT and exchange; None when not asked for."""
        if self.dashboard is None:
            return None
        from paris_node.dashboard.service import Dashboard

        host, port = self.dashboard
        board = Dashboard(
            self.home, self.manifest, dht, self.exchange, self.store, host, port, served_by=identity.node_id
        )
        return board.start()

    def on_session(self, session: Session) -> None:
        self.session = session
        # serve the run (manifest, shards held whole) from the start, not only once a job is claimed: a node
        # joining right after this one fetches the manifest from here
        m = self.manifest
        session.announcer.provide([c for c in (m.run_id, *m.cids()) if not missing_blocks(self.store, c)])
        announce_pointer = session.announcer.set_pointer

        def set_pointer(job: str, manifest_cid: str, step: int) -> None:  # every publication ends here
            announce_pointer(job, manifest_cid, step)
            metrics = checkpoint_metrics(self.store, manifest_cid)
            self.on_event("published", {"job": job, "step": step, "cid": manifest_cid, "metrics": metrics})

        session.announcer.set_pointer = set_pointer

    def job(self, job: str, stop: threading.Event, session: Session) -> None:
        assert self.runner is not None
        self.runner(job, stop, session)

    def _learn(self, dht) -> str:
        """The run to train: the one asked for, else the one the joined swarm trains, else the demo run."""
        if self._run is not None:
            return self._run
        from paris_node.node.session import DEMO, NoRunNamed, Target, learn_run

        target = Target(join=[], run=None, fallback_run=self._fallback_run)
        try:
            run = learn_run(dht, target)
        except NoRunNamed:
            log.info("the swarm did not name its run; training the demo run (give --run to choose)")
            return DEMO
        for note in target.notes:
            log.info("%s", note)
        return run

    def run(
        self,
        options: SwarmOptions,
        stop: StopSignal,
        on_event=None,
        learn_run: bool = False,
        fallback_run: str | None = None,
    ) -> None:
        """Run until `stop`. With `learn_run`, the run is the one the joined swarm trains (options.run ignored),
        else `fallback_run` if the swarm names several including it or none, else the demo run."""
        self._run = None if learn_run else options.run
        self._fallback_run = fallback_run
        run_node(options, self.job, stop=stop, on_event=on_event, prepare=self.prepare, on_session=self.on_session)


def checkpoint_metrics(store, manifest_cid: str) -> dict[str, float]:
    """The metrics (train_loss, val_loss, val_ratio, samples_per_s) of a checkpoint manifest this node stored."""
    try:
        record = decode_record(b"".join(iter_file(store, manifest_cid)), kind="checkpoint")
        return {k: float(v) for k, v in record.body.metrics.items()}
    except (OSError, ParisError, ValueError) as e:  # pruned meanwhile: the event goes out without them
        log.debug("no metrics for %s: %s", manifest_cid, e)
        return {}
