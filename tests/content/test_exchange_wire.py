"""Pure tests of the block protocol's framing and the penalty box (no p2pd, milliseconds)."""

import asyncio
import struct

import pytest

from paris_node.content.cid import MAX_BLOCK_SIZE
from paris_node.content.exchange import PenaltyBox
from paris_node.content.exchange_wire import (
    MAX_WANT,
    FrameTooLarge,
    PeerMisbehaved,
    PeerStalled,
    check_frame_header,
    encode_frame_header,
    encode_request,
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


def test_frame_header_checked_before_the_body():
    header = encode_frame_header(CID, b"hello")
    assert check_frame_header(CID, header[:6], CID) == (0, len(CID), 5)
    assert check_frame_header(CID2, encode_frame_header(CID2, None)[:6]) == (1, len(CID2), 0)
    with pytest.raises(FrameTooLarge):
        check_frame_header(CID, struct.pack(">BBI", 0, len(CID), MAX_BLOCK_SIZE + 1))
    with pytest.raises(PeerMisbehaved):
        check_frame_header(CID, struct.pack(">BBI", 7, len(CID), 0))
    with pytest.raises(PeerMisbehaved):
        check_frame_header(CID, header[:6], CID2)
    # reading frames off a stream: tests/content/test_exchange_stream.py (FrameReader, the client's reader)


def test_penalty_box_backs_off_and_doubles():
    box = PenaltyBox(base_s=100.0, max_s=300.0)
    assert not box.is_banned("p")
    assert box.penalise("p") == 100.0
    assert box.is_banned("p") and not box.is_banned("q")
    assert box.penalise("p") == 200.0
    assert box.penalise("p") == 300.0  # capped
    assert PenaltyBox(base_s=0.0).penalise("p") == 0.0 and not PenaltyBox(base_s=0.0).is_banned("p")
