"""FrameReader over a real socket pair (no p2pd): frames received straight into pooled buffers, every check kept."""

import asyncio
import os
import socket
import struct
import time

import pytest

from paris_node.content.cid import MAX_BLOCK_SIZE
from paris_node.content.exchange_stream import BufferPool, FrameReader
from paris_node.content.exchange_wire import (
    FrameTooLarge,
    PeerMisbehaved,
    PeerStalled,
    StreamCut,
    encode_frame_header,
)

CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
CID2 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


async def _pair():
    """(reader, writer) of a StreamReader stream, and the raw socket of the peer's end."""
    ours, peer = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    peer.setblocking(False)
    return reader, writer, peer


def _frame(cid: str, data: bytes | None) -> bytes:
    return encode_frame_header(cid, data) + (data or b"")


async def _send(peer: socket.socket, data: bytes, piece: int | None = None) -> None:
    loop = asyncio.get_running_loop()
    step = piece or len(data)
    for at in range(0, len(data), step):
        await loop.sock_sendall(peer, data[at : at + step])


async def test_blocks_and_not_have_in_awkward_pieces_reuse_one_buffer():
    reader, writer, peer = await _pair()
    blocks = [os.urandom(n) for n in (1, 4093, 300_000, MAX_BLOCK_SIZE)]
    wire = b"".join(_frame(CID, b) for b in blocks) + _frame(CID2, None)
    pool = BufferPool()
    frames = FrameReader(reader, writer, pool)
    sender = asyncio.ensure_future(_send(peer, wire, piece=4093))
    for b in blocks:
        f = await frames.read_frame(CID, 5.0)
        assert bytes(f.data) == b
        f.release()
    f = await frames.read_frame(CID2, 5.0)
    assert f.data is None
    await sender
    assert pool.allocated == 1, "each released buffer is handed out again"
    writer.close()
    peer.close()


async def test_bytes_the_stream_reader_already_holds_are_read_first():
    reader, writer, peer = await _pair()
    data = os.urandom(70_000)
    await _send(peer, _frame(CID, data))
    deadline = time.monotonic() + 5
    while len(reader._buffer) < 1000 and time.monotonic() < deadline:  # StreamReader took some bytes
        await asyncio.sleep(0.001)
    assert len(reader._buffer) >= 1000
    f = await FrameReader(reader, writer, BufferPool()).read_frame(CID, 5.0)
    assert bytes(f.data) == data
    writer.close()
    peer.close()


async def test_oversize_frame_rejected_from_its_header_alone():
    reader, writer, peer = await _pair()
    await _send(peer, struct.pack(">BBI", 0, len(CID), MAX_BLOCK_SIZE + 1) + CID.encode())
    pool = BufferPool()
    with pytest.raises(FrameTooLarge):
        await FrameReader(reader, writer, pool).read_frame(CID, 5.0)
    assert pool.allocated == 0, "no block buffer for a frame refused from its header"
    writer.close()
    peer.close()


@pytest.mark.parametrize(
    "wire",
    [
        _frame(CID2, b"x"),  # an answer for another CID
        struct.pack(">BBI", 7, len(CID), 0) + CID.encode(),  # unknown status
        struct.pack(">BBI", 1, len(CID), 5) + CID.encode(),  # not-have with a body
    ],
)
async def test_misbehaving_frames_rejected(wire):
    reader, writer, peer = await _pair()
    await _send(peer, wire)
    with pytest.raises(PeerMisbehaved):
        await FrameReader(reader, writer, BufferPool()).read_frame(CID, 5.0)
    writer.close()
    peer.close()


async def test_stream_ending_inside_a_frame_is_a_cut_and_gives_the_buffer_back():
    reader, writer, peer = await _pair()
    await _send(peer, encode_frame_header(CID, b"0123456789") + b"01234")
    peer.shutdown(socket.SHUT_WR)
    pool = BufferPool()
    with pytest.raises(StreamCut):
        await FrameReader(reader, writer, pool).read_frame(CID, 5.0)
    assert pool.allocated == 1 and len(pool._free) == 1
    writer.close()
    peer.close()


async def test_silent_peer_stalls_within_the_deadline():
    reader, writer, peer = await _pair()
    await _send(peer, encode_frame_header(CID, b"0123456789") + b"01")
    t = time.monotonic()
    with pytest.raises(PeerStalled):
        await FrameReader(reader, writer, BufferPool()).read_frame(CID, 0.1)
    assert time.monotonic() - t < 2.0
    writer.close()
    peer.close()
