"""`paris-node start`: the swarm runner (claims, leases) with the node's job (data, training, publishing)."""

from __future__ import annotations

import logging
import threading

from paris_node.content.blockstore import Blockstore
from paris_node.home import Home
from paris_node.node.job import JobRunner, TrainOptions
from paris_node.swarm import keys
from paris_node.swarm.runner import Prepared, Session, StopSignal, SwarmOptions, run_node

log = logging.getLogger(__name__)


class Node:
    """Owns what lives beside the DHT for a node's lifetime: the block exchange and the job runner."""

    def __init__(self, home: Home, train: TrainOptions, mirror_every_s: float = 30.0):
        self.home, self.train, self.mirror_every_s = home, train, mirror_every_s
        self.store = Blockstore(home.blocks_dir)
        self.runner: JobRunner | None = None
        self.manifest = None
        self.exchange = None
        self.session: Session | None = None

    def prepare(self, dht, identity) -> Prepared:
        """After the DHT is up: serve our blocks, obtain the run manifest (demo, local, or from peers)."""
        from paris_node.content.exchange import ExchangeService
        from paris_node.node.mirror import Mirror
        from paris_node.node.session import obtain_run

        self.exchange = exchange = ExchangeService(dht, self.store).start()
        try:
            self.manifest = obtain_run(self.home, self._run, dht, exchange)
        except BaseException:
            exchange.stop()
            raise
        self.runner = JobRunner(self.home, self.store, self.manifest, exchange, self.train)
        mirror = Mirror(self, self.mirror_every_s).start() if self.mirror_every_s > 0 else None
        log.info("run %s: %d experts + router", self.manifest.run_id, self.manifest.experts)

        def close() -> None:
            if mirror is not None:
                mirror.stop()
            exchange.stop()

        return Prepared(self.manifest.run_id, keys.jobs_for(self.manifest.experts), close=close)

    def on_session(self, session: Session) -> None:
        self.session = session

    def job(self, job: str, stop: threading.Event, session: Session) -> None:
        assert self.runner is not None
        self.runner(job, stop, session)

    def run(self, options: SwarmOptions, stop: StopSignal, on_event=None) -> None:
        self._run = options.run
        run_node(options, self.job, stop=stop, on_event=on_event, prepare=self.prepare, on_session=self.on_session)
