"""Fetching side of the block protocol: pull a whole DAG from several providers, verifying every block.

The walk starts at the root and follows links as blocks arrive; blocks already in the local store are
never requested again (so a second call resumes an interrupted transfer). Each provider gets
`parallel` streams that pull batches from one shared queue, so the want-list is split across
providers and a fast provider naturally takes more of it. A block that does not hash to its CID is
dropped before it touches the store, its provider is dropped for this fetch and backed off in the
`PenaltyBox`, and the block is asked of someone else. Memory stays at a few blocks per stream.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hivemind.p2p import P2PDaemonError, P2PHandlerError, PeerID
from multiaddr import Multiaddr

from paris_node.content.cid import block_links, verify_block
from paris_node.content.dag import missing_blocks
from paris_node.content.errors import BlockMismatch, ContentError, FetchError
from paris_node.content.exchange_stream import BufferPool, FrameReader, PooledFrame
from paris_node.content.exchange_wire import (
    MAX_WANT,
    PROTOCOL,
    ExchangeError,
    PeerStalled,
    StreamCut,
    encode_request,
)

if TYPE_CHECKING:
    from hivemind.p2p import P2P

    from paris_node.content.blockstore import Blockstore

logger = logging.getLogger(__name__)

_INGEST_DEPTH = 3  # received blocks per stream being verified/stored at once (memory: that many blocks)
# Streams of one provider that may end inside a frame in one fetch before it is dropped and penalised. A cut
# costs the provider its unanswered CIDs (they go back to the queue); an honest one whose stream the transport
# reset gets another stream, while one that keeps cutting its answers short is still dropped within 3 streams.
_CUTS_TOLERATED = 2

# How an unreachable provider or a broken connection shows up; each drops that provider for this fetch.
_PEER_FAILURES = (
    P2PDaemonError,
    P2PHandlerError,
    ConnectionError,
    asyncio.IncompleteReadError,
    asyncio.TimeoutError,
)


class FetchTimeout(FetchError, TimeoutError):
    """The whole-fetch deadline passed before every block arrived (what arrived is kept)."""


class PenaltyBox:
    """Providers that served a bad block or stalled, skipped until their back-off runs out.

    The back-off doubles with each offence up to `max_s`, so a peer that keeps misbehaving is
    effectively ignored while one that had a single bad moment comes back. Kept by the caller
    (ExchangeService keeps one per node) so penalties outlive a single fetch.
    """

    def __init__(self, base_s: float = 60.0, max_s: float = 3600.0) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._until: dict[str, float] = {}
        self._offences: dict[str, int] = {}

    def penalise(self, peer: str) -> float:
        n = self._offences.get(peer, 0) + 1
        self._offences[peer] = n
        backoff = min(self.max_s, self.base_s * 2 ** (n - 1))
        self._until[peer] = time.monotonic() + backoff
        return backoff

    def is_banned(self, peer: str) -> bool:
        return time.monotonic() < self._until.get(peer, 0.0)


@dataclass
class FetchStats:
    """What one fetch did; `blocks_fetched` counts only blocks that came over the network."""

    blocks_fetched: int = 0
    bytes_fetched: int = 0
    blocks_rejected: int = 0
    seconds: float = 0.0
    by_provider: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # provider -> why


def as_peer_id(provider: PeerID | str) -> PeerID:
    """Provider records carry base58 peer ids (`12D3KooW...`, `Qm...`); the P2P dials PeerIDs.

    A multiaddr ending in `/p2p/<id>` (a provider record's `addrs`) names its peer the same way.
    """
    if isinstance(provider, PeerID):
        return provider
    if provider.startswith("/"):
        return PeerID.from_base58(Multiaddr(provider).value_for_protocol("p2p"))
    return PeerID.from_base58(provider)


async def fetch_dag(
    p2p: P2P,
    store: Blockstore,
    root_cid: str,
    providers: Sequence[PeerID | str],
    *,
    deadline_s: float = 600.0,
    parallel: int = 2,
    batch: int = 16,
    stall_timeout_s: float = 15.0,
    penalties: PenaltyBox | None = None,
) -> FetchStats:
    """Make `store` hold every block of the DAG under `root_cid`, fetched from `providers`.

    Raises FetchError when the providers cannot supply some block (listed in the message) and
    FetchTimeout after `deadline_s`; verified blocks that did arrive stay in the store, so calling
    again resumes. `stall_timeout_s` bounds each frame (and each stream open) from one provider.
    """
    run = _DagFetch(p2p, store, root_cid, providers, parallel, batch, stall_timeout_s, penalties or PenaltyBox())
    try:
        return await asyncio.wait_for(run.run(), deadline_s)
    except asyncio.TimeoutError:
        raise FetchTimeout(
            f"fetching {root_cid}: deadline of {deadline_s:.0f} s passed with {len(run.pending)} blocks "
            f"still missing; run again to resume"
        ) from None


class _DagFetch:
    def __init__(self, p2p, store, root, providers, parallel, batch, stall_timeout_s, penalties) -> None:
        self.p2p = p2p
        self.store = store
        self.root = root
        self.parallel = max(1, parallel)
        self.batch = max(1, min(batch, MAX_WANT))
        self.stall_timeout_s = stall_timeout_s
        self.penalties = penalties
        self.live: dict[str, PeerID] = {}
        self.addrs: dict[str, list[Multiaddr]] = {}
        for p in providers:
            pid = as_peer_id(p)
            self.live[pid.to_base58()] = pid
            if isinstance(p, str) and p.startswith("/"):
                self.addrs.setdefault(pid.to_base58(), []).append(Multiaddr(p).decapsulate("/p2p"))
        if any(not penalties.is_banned(k) for k in self.live):  # all banned: better them than nothing
            self.live = {k: v for k, v in self.live.items() if not penalties.is_banned(k)}
        self.queue: deque[str] = deque()
        self.pending: set[str] = set()  # queued or in flight, not yet stored
        self.seen: set[str] = set()
        self.refused: dict[str, set[str]] = {}
        self.cuts: dict[str, int] = {}
        self.failure: Exception | None = None
        self.changed = asyncio.Event()
        self.stats = FetchStats()
        self.pool = BufferPool()  # block buffers, reused: about (_INGEST_DEPTH + 1) per stream

    async def run(self) -> FetchStats:
        t0 = time.perf_counter()
        self.seen.add(self.root)
        self._enqueue(await asyncio.to_thread(self._missing_under, [self.root]))
        if self.pending:
            if not self.live:
                raise FetchError(f"fetching {self.root}: {len(self.pending)} blocks missing and no provider given")
            await asyncio.gather(*(self._connect(k, a) for k, a in self.addrs.items() if k in self.live))
            workers = [asyncio.create_task(self._worker(k)) for k in list(self.live) for _ in range(self.parallel)]
            for w in workers:
                w.add_done_callback(self._worker_ended)
            try:
                while not self._done():  # on failure, streams still open are cut at once below
                    await self.changed.wait()
            finally:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                # Every block stored is durable before we answer, done or not (a resume then skips it).
                await asyncio.to_thread(self.store.sync)
        self.stats.seconds = time.perf_counter() - t0
        if self.failure is not None:
            raise self.failure
        return self.stats

    def _worker_ended(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:  # a bug or a local error (OSError)
            self.failure = self.failure or task.exception()
            self._wake()

    # -- scheduling -------------------------------------------------------------------------------

    def _missing_under(self, cids: list[str]) -> list[str]:
        """Runs in a thread: which of `cids` (and of the subtrees under those we hold) must be fetched."""
        out: list[str] = []
        for cid in cids:
            out.extend(missing_blocks(self.store, cid) if self.store.has(cid) else [cid])
        return out

    def _enqueue(self, cids: list[str]) -> None:
        for cid in cids:
            if cid not in self.pending:
                self.pending.add(cid)
                self.queue.append(cid)
                self.seen.add(cid)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()  # waiters hold the old (set) event; new waiters get a fresh one

    def _done(self) -> bool:
        return not self.pending or self.failure is not None

    def _take(self, key: str) -> list[str]:
        share = math.ceil(len(self.queue) / max(1, len(self.live) * self.parallel))
        want = max(1, min(self.batch, share))
        taken: list[str] = []
        for _ in range(len(self.queue)):
            if len(taken) >= want:
                break
            cid = self.queue.popleft()
            if key in self.refused.get(cid, ()):
                self.queue.append(cid)  # this provider said it lacks it: leave it to others
            else:
                taken.append(cid)
        return taken

    def _requeue(self, cids: list[str]) -> None:
        self.queue.extendleft(reversed(cids))
        self._check_stuck()
        self._wake()

    def _check_stuck(self) -> None:
        if self.failure is not None or not self.pending:
            return
        if not self.live:
            self.failure = FetchError(
                f"fetching {self.root}: every provider failed or was dropped ({self.stats.dropped}); "
                f"{len(self.pending)} blocks still missing, run again to resume"
            )
            return
        for cid in self.queue:
            if set(self.live) <= self.refused.get(cid, set()):
                self.failure = FetchError(f"fetching {self.root}: no provider has block {cid}")
                return

    def _drop(self, key: str, why: Exception, *, penalise: bool) -> None:
        if key not in self.live:
            return
        del self.live[key]
        self.stats.dropped[key] = repr(why)
        if penalise:
            backoff = self.penalties.penalise(key)
            # One line per provider per fetch: the details are at debug level.
            logger.warning("dropping provider %s for %.0f s: %s", key, backoff, why)
        else:
            logger.debug("provider %s unreachable: %r", key, why)
        self._check_stuck()
        self._wake()

    # -- transfer ---------------------------------------------------------------------------------

    async def _worker(self, key: str) -> None:
        while True:
            while not (self._done() or key not in self.live or self._has_work(key)):
                await self.changed.wait()
            if self._done() or key not in self.live:
                return
            batch = self._take(key)
            if not batch:
                continue
            try:
                await self._request(key, batch)
            except StreamCut as e:
                self.cuts[key] = self.cuts.get(key, 0) + 1
                if self.cuts[key] > _CUTS_TOLERATED:
                    self._drop(key, e, penalise=True)
                else:
                    logger.debug("stream from %s cut (%d/%d tolerated): %s", key, self.cuts[key], _CUTS_TOLERATED, e)
            except (BlockMismatch, ExchangeError) as e:
                self._drop(key, e, penalise=True)
            except ContentError as e:  # a local problem (disk full) or a DAG no provider can fix
                self.failure = self.failure or e
                self._wake()
            except _PEER_FAILURES as e:
                self._drop(key, e, penalise=isinstance(e, asyncio.IncompleteReadError))
            finally:
                if batch:
                    self._requeue(batch)

    def _has_work(self, key: str) -> bool:
        return any(key not in self.refused.get(cid, ()) for cid in self.queue)

    async def _connect(self, key: str, addrs: list[Multiaddr]) -> None:
        """Dial a provider's advertised addresses; without them p2pd finds the peer by its id."""
        try:
            # hivemind's P2P has no public connect(); its daemon client does (hivemind 1.1.12).
            await asyncio.wait_for(self.p2p._client.connect(self.live[key], addrs), self.stall_timeout_s)
        except (*_PEER_FAILURES, OSError) as e:
            logger.debug("dialing %s at %s failed: %r", key, addrs, e)  # opening a stream will say more

    async def _request(self, key: str, batch: list[str]) -> None:
        """Ask `key` for `batch`; every CID answered (stored or refused) is removed from `batch`.

        Up to `_INGEST_DEPTH` received blocks are verified and stored (each in a thread: hashing and fsync
        release the GIL) while the next frames are read, so the stream never waits on the disk.
        """
        try:
            _, reader, writer = await asyncio.wait_for(
                self.p2p.call_binary_stream_handler(self.live[key], PROTOCOL), self.stall_timeout_s
            )
        except asyncio.TimeoutError as e:
            raise PeerStalled(f"could not open a stream within {self.stall_timeout_s:.1f} s") from e
        ingesting: deque[asyncio.Future] = deque()
        try:
            writer.write(encode_request(batch))
            await writer.drain()
            frames = FrameReader(reader, writer, self.pool)
            for cid in list(batch):
                frame = await frames.read_frame(cid, self.stall_timeout_s)
                while ingesting and (ingesting[0].done() or len(ingesting) >= _INGEST_DEPTH):
                    await ingesting.popleft()  # raises BlockMismatch for a bad block: the provider is dropped
                if frame.data is None:
                    self.refused.setdefault(cid, set()).add(key)
                    batch.remove(cid)
                    self._requeue([cid])
                else:
                    ingesting.append(asyncio.ensure_future(self._ingest(key, frame, batch)))
            # Every frame is in: we close first, so the provider (which waits for our close) never cuts a stream
            # whose last bytes are still on their way, and its slot is free while we verify and store.
            writer.close()
            while ingesting:
                await ingesting.popleft()
            # Make this batch's renames durable while the other streams keep the link busy.
            await asyncio.to_thread(self.store.sync)
        finally:
            # The stream failed while blocks were being stored: let them finish (each is verified first).
            for fut in ingesting:
                with suppress(Exception):
                    await fut
            writer.close()

    async def _ingest(self, key: str, frame: PooledFrame, batch: list[str]) -> None:
        cid, size = frame.cid, len(frame.data)
        try:
            links = await asyncio.to_thread(self._verify_and_store, frame)
        except BlockMismatch:
            self.stats.blocks_rejected += 1
            raise
        batch.remove(cid)
        self.stats.blocks_fetched += 1
        self.stats.bytes_fetched += size
        self.stats.by_provider[key] = self.stats.by_provider.get(key, 0) + 1
        new = [c for c in links if c not in self.seen]
        self.seen.update(new)
        if new:
            self._enqueue(await asyncio.to_thread(self._missing_under, new))
        self.pending.discard(cid)  # only after its children are pending, so pending never empties early
        self._wake()

    def _verify_and_store(self, frame: PooledFrame) -> list[str]:
        """Runs in a thread. The one hash of a received block, right before it is stored: nothing reaches the
        store unverified, and put_local stores these same bytes without hashing them a second time. The buffer
        goes back to the pool here, in the thread, once nothing reads it (also when the fetch was cancelled)."""
        try:
            verify_block(frame.cid, frame.data)
            self.store.put_local(frame.cid, [frame.data])
            return block_links(frame.cid, frame.data)
        finally:
            frame.release()
