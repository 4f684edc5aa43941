"""Wire format of the paris block protocol (spec: protocol/exchange.md).

One libp2p stream per request. The client writes one want-list, the server answers one frame per
wanted CID, in want-list order, then closes. The client reads frames with `exchange_stream.FrameReader`,
which checks each header here (`check_frame_header`). Every length is checked against its cap *before* the
bytes it announces are read, so a peer cannot make us buffer more than one block.

This module only encodes and decodes; it owns no sockets and knows nothing of stores or peers.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sized

from paris_node.content.cid import MAX_BLOCK_SIZE
from paris_node.content.errors import BlockTooLarge, ContentError

PROTOCOL = "/paris/blocks/1.0.0"

MAX_WANT = 256  # CIDs per request: bounds the server's work per stream
MAX_CID_LEN = 255  # a CID string is echoed with a one-byte length
MAX_REQUEST_BYTES = 64 * 1024
STATUS_BLOCK = 0
STATUS_NOT_HAVE = 1

_REQUEST_HEADER = struct.Struct(">I")  # request payload length
_FRAME_HEADER = struct.Struct(">BBI")  # status, cid length, block length
FRAME_HEADER_SIZE = _FRAME_HEADER.size
MAX_FRAME_SIZE = FRAME_HEADER_SIZE + MAX_CID_LEN + MAX_BLOCK_SIZE


class ExchangeError(ContentError):
    """Base of every error the block exchange raises."""


class PeerMisbehaved(ExchangeError):
    """A peer broke the protocol (bad framing, wrong CID, oversize frame). It gets dropped."""


class FrameTooLarge(PeerMisbehaved, BlockTooLarge):
    """A frame announced more bytes than MAX_BLOCK_SIZE; rejected before any of them were read."""


class StreamCut(PeerMisbehaved):
    """The stream ended before the frame due was whole. A lying provider does this, but so can the transport
    (a reset libp2p stream), so the client retries a provider a few times before it drops and penalises it."""


class PeerStalled(ExchangeError):
    """A peer sent nothing for longer than the per-frame deadline."""


def encode_request(cids: list[str]) -> bytes:
    """Want-list: u32 big-endian length, then the CIDs as ASCII joined by newlines."""
    if not cids or len(cids) > MAX_WANT:
        raise ValueError(f"a want-list holds 1..{MAX_WANT} CIDs, got {len(cids)}")
    for cid in cids:
        if not cid.isascii() or not cid.isalnum() or len(cid) > MAX_CID_LEN:
            raise ValueError(f"not a CID string: {cid[:80]!r}")
    payload = "\n".join(cids).encode("ascii")
    if len(payload) > MAX_REQUEST_BYTES:
        raise ValueError(f"want-list of {len(payload)} bytes is over {MAX_REQUEST_BYTES}")
    return _REQUEST_HEADER.pack(len(payload)) + payload


async def read_request(reader: asyncio.StreamReader, timeout_s: float) -> list[str]:
    """Server side: read and check one want-list. Raises PeerMisbehaved or PeerStalled."""

    async def _read() -> bytes:
        (size,) = _REQUEST_HEADER.unpack(await reader.readexactly(_REQUEST_HEADER.size))
        if size == 0 or size > MAX_REQUEST_BYTES:
            raise PeerMisbehaved(f"want-list of {size} bytes (cap {MAX_REQUEST_BYTES})")
        return await reader.readexactly(size)

    try:
        payload = await asyncio.wait_for(_read(), timeout_s)
    except asyncio.TimeoutError as e:
        raise PeerStalled(f"no want-list within {timeout_s:.1f} s") from e
    except asyncio.IncompleteReadError as e:
        raise PeerMisbehaved("want-list truncated") from e
    try:
        cids = payload.decode("ascii").split("\n")
    except UnicodeDecodeError as e:
        raise PeerMisbehaved("want-list is not ASCII") from e
    if len(cids) > MAX_WANT or any(not c or not c.isalnum() or len(c) > MAX_CID_LEN for c in cids):
        raise PeerMisbehaved(f"malformed want-list of {len(cids)} entries")
    return cids


def encode_frame_header(cid: str, data: Sized | None) -> bytes:
    """Frame header plus the echoed CID; the block's bytes (if any: anything with their length) follow it."""
    raw_cid = cid.encode("ascii")
    assert len(raw_cid) <= MAX_CID_LEN
    if data is None:
        return _FRAME_HEADER.pack(STATUS_NOT_HAVE, len(raw_cid), 0) + raw_cid
    assert len(data) <= MAX_BLOCK_SIZE, "the blockstore holds only blocks under the cap"
    return _FRAME_HEADER.pack(STATUS_BLOCK, len(raw_cid), len(data)) + raw_cid


def check_frame_header(expected_cid: str, header: bytes, cid: str | None = None) -> tuple[int, int, int]:
    """(status, cid length, block length) of a frame due for `expected_cid`, checked before its body is read:
    FrameTooLarge over MAX_BLOCK_SIZE, PeerMisbehaved for a bad status or (once `cid` is read) another CID."""
    status, cid_len, size = _FRAME_HEADER.unpack(header)
    if size > MAX_BLOCK_SIZE:
        raise FrameTooLarge(f"frame for {expected_cid} claims {size} bytes (cap {MAX_BLOCK_SIZE})")
    if status not in (STATUS_BLOCK, STATUS_NOT_HAVE) or (status == STATUS_NOT_HAVE and size):
        raise PeerMisbehaved(f"bad frame header status={status} size={size}")
    if cid is not None and cid != expected_cid:
        raise PeerMisbehaved(f"answer for {cid[:80]!r} where {expected_cid} was due")
    return status, cid_len, size
