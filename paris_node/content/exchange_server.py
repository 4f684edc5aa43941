"""Serving side of the block protocol: answer want-lists from the local blockstore.

The server never trusts the asker: want-lists are size-capped, each peer gets a bounded number of
concurrent streams (others wait their turn), and a peer that stops reading is cut off after a write
deadline. Whatever a peer does is logged at debug level and survived.

A block held as its own file in the store goes out with `sendfile` (`BlockFile`): its bytes pass from the page
cache to the socket without entering this process. Those bytes were verified against their CID when the store
took them (the store holds nothing else); anything the store can only give as bytes (an identity CID) is sent
from memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import suppress
from typing import IO, TYPE_CHECKING

from paris_node.content.errors import BlockNotFound, ContentError
from paris_node.content.exchange_wire import (
    PROTOCOL,
    ExchangeError,
    encode_frame_header,
    read_request,
)

if TYPE_CHECKING:
    from hivemind.p2p import P2P
    from hivemind.p2p.p2p_daemon_bindings.datastructures import StreamInfo

    from paris_node.content.blockstore import Blockstore

logger = logging.getLogger(__name__)


class BlockFile:
    """A stored block's file, open (so a gc that deletes it meanwhile cannot cut the answer short)."""

    def __init__(self, file: IO[bytes], size: int) -> None:
        self.file = file
        self.size = size

    def __len__(self) -> int:
        return self.size

    def read(self) -> bytes:
        """Its bytes, and closed (for code that needs them in memory, e.g. tests that misbehave with them)."""
        try:
            return os.pread(self.file.fileno(), self.size, 0)
        finally:
            self.file.close()


Block = bytes | BlockFile


def block_bytes(data: Block | None) -> bytes | None:
    """The bytes of what `BlockServer.load` returned."""
    return data.read() if isinstance(data, BlockFile) else data


class BlockServer:
    """Registers the block protocol on a hivemind P2P and serves blocks held in `store`.

    Use `await server.start()` in the event loop that owns `p2p`, and `await server.stop()` before
    the P2P shuts down. `blocks_served` counts blocks sent (tests use it to check resume).
    """

    def __init__(
        self,
        p2p: P2P,
        store: Blockstore,
        *,
        protocol: str = PROTOCOL,
        max_streams_per_peer: int = 4,
        max_streams: int = 64,
        request_timeout_s: float = 10.0,
        write_timeout_s: float = 30.0,
        linger_s: float = 10.0,
    ) -> None:
        self.p2p = p2p
        self.store = store
        self.protocol = protocol
        self.max_streams_per_peer = max_streams_per_peer
        self.request_timeout_s = request_timeout_s
        self.write_timeout_s = write_timeout_s
        self.linger_s = linger_s
        self.blocks_served = 0
        self.bytes_served = 0
        self._all = asyncio.Semaphore(max_streams)
        self._per_peer: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._started = False

    async def start(self) -> None:
        await self.p2p.add_binary_stream_handler(self.protocol, self._handle)
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                await self.p2p.remove_binary_stream_handler(self.protocol)
            except Exception as e:  # the daemon may already be gone; nothing left to undo
                logger.debug("removing block handler failed: %r", e)

    async def load(self, cid: str) -> Block | None:
        """The block to send for `cid` (its open file or its bytes), or None to answer not-have."""
        try:
            return await asyncio.to_thread(self._open, cid)
        except (BlockNotFound, ContentError):  # absent, or a CID string we cannot even parse
            return None

    def _open(self, cid: str) -> Block:
        """Runs in a thread: the block's open file (read ahead, so sendfile finds it in memory), else its bytes."""
        path = self.store.block_file(cid)
        if path is not None:
            try:
                f = open(path, "rb")  # noqa: SIM115 -- closed by send_frame (or _handle when the stream fails)
            except FileNotFoundError:
                pass  # removed by a gc since: the store says so below
            else:
                size = os.fstat(f.fileno()).st_size
                if hasattr(os, "posix_fadvise"):  # Linux; elsewhere the first sendfile reads it
                    os.posix_fadvise(f.fileno(), 0, size, os.POSIX_FADV_WILLNEED)
                return BlockFile(f, size)
        return self.store.get(cid)

    async def _handle(self, info: StreamInfo, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = info.peer_id.to_base58()
        slot = self._enter(peer)
        try:
            async with slot, self._all:  # per-peer first: one greedy peer cannot hold global slots
                cids = await read_request(reader, self.request_timeout_s)
                for cid in cids:
                    data = await self.load(cid)
                    try:
                        await self.send_frame(writer, cid, data)
                    finally:
                        if isinstance(data, BlockFile):
                            data.file.close()
                    if data is not None:
                        self.blocks_served += 1
                        self.bytes_served += len(data)
                # The asker closes first (it has read every frame by then); closing on our side right after the
                # last write would leave p2pd free to close or reset the stream while those bytes are in flight.
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(1), self.linger_s)
        except (ExchangeError, asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError) as e:
            logger.debug("block request from %s ended early: %r", peer, e)
        except Exception as e:  # a peer must never take the node down
            logger.debug("block request from %s failed: %r", peer, e, exc_info=True)
        finally:
            self._leave(peer)
            writer.close()

    async def send_frame(self, writer: asyncio.StreamWriter, cid: str, data: Block | None) -> None:
        """Write one answer and wait (bounded) until the stream took it."""
        writer.write(encode_frame_header(cid, data))
        if isinstance(data, BlockFile):  # waits for the header to leave, then the kernel sends the file's pages
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sendfile(writer.transport, data.file, 0, data.size), self.write_timeout_s)
        elif data is not None:
            writer.write(data)
        await asyncio.wait_for(writer.drain(), self.write_timeout_s)

    def _enter(self, peer: str) -> asyncio.Semaphore:
        sem, users = self._per_peer.get(peer, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self.max_streams_per_peer)
        self._per_peer[peer] = (sem, users + 1)
        return sem

    def _leave(self, peer: str) -> None:
        sem, users = self._per_peer[peer]
        if users <= 1:
            del self._per_peer[peer]  # forget idle peers so the table stays small
        else:
            self._per_peer[peer] = (sem, users - 1)
