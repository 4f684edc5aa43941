"""CAR import/export and the trustless gateway's MUSTs and SHOULDs: Content-Disposition, statuses before any
bytes for directories and bad ranges, `dag-scope`, `entity-bytes` (verifiable ranges), no identity blocks."""

from __future__ import annotations

import hashlib
import io

import aiohttp
import pytest
from click.testing import CliRunner
from conftest import det_bytes

from paris_node.cli import main
from paris_node.content.blockstore import Blockstore
from paris_node.content.car import import_car, iter_car, read_car, scope_cids, write_car
from paris_node.content.cid import DAG_PB, SHA2_256, BlockMismatch, CidInfo
from paris_node.content.dag import add_bytes, iter_file, walk_dag
from paris_node.content.gateway import start_gateway, stop_gateway

DATA = det_bytes("scope", 1_100_000)
PROFILE = "cid-v1"  # raw leaves of 256 KiB: five under one root
CHUNK = 256 * 1024


def directory(store: Blockstore) -> str:
    block = b"\x0a\x02\x08\x01"  # PBNode{Data: UnixFS{Type: Directory}}, no links: an empty directory
    cid = str(CidInfo(1, DAG_PB, SHA2_256, hashlib.sha256(block).digest()))
    store.put(cid, block)
    return cid


def blocks_of(car: bytes) -> list[tuple[str, bytes]]:
    _, it = read_car(io.BytesIO(car))
    return list(it)


def test_car_export_then_import_into_another_store_gives_the_same_file(store, tmp_path):
    root = add_bytes(store, DATA, PROFILE)
    write_car(store, root, tmp_path / "x.car")
    other = Blockstore(tmp_path / "other")
    roots, n, missing = import_car(other, tmp_path / "x.car")
    assert roots == [root] and n == len(set(walk_dag(store, root))) and missing == []
    assert b"".join(iter_file(other, root)) == DATA and other.pins() == [root]


def test_a_tampered_car_is_refused_at_the_bad_block(store, tmp_path):
    root = add_bytes(store, DATA, PROFILE)
    car = bytearray(b"".join(iter_car(store, root)))
    car[-100] ^= 0xFF  # inside the last block
    (tmp_path / "bad.car").write_bytes(bytes(car))
    other = Blockstore(tmp_path / "other")
    with pytest.raises(BlockMismatch):
        import_car(other, tmp_path / "bad.car")
    assert other.pins() == []


def test_car_commands(store, tmp_path):
    home = tmp_path / "home"
    mine = Blockstore(home / "blocks")
    root = add_bytes(mine, DATA, PROFILE)
    run = CliRunner().invoke
    got = run(main, ["--home", str(home), "car", "export", root, str(tmp_path / "x.car")])
    assert got.exit_code == 0, got.output
    got = run(main, ["--home", str(tmp_path / "h2"), "car", "import", str(tmp_path / "x.car")])
    assert got.exit_code == 0 and root in got.output
    missing = run(main, ["--home", str(tmp_path / "h3"), "car", "export", root, str(tmp_path / "y.car")])
    assert missing.exit_code == 2 and "not held whole" in missing.output and not (tmp_path / "y.car").exists()


def test_scopes_and_ranges_select_the_right_blocks(store):
    root = add_bytes(store, DATA, PROFILE)
    every = list(walk_dag(store, root))
    assert list(scope_cids(store, root, "block")) == [root]
    assert list(scope_cids(store, root, "entity")) == every == list(scope_cids(store, root, "all"))
    leaves = every[1:]
    assert list(scope_cids(store, root, entity_bytes=(0, 9))) == [root, leaves[0]]
    assert list(scope_cids(store, root, entity_bytes=(CHUNK - 1, CHUNK))) == [root, leaves[0], leaves[1]]
    assert list(scope_cids(store, root, entity_bytes=(-10, None))) == [root, leaves[-1]]
    assert list(scope_cids(store, root, entity_bytes=(2 * CHUNK, -1))) == [root, *leaves[2:]]
    assert list(scope_cids(store, root, entity_bytes=(len(DATA) + 5, None))) == [root]  # outside: root only
    d = directory(store)
    assert list(scope_cids(store, d, "entity", entity_bytes=(0, 10))) == [d]  # not a file: range ignored


@pytest.fixture
async def gateway(store):
    runner = await start_gateway(store, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await stop_gateway(runner)


async def _req(method: str, url: str):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url) as r:
            return r.status, r.headers, await r.read()


async def test_raw_and_car_responses_are_attachments(store, gateway):
    root = add_bytes(store, DATA, PROFILE)
    status, headers, _ = await _req("GET", f"{gateway}/ipfs/{root}?format=raw")
    assert status == 200 and headers["Content-Disposition"] == f'attachment; filename="{root}.bin"'
    status, headers, _ = await _req("GET", f"{gateway}/ipfs/{root}?format=car")
    assert status == 200 and headers["Content-Disposition"] == f'attachment; filename="{root}.car"'


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_directory_as_a_file_is_an_error_status_before_any_bytes(store, gateway, method):
    d = directory(store)
    status, _, body = await _req(method, f"{gateway}/ipfs/{d}")
    assert status == 501 and (method == "HEAD" or b"directory listings are not served" in body)
    status, _, body = await _req("GET", f"{gateway}/ipfs/{d}?format=car&dag-scope=entity")
    assert status == 200 and [c for c, _ in blocks_of(body)] == [d]


async def test_dag_scope_and_entity_bytes_over_http(store, gateway):
    root = add_bytes(store, DATA, PROFILE)
    leaves = list(walk_dag(store, root))[1:]
    status, headers, body = await _req("GET", f"{gateway}/ipfs/{root}?format=car&dag-scope=block")
    assert status == 200 and [c for c, _ in blocks_of(body)] == [root] and ".block" in headers["Etag"]
    status, headers, body = await _req("GET", f"{gateway}/ipfs/{root}?format=car&entity-bytes=300000:300009")
    got = blocks_of(body)  # every block verified by read_car against its CID
    assert status == 200 and [c for c, _ in got] == [root, leaves[1]]
    assert got[1][1][300000 - CHUNK : 300010 - CHUNK] == DATA[300000:300010]
    assert headers["Etag"] != f'"{root}.car"'
    for bad in ("5000000:*", "9:2", "x:y"):
        status, _, _ = await _req("GET", f"{gateway}/ipfs/{root}?format=car&entity-bytes={bad}")
        assert status == 400
    status, _, _ = await _req("GET", f"{gateway}/ipfs/{root}?format=car&dag-scope=most")
    assert status == 400
