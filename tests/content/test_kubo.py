"""Kubo RPC client against a local stand-in of the endpoints it uses.

Kubo cannot be installed on these machines, so `KuboStandIn` reproduces the RPC surface we call, as Kubo
documents it: every call is a POST (GET gets 405), `add` takes a multipart `file` field and the import
parameters in the query string and answers NDJSON `{"Name","Hash","Size"}`, errors are JSON
`{"Message","Code","Type":"error"}` with HTTP 500. Its `max_links` stands for the daemon's
`Import.UnixFSFileMaxLinks` config, which the RPC cannot override per call.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from aiohttp import web
from conftest import det_bytes

from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import PROFILES, BlockMismatch, FileImporter, ImportProfile, file_cid
from paris_node.content.dag import add_bytes
from paris_node.content.errors import KuboMismatch
from paris_node.content.kubo import KuboClient, KuboError, api_url
from paris_node.errors import UsageError


class KuboStandIn:
    def __init__(self, max_links: int = 174) -> None:
        self.max_links = max_links
        self.blocks: dict[str, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.pins: set[str] = set()
        self.add_params: list[dict] = []

    def app(self) -> web.Application:
        app = web.Application()
        for name in ("version", "add", "cat", "pin/add", "block/get"):
            app.router.add_route("*", f"/api/v0/{name}", self._dispatch)
        return app

    @staticmethod
    def _error(msg: str) -> web.Response:
        return web.json_response({"Message": msg, "Code": 0, "Type": "error"}, status=500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="405 - Method Not Allowed")
        name = request.path.removeprefix("/api/v0/")
        arg = request.query.get("arg", "")
        if name == "version":
            return web.json_response({"Version": "0.39.0", "Commit": "", "Repo": "16", "System": "amd64/linux"})
        if name == "add":
            return await self._add(request)
        if name == "cat":
            return web.Response(body=self.files[arg]) if arg in self.files else self._error(f"block not found: {arg}")
        if name == "pin/add":
            self.pins.add(arg)
            return web.json_response({"Pins": [arg]})
        if name == "block/get":
            return (
                web.Response(body=self.blocks[arg])
                if arg in self.blocks
                else self._error("block was not found locally")
            )
        return web.Response(status=404)

    async def _add(self, request: web.Request) -> web.Response:
        q = request.query
        self.add_params.append(dict(q))
        chunker = q.get("chunker", "size-262144")
        cid_version = int(q.get("cid-version", "0"))
        raw = q.get("raw-leaves", "true" if cid_version == 1 else "false") == "true"
        profile = ImportProfile("kubo", cid_version, int(chunker.removeprefix("size-")), self.max_links, raw)
        reader = await request.multipart()
        part = await reader.next()
        imp, data = FileImporter(profile), bytearray()
        while chunk := await part.read_chunk(65536):
            data += chunk
            self.blocks.update(imp.update(chunk))
        root, rest = imp.finish()
        self.blocks.update(rest)
        self.files[root] = bytes(data)
        if q.get("pin", "true") == "true":
            self.pins.add(root)
        line = {"Name": part.filename, "Hash": root, "Size": str(len(data))}
        return web.Response(text=json.dumps(line) + "\n", content_type="application/x-ndjson")


@pytest.fixture
async def kubo():
    standin = KuboStandIn()
    runner = web.AppRunner(standin.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        yield standin, f"/ip4/127.0.0.1/tcp/{port}"
    finally:
        await runner.cleanup()


def test_api_url_parsing(monkeypatch):
    assert api_url("/ip4/127.0.0.1/tcp/5001") == "http://127.0.0.1:5001"
    assert api_url("/dns4/localhost/tcp/5002") == "http://localhost:5002"
    monkeypatch.setenv("PARIS_IPFS_API", "/ip4/10.0.0.2/tcp/5001")
    assert api_url(None) == "http://10.0.0.2:5001"
    monkeypatch.delenv("PARIS_IPFS_API")
    assert api_url(None) is None
    with pytest.raises(UsageError, match="multiaddr"):
        api_url("/ip4/127.0.0.1/udp/5001")


@pytest.mark.parametrize("profile", ["kubo-default", "cid-v1"])
async def test_add_checked_pins_and_matches(kubo, tmp_path, profile):
    standin, maddr = kubo
    p = tmp_path / "f.bin"
    p.write_bytes(det_bytes("kubo", 600_000))
    client = KuboClient(maddr)
    assert await client.version() == "0.39.0"
    cid = await client.add_checked(p, profile)
    assert cid == file_cid(p, profile) and cid in standin.pins
    params = standin.add_params[-1]
    assert params["chunker"] == f"size-{PROFILES[profile].chunk_size}" and params["hash"] == "sha2-256"
    assert params["raw-leaves"] == ("true" if PROFILES[profile].raw_leaves else "false")
    assert await client.cat(cid) == p.read_bytes()


async def test_mismatched_daemon_config_is_caught(kubo, tmp_path):
    """unixfs-v1-2025 needs 1024 links; a daemon left at 174 builds another DAG for files over 174 MiB.
    Shown here with a tiny chunk size so the file stays small."""
    standin, maddr = kubo
    p = tmp_path / "f.bin"
    p.write_bytes(det_bytes("links", 200 * 1024))
    profile = replace(PROFILES["unixfs-v1-2025"], name="small", chunk_size=1024)
    with pytest.raises(KuboMismatch, match="Import config"):
        await KuboClient(maddr).add_checked(p, profile)
    standin.max_links = 1024
    assert await KuboClient(maddr).add_checked(p, profile) == file_cid(p, profile)


async def test_block_get_verifies(kubo, tmp_path):
    standin, maddr = kubo
    root = add_bytes(Blockstore(tmp_path), b"x" * 10)
    standin.blocks[root] = b"not it"
    client = KuboClient(maddr)

    with pytest.raises(BlockMismatch):
        await client.block_get(root)
    with pytest.raises(KuboError, match="not found"):
        await client.block_get("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")


async def test_unreachable_daemon_is_a_clear_error():
    with pytest.raises(KuboError, match="cannot reach Kubo"):
        await KuboClient("/ip4/127.0.0.1/tcp/9", timeout=2).version()


def test_publish_to_kubo_is_a_no_op_without_a_daemon(tmp_path, monkeypatch):
    from paris_node.content.kubo import publish_to_kubo

    monkeypatch.delenv("PARIS_IPFS_API", raising=False)
    p = tmp_path / "f"
    p.write_bytes(b"x")
    assert publish_to_kubo(p, "unixfs-v1-2025") is None
