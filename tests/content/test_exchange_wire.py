"""Pure tests of the block protocol's framing and the penalty box (no p2pd, milliseconds)."""

import asyncio
import struct
import time

import pytest

from paris_node.content.cid import MAX_BLOCK_SIZE
from paris_node.content.exchange import PenaltyBox
from paris_node.content.exchange_wire import (
    MAX_WANT,
    FrameTooLarge,
    PeerMisbehaved,
    PeerStalled,
    encode_frame_header,
    encode_request,
    read_frame,
    read_request,
)

CID = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
CID2 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


def _reader(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    if eof:
        r.feed_eof()
    return r


async def test_request_roundtrip():
    assert await read_request(_reader(encode_request([CID, CID2])), 1.0) == [CID, CID2]


@pytest.mark.parametrize("bad", [[], [CID] * (MAX_WANT + 1), ["../../etc/passwd"], ["a\nb"]])
def test_encode_request_rejects(bad):
    with pytest.raises(ValueError):
        encode_request(bad)


async def test_read_request_rejects_oversize_length_without_reading():
    # Claims 1 GiB and sends nothing more: rejected from the header alone, no wait.
    with pytest.raises(PeerMisbehaved):
        await read_request(_reader(struct.pack(">I", 1 << 30), eof=False), 5.0)


async def test_read_request_rejects_garbage_entries():
    payload = b"abc\n../x"
    with pytest.raises(PeerMisbehaved):
        await read_request(_reader(struct.pack(">I", len(payload)) + payload), 1.0)


async def test_read_request_stall():
    with pytest.raises(PeerStalled):
        await read_request(_reader(b"\x00\x00", eof=False), 0.05)


async def test_frame_roundtrip_block_and_not_have():
    r = _reader(encode_frame_header(CID, b"hello") + b"hello" + encode_frame_header(CID2, None))
    f = await read_frame(r, CID, 1.0)
    assert (f.cid, f.data) == (CID, b"hello")
    f = await read_frame(r, CID2, 1.0)
    assert (f.cid, f.data) == (CID2, None)


async def test_frame_over_cap_rejected_from_header_alone():
    # The stream stays open and holds no body: a reader that trusted the header would block here.
    header = struct.pack(">BBI", 0, len(CID), MAX_BLOCK_SIZE + 1) + CID.encode()
    t0 = time.monotonic()
    with pytest.raises(FrameTooLarge):
        await read_frame(_reader(header, eof=False), CID, 10.0)
    assert time.monotonic() - t0 < 1.0


async def test_frame_for_another_cid_rejected():
    with pytest.raises(PeerMisbehaved):
        await read_frame(_reader(encode_frame_header(CID2, b"x") + b"x"), CID, 1.0)


async def test_truncated_frame_rejected():
    with pytest.raises(PeerMisbehaved):
        await read_frame(_reader(encode_frame_header(CID, b"0123456789") + b"01234"), CID, 1.0)


async def test_bad_status_rejected():
    with pytest.raises(PeerMisbehaved):
        await read_frame(_reader(struct.pack(">BBI", 7, len(CID), 0) + CID.encode()), CID, 1.0)


async def test_slow_frame_stalls():
    with pytest.raises(PeerStalled):
        await read_frame(_reader(encode_frame_header(CID, b"0123456789") + b"01", eof=False), CID, 0.05)


def test_penalty_box_backs_off_and_doubles():
    box = PenaltyBox(base_s=100.0, max_s=300.0)
    assert not box.is_banned("p")
    assert box.penalise("p") == 100.0
    assert box.is_banned("p") and not box.is_banned("q")
    assert box.penalise("p") == 200.0
    assert box.penalise("p") == 300.0  # capped
    assert PenaltyBox(base_s=0.0).penalise("p") == 0.0 and not PenaltyBox(base_s=0.0).is_banned("p")
