"""The node's block exchange in one object: an event-loop thread that serves blocks and runs fetches.

hivemind's DHT lives in a forked child process, and a hivemind P2P is bound to the event loop that
created its client. ExchangeService therefore owns one asyncio loop in a daemon thread, makes its
own P2P client on the DHT's (or a given P2P's) p2pd daemon inside that loop, serves the blockstore
there, and lets any thread call `fetch(...)`, which blocks until the DAG is complete or fails.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hivemind.p2p import P2P, PeerID

from paris_node.content.exchange_client import FetchStats, PenaltyBox, fetch_dag
from paris_node.content.exchange_server import BlockServer

if TYPE_CHECKING:
    from hivemind import DHT
    from multiaddr import Multiaddr

    from paris_node.content.blockstore import Blockstore

logger = logging.getLogger(__name__)


async def _daemon_maddr(_dht: Any, node: Any) -> Multiaddr:
    """Runs inside the DHT's child process (module level so run_coroutine can pickle it by name)."""
    return node.p2p.daemon_listen_maddr


class ExchangeService:
    """Serve the local blockstore to peers and fetch DAGs from them, from any thread.

    `source` is a running `hivemind.DHT` (the usual case: blocks travel on the node's one libp2p
    host) or a `P2P` whose daemon we attach to. `serve=False` makes a fetch-only client.
    """

    def __init__(
        self,
        source: DHT | P2P,
        store: Blockstore,
        *,
        serve: bool = True,
        parallel: int = 2,
        stall_timeout_s: float = 15.0,
        max_streams_per_peer: int = 4,
    ) -> None:
        self.source = source
        self.store = store
        self.serve = serve
        self.parallel = parallel
        self.stall_timeout_s = stall_timeout_s
        self.max_streams_per_peer = max_streams_per_peer
        self.penalties = PenaltyBox()
        self.p2p: P2P | None = None
        self.server: BlockServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def peer_id(self) -> PeerID:
        assert self.p2p is not None, "start() first"
        return self.p2p.peer_id

    def start(self, timeout: float = 30.0) -> ExchangeService:
        """Start the loop thread, attach to the daemon and (if serving) register the block protocol."""
        assert self._thread is None, "already started"
        self._thread = threading.Thread(target=self._run, name="paris-exchange", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"block exchange did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise RuntimeError(f"block exchange failed to start: {self._error!r}") from self._error
        return self

    def fetch(
        self, root_cid: str, providers: Sequence[PeerID | str], deadline_s: float = 600.0, **kwargs: Any
    ) -> FetchStats:
        """Fetch the DAG under `root_cid` into the store (see `fetch_dag`); blocks the calling thread."""
        assert self._loop is not None and self.p2p is not None, "start() first"
        assert threading.current_thread() is not self._thread, "from the loop thread, await fetch_dag instead"
        kwargs.setdefault("parallel", self.parallel)
        kwargs.setdefault("stall_timeout_s", self.stall_timeout_s)
        coro = fetch_dag(
            self.p2p, self.store, root_cid, providers, deadline_s=deadline_s, penalties=self.penalties, **kwargs
        )
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=deadline_s + 10.0)  # fetch_dag enforces deadline_s itself
        except BaseException:
            future.cancel()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Withdraw the handler, close our P2P client (the daemon belongs to the DHT) and end the thread."""
        if self._loop is None or self._thread is None:
            return
        if self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout)
            except Exception as e:
                logger.debug("block exchange shutdown: %r", e)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("block exchange thread did not stop within %.0f s", timeout)
        self._thread = None

    def __enter__(self) -> ExchangeService:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inside the loop thread -------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._setup())
        except BaseException as e:
            self._error = e
        finally:
            self._ready.set()
        if self._error is None:
            loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _setup(self) -> None:
        if isinstance(self.source, P2P):
            maddr = self.source.daemon_listen_maddr
        else:  # a hivemind.DHT: ask its child process where its p2pd listens (blocking pipe call)
            maddr = await asyncio.to_thread(self.source.run_coroutine, _daemon_maddr)
        self.p2p = await P2P.replicate(maddr)
        if self.serve:
            self.server = BlockServer(self.p2p, self.store, max_streams_per_peer=self.max_streams_per_peer)
            await self.server.start()

    async def _shutdown(self) -> None:
        if self.server is not None:
            await self.server.stop()
        if self.p2p is not None:
            await self.p2p.shutdown()  # a replica: closes our client, leaves the shared daemon running
