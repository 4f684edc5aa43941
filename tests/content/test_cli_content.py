"""`paris-node add | get | pin | gc | repo stat` through click's CliRunner."""

from __future__ import annotations

import asyncio
import errno
import os
import threading

import pytest
from click.testing import CliRunner
from conftest import det_bytes

from paris_node.cli import main
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import file_cid
from paris_node.content.dag import add_bytes
from paris_node.content.gateway import start_gateway, stop_gateway

HELLO = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"


@pytest.fixture
def cli(tmp_path):
    home = tmp_path / "home"

    def run(*args: str, ok: bool = True):
        res = CliRunner().invoke(main, ["--home", str(home), *args], catch_exceptions=False)
        assert (res.exit_code == 0) == ok, res.output
        return res

    run.home = home
    return run


@pytest.fixture
def hello(tmp_path):
    p = tmp_path / "hello.txt"
    p.write_bytes(b"hello world\n")
    return p


def test_add_like_ipfs_add(cli, hello, tmp_path):
    assert cli("add", str(hello)).output == f"added {HELLO} hello.txt\n"
    assert cli("add", "-Q", str(hello)).output.strip() == HELLO
    big = tmp_path / "big.bin"
    big.write_bytes(det_bytes("x", 3 * 1024 * 1024 + 7))
    assert cli("add", "-Q", "--cid-version", "1", str(big)).output.strip() == (
        "bafybeiacopkqmkdh55qutxss6tb4okrprc565jz3bvk6upax6f4lumh5nm"
    )
    assert cli(
        "add", "-Q", "--cid-version=1", "--raw-leaves", "--chunker", "size-262144", str(big)
    ).output.strip() == (file_cid(big, "cid-v1"))
    assert cli("add", "-Q", "--profile", "unixfs-v1-2025", str(big)).output.strip() == file_cid(big, "unixfs-v1-2025")
    out = cli("add", "-Q", "--cid-version", "1", "--no-raw-leaves", str(hello)).output.strip()
    assert out.startswith("bafybei")  # dag-pb leaf in CIDv1


def test_only_hash_stores_nothing(cli, hello):
    assert cli("add", "--only-hash", "-Q", str(hello)).output.strip() == HELLO
    assert "blocks  0" in cli("repo", "stat").output


def test_add_bad_input(cli, tmp_path):
    assert "is a directory" in cli("add", str(tmp_path), ok=False).output
    assert "not a regular file" in cli("add", "/dev/null", ok=False).output
    f = tmp_path / "f"
    f.write_bytes(b"x")
    assert "--chunker" in cli("add", "--chunker", "rabin-1-2-3", str(f), ok=False).output
    assert "--chunker" in cli("add", "--chunker", "size-2000000", str(f), ok=False).output


def test_pin_gc_repo_stat(cli, hello):
    cli("add", str(hello))  # pins by default, like ipfs add
    assert cli("pin", "ls").output == f"{HELLO} recursive\n"
    assert "removed 0 blocks" in cli("gc").output
    cli("pin", "rm", HELLO)
    assert "not pinned" in cli("pin", "rm", HELLO, ok=False).output
    assert "removed 1 blocks" in cli("gc").output
    assert "blocks  0" in cli("repo", "stat").output
    cli("pin", "add", HELLO)
    assert HELLO in cli("pin", "ls").output
    assert "is not a CID" in cli("pin", "add", "nonsense", ok=False).output


def test_get_from_local_store(cli, hello, tmp_path):
    cli("add", str(hello))
    out = tmp_path / "o" / "hello.out"
    cli("get", HELLO, "-o", str(out))
    assert out.read_bytes() == b"hello world\n"


def test_get_bad_cids(cli, tmp_path):
    assert "is not a CID" in cli("get", "Qmnope", "-o", str(tmp_path / "x"), ok=False).output
    res = cli(
        "get", "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "-o", str(tmp_path / "x"), ok=False
    )
    assert "codec 0x71" in res.output
    res = cli("get", HELLO, "-o", str(tmp_path / "x"), ok=False)
    assert "--gateway" in res.output and not (tmp_path / "x").exists()


