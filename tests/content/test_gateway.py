"""Trustless gateway server (raw, car, probe, file) and the verifying gateway client, on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest
from aiohttp import web
from conftest import det_bytes

from paris_node.content.blockstore import Blockstore
from paris_node.content.car import car_header, iter_car, read_car
from paris_node.content.cid import BlockMismatch, parse_cid
from paris_node.content.dag import add_bytes, iter_file, missing_blocks, walk_dag
from paris_node.content.dagpb import varint
from paris_node.content.errors import BlockTooLarge, FetchError
from paris_node.content.gateway import start_gateway, stop_gateway
from paris_node.content.gateway_client import fetch_dag_from_gateway, fetch_from_gateways

DATA = det_bytes("gw", 1_100_000)


@pytest.fixture
async def served(store):
    root = add_bytes(store, DATA)
    runner = await start_gateway(store, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    try:
        yield store, root, f"http://{host}:{port}"
    finally:
        await stop_gateway(runner)


async def _get(url, **headers):
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers) as r:
            return r.status, r.headers, await r.read()


async def test_listens_on_loopback_by_default(store):
    runner = await start_gateway(store, port=0)
    try:
        assert runner.addresses[0][0] == "127.0.0.1"
    finally:
        await stop_gateway(runner)


async def test_raw_block_by_accept_and_format(served):
    store, root, url = served
    status, headers, body = await _get(f"{url}/ipfs/{root}", Accept="application/vnd.ipld.raw")
    assert status == 200 and body == store.get(root)
    assert headers["Content-Type"] == "application/vnd.ipld.raw"
    status, _, body2 = await _get(f"{url}/ipfs/{root}?format=raw")
    assert body2 == body


async def test_car_by_accept_and_format(served):
    store, root, url = served
    status, headers, body = await _get(f"{url}/ipfs/{root}", Accept="application/vnd.ipld.car")
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.ipld.car; version=1")
    roots, blocks = read_car(io.BytesIO(body))
    assert roots == [root] and [c for c, _ in blocks] == list(walk_dag(store, root))
    assert (await _get(f"{url}/ipfs/{root}?format=car"))[2] == body


async def test_plain_get_returns_file_bytes(served):
    _, root, url = served
    status, _, body = await _get(f"{url}/ipfs/{root}")
    assert status == 200 and body == DATA


async def test_probe_and_errors(served):
    _, root, url = served
    assert (await _get(f"{url}/ipfs/bafkqaaa", Accept="application/vnd.ipld.raw"))[:1] == (200,)
    assert (await _get(f"{url}/ipfs/bafkqaaa"))[2] == b""
    assert (await _get(f"{url}/ipfs/not-a-cid"))[0] == 400
    assert (await _get(f"{url}/ipfs/bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"))[0] == 501
    assert (await _get(f"{url}/ipfs/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o?format=raw"))[0] == 404
    assert (await _get(f"{url}/ipfs/{root}?format=tar"))[0] == 400


async def test_partial_dag_gives_truncated_car(served):
    store, root, url = served
    store.delete(list(walk_dag(store, root))[2])
    body = b""
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{url}/ipfs/{root}?format=car") as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):  # the chunked body ends without its terminator
                async for piece in r.content.iter_chunked(65536):
                    body += piece
    _, blocks = read_car(io.BytesIO(body))
    assert len(list(blocks)) == 2  # root and first leaf, then the stream simply ends


async def test_client_fetches_and_verifies(served, tmp_path):
    _, root, url = served
    dst = Blockstore(tmp_path / "dst")
    await fetch_dag_from_gateway(dst, root, url)
    assert missing_blocks(dst, root) == [] and b"".join(iter_file(dst, root)) == DATA


async def test_client_completes_truncated_car_with_raw_blocks(served, tmp_path):
    store, root, url = served
    dst = Blockstore(tmp_path / "dst")
    leaf = list(walk_dag(store, root))[2]
    dst.put(leaf, store.get(leaf))  # resume: this one is already here
    await fetch_dag_from_gateway(dst, root, url)
    assert b"".join(iter_file(dst, root)) == DATA


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


class FakeGateway:
    """A misbehaving gateway: flips a byte in every block, cuts CARs short, or stalls."""

    def __init__(self, store: Blockstore, root: str, mode: str) -> None:
        self.store, self.root, self.mode, self.raw_requests = store, root, mode, 0
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        cid = request.match_info["cid"]
        if self.mode == "stall":
            await self.release.wait()  # stalls until the test ends
        if self.mode == "huge":  # no CAR support; raw answers far over the 2 MiB block cap
            if request.query.get("format") == "car":
                raise web.HTTPNotFound()
            return web.Response(body=bytes(3 * 1024 * 1024), content_type="application/vnd.ipld.raw")
        if request.query.get("format") == "car":
            body = b"".join(iter_car(self.store, cid))
            if self.mode == "truncate":
                body = body[: len(body) // 2]
            elif self.mode == "tamper":  # every block flipped, sent under its true CID
                body = car_header([cid])
                for c in walk_dag(self.store, cid):
                    cb, block = parse_cid(c).binary, _flip(self.store.get(c))
                    body += varint(len(cb) + len(block)) + cb + block
            return web.Response(body=body, content_type="application/vnd.ipld.car")
        self.raw_requests += 1
        data = self.store.get(cid)
        if self.mode == "tamper":
            data = _flip(data)
        return web.Response(body=data, content_type="application/vnd.ipld.raw")


@pytest.fixture
async def fake(store):
    root = add_bytes(store, DATA)
    servers = []

    async def make(mode: str):
        fg = FakeGateway(store, root, mode)
        app = web.Application()
        app.router.add_get("/ipfs/{cid}", fg.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        servers.append((runner, fg))
        host, port = runner.addresses[0][:2]
        return fg, root, f"http://{host}:{port}"

    try:
        yield make
    finally:
        for runner, fg in servers:
            fg.release.set()
            await runner.cleanup()


async def test_client_rejects_tampered_block_and_writes_nothing(fake, tmp_path):
    fg, root, url = await fake("tamper")
    dst = Blockstore(tmp_path / "dst")
    with pytest.raises(BlockMismatch):
        await fetch_dag_from_gateway(dst, root, url)
    assert dst.stat()["blocks"] == 0  # every block arrived flipped: none was stored


async def test_client_truncated_car_falls_back_to_raw(fake, tmp_path):
    fg, root, url = await fake("truncate")
    dst = Blockstore(tmp_path / "dst")
    await fetch_dag_from_gateway(dst, root, url)
    assert fg.raw_requests >= 1 and b"".join(iter_file(dst, root)) == DATA


async def test_stalled_gateway_times_out_then_next_gateway_serves(fake, served, tmp_path):
    _, root, stalled = await fake("stall")
    _, root2, good = served
    assert root == root2
    dst = Blockstore(tmp_path / "dst")
    used = await asyncio.wait_for(fetch_from_gateways(dst, root, [stalled, good], timeout=0.5), 20)
    assert used == good and missing_blocks(dst, root) == []


async def test_all_gateways_failing_is_one_clear_error(fake, tmp_path):
    _, root, url = await fake("tamper")
    with pytest.raises(FetchError, match="no gateway could supply"):
        await fetch_from_gateways(Blockstore(tmp_path / "dst"), root, [url])


async def test_client_refuses_block_over_the_cap(fake, tmp_path):
    _, root, url = await fake("huge")
    dst = Blockstore(tmp_path / "dst")
    with pytest.raises(BlockTooLarge):
        await fetch_dag_from_gateway(dst, root, url)
    assert dst.stat()["blocks"] == 0
