"""Client side of a block stream: frames received straight from the socket into reused buffers.

asyncio's StreamReader copies every byte twice (the socket's chunk into its bytearray, then out again into a
fresh `bytes` per `readexactly`), and each fresh 1 MiB object costs the kernel a page fault per page. A
`FrameReader` takes the stream's transport over with a `BufferedProtocol`: the socket's bytes are received
(`recv_into`) directly into the exact slice still missing of the header, CID or block being read, so nothing is
copied in user space and a received block lies in a buffer of a `BufferPool`, which gets it back once the block
is verified and stored. Reading is paused whenever no slice is open, so the kernel's socket buffer, not ours,
holds what the peer sent ahead: memory stays at the pool's buffers.

Every header is checked by `exchange_wire.check_frame_header`: a frame's size is judged from its six header
bytes before any of its body is read, and an answer for another CID than the one due is refused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from paris_node.content.cidcodec import MAX_BLOCK_SIZE
from paris_node.content.exchange_wire import (
    FRAME_HEADER_SIZE,
    STATUS_NOT_HAVE,
    PeerStalled,
    StreamCut,
    check_frame_header,
)

__all__ = ["BufferPool", "FrameReader", "PooledFrame"]


class BufferPool:
    """Block-sized bytearrays handed out and taken back: a fetch touches each buffer's pages once."""

    def __init__(self, size: int = MAX_BLOCK_SIZE) -> None:
        self.size = size
        self._free: list[bytearray] = []
        self.allocated = 0

    def take(self) -> bytearray:
        if self._free:
            return self._free.pop()
        self.allocated += 1
        return bytearray(self.size)

    def give(self, buf: bytearray) -> None:
        self._free.append(buf)


@dataclass
class PooledFrame:
    """One answer; `data` (None: not-have) is a view of `buffer`, valid until `release()` returns it to the pool."""

    cid: str
    data: memoryview | None
    buffer: bytearray | None
    pool: BufferPool | None

    def release(self) -> None:
        if self.buffer is not None and self.pool is not None:
            self.data = None
            self.pool.give(self.buffer)
            self.buffer = None


class _Inbox(asyncio.BufferedProtocol):
    """The transport's protocol once a FrameReader owns it: fills the one open slice, then pauses reading."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.target: memoryview | None = None
        self.filled = 0
        self.waiter: asyncio.Future | None = None
        self.ended = False  # the peer closed its side, or the connection is gone

    def get_buffer(self, sizehint: int) -> memoryview:
        # Reading runs only while a slice is open (paused otherwise); an empty buffer is a transport error.
        assert self.target is not None and self.filled < len(self.target), "reading while no slice is open"
        return self.target[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        assert self.target is not None
        if self.filled >= len(self.target):
            self.transport.pause_reading()
            self._wake()

    def eof_received(self) -> bool:
        self.ended = True
        self._wake()
        return False  # close the transport: we wrote our want-list long ago

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class FrameReader:
    """Reads the frames of one block stream whose want-list has been written and drained.

    Takes the transport of `writer` over from `reader` (bytes the StreamReader already buffered are used first);
    after this, only this object reads the stream, and `writer` may still be closed.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pool: BufferPool) -> None:
        transport = writer.transport
        transport.pause_reading()
        # StreamReader keeps what it received in `_buffer` and its end in `_eof` (stable since Python 3.4, and the
        # type hivemind 1.1.12 hands us); there is no public way to take bytes without awaiting a read.
        self._leftover = memoryview(bytes(reader._buffer))
        reader._buffer.clear()
        self._inbox = _Inbox(transport)
        self._inbox.ended = bool(reader._eof) or transport.is_closing()
        transport.set_protocol(self._inbox)
        self._transport = transport
        self._pool = pool
        self._header = bytearray(FRAME_HEADER_SIZE)
        self._loop = asyncio.get_running_loop()

    async def read_frame(self, expected_cid: str, timeout_s: float) -> PooledFrame:
        """The next answer, due for `expected_cid`. Raises FrameTooLarge, PeerMisbehaved (bad status, CID out of
        order), StreamCut (the stream ended inside the frame) or PeerStalled (no whole frame within `timeout_s`)."""
        deadline = self._loop.time() + timeout_s
        where = (expected_cid, timeout_s)
        await self._fill(memoryview(self._header), deadline, where)
        status, cid_len, size = check_frame_header(expected_cid, bytes(self._header))
        cid_buf = bytearray(cid_len)
        await self._fill(memoryview(cid_buf), deadline, where)
        cid = cid_buf.decode("ascii", errors="replace")
        check_frame_header(expected_cid, bytes(self._header), cid)
        if status == STATUS_NOT_HAVE:
            return PooledFrame(cid, None, None, None)
        assert size <= self._pool.size, "check_frame_header caps the size at MAX_BLOCK_SIZE"
        buf = self._pool.take()
        try:
            view = memoryview(buf)[:size]
            await self._fill(view, deadline, where)
        except BaseException:
            self._pool.give(buf)
            raise
        return PooledFrame(cid, view, buf, self._pool)

    async def _fill(self, view: memoryview, deadline: float, where: tuple[str, float]) -> None:
        """Fill `view` whole from the stream, or raise StreamCut (it ended) / PeerStalled (past `deadline`)."""
        n = min(len(view), len(self._leftover))
        if n:
            view[:n] = self._leftover[:n]
            self._leftover = self._leftover[n:]
        if n == len(view):
            return
        inbox = self._inbox
        if not inbox.ended:
            inbox.target, inbox.filled = view, n
            inbox.waiter = self._loop.create_future()
            timer = self._loop.call_at(deadline, inbox._wake)
            self._transport.resume_reading()
            try:
                await inbox.waiter
            finally:
                timer.cancel()
                self._transport.pause_reading()
                n, inbox.target, inbox.waiter = inbox.filled, None, None
            if n == len(view):
                return
            if not inbox.ended:
                raise PeerStalled(f"no frame for {where[0]} within {where[1]:.1f} s")
        raise StreamCut(f"stream ended inside the frame for {where[0]} ({n} of {len(view)} bytes of a part)")