@pytest.fixture
def gateway(tmp_path):
    """A gateway in its own thread and loop (the CLI runs asyncio.run itself)."""
    store = Blockstore(tmp_path / "remote")
    data = det_bytes("cli-get", 900_000)
    root = add_bytes(store, data)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    def serve():
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(start_gateway(store, "127.0.0.1", 0))
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(20)
    port = holder["runner"].addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", root, data
    finally:
        asyncio.run_coroutine_threadsafe(stop_gateway(holder["runner"]), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(20)


def test_get_from_gateway_verifies_and_writes(cli, gateway, tmp_path):
    url, root, data = gateway
    out = tmp_path / "fetched.bin"
    res = cli("get", root, "-o", str(out), "--gateway", "http://127.0.0.1:9", "--gateway", url)
    assert out.read_bytes() == data and "from gateways" in res.output
    assert Blockstore(cli.home / "blocks").has(root)


def test_get_full_disk_leaves_no_partial_file(cli, gateway, tmp_path, monkeypatch):
    url, root, data = gateway
    cli("get", root, "-o", str(tmp_path / "first.bin"), "--gateway", url)  # now local
    out = tmp_path / "full.bin"
    real = os.write

    def enospc(fd, buf):
        real(fd, bytes(buf)[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", enospc)
    res = cli("get", root, "-o", str(out), ok=False)
    monkeypatch.setattr(os, "write", real)
    assert "disk full" in res.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".full")] == []


@pytest.fixture
def kubo_thread():
    """The Kubo RPC stand-in of test_kubo.py (Kubo cannot be installed here), served from its own thread."""
    from aiohttp import web
    from test_kubo import KuboStandIn

    standin = KuboStandIn()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder = {}

    async def start():
        runner = web.AppRunner(standin.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        return runner

    def serve():
        asyncio.set_event_loop(loop)
        holder["runner"] = loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    assert started.wait(20)
    try:
        yield standin, f"/ip4/127.0.0.1/tcp/{holder['runner'].addresses[0][1]}"
    finally:
        asyncio.run_coroutine_threadsafe(holder["runner"].cleanup(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(20)


def test_add_to_kubo_and_get_back_from_it(cli, kubo_thread, tmp_path, monkeypatch):
    standin, maddr = kubo_thread
    f = tmp_path / "k.bin"
    f.write_bytes(det_bytes("cli-kubo", 700_000))
    root = cli("add", "-Q", "--cid-version", "1", "--ipfs-api", maddr, str(f)).output.strip()
    assert root == file_cid(f, "cid-v1") and root in standin.pins
    other = tmp_path / "other-home"
    monkeypatch.setenv("PARIS_IPFS_API", maddr)  # the env var works like --ipfs-api
    res = CliRunner().invoke(main, ["--home", str(other), "get", root, "-o", str(tmp_path / "back.bin")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "back.bin").read_bytes() == f.read_bytes() and "from kubo" in res.output


@pytest.mark.swarm
@pytest.mark.timeout(120)
def test_get_from_peer_over_libp2p(cli, tmp_path):
    """`get --peer MADDR` fetches over the libp2p exchange (a p2pd provider in a thread, stopped after)."""
    from hivemind.p2p import P2P

    from paris_node.content.exchange import BlockServer

    store = Blockstore(tmp_path / "provider")
    data = det_bytes("cli-peer", 600_000)
    root = add_bytes(store, data)
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()

    async def start():
        p2p = await P2P.create()
        await BlockServer(p2p, store).start()
        return p2p, [str(m) for m in await p2p.get_visible_maddrs()]

    p2p, maddrs = asyncio.run_coroutine_threadsafe(start(), loop).result(60)
    try:
        out = tmp_path / "peer.bin"
        res = cli("get", root, "-o", str(out), "--peer", maddrs[0])
        assert out.read_bytes() == data and "from peers" in res.output
    finally:
        asyncio.run_coroutine_threadsafe(p2p.shutdown(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        t.join(20)
