"""The HTTP side: what each route answers, the security headers on every answer, `status --open`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from dash_helpers import png_bytes

from paris_node.cli import main
from paris_node.dashboard.server import CSP, URL_FILE, DashboardServer, Snapshot, parse_listen
from paris_node.errors import UsageError

SNAP = Snapshot(
    html="<!doctype html><title>t</title><p>hello</p>",
    api=json.dumps({"format": "paris-node/status-api/v1", "jobs": []}).encode(),
    samples={"expert-0": png_bytes()},
    partition=None,
)


@pytest.fixture
def server():
    srv = DashboardServer(lambda: SNAP, "127.0.0.1", 0).start()
    try:
        yield srv
    finally:
        srv.stop()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_routes_and_headers(server):
    base = server.url
    for path, status, ctype in [
        ("", 200, "text/html"),
        ("api/status", 200, "application/json"),
        ("static/dashboard.css", 200, "text/css"),
        ("sample/expert-0.png?cid=x", 200, "image/png"),
        ("sample/expert-1.png", 404, None),
        ("sample/..%2Fidentity.key.png", 404, None),
        ("partition.png", 404, None),
    ]:
        code, headers, body = _get(base + path)
        assert code == status, path
        assert headers["Content-Security-Policy"] == CSP and headers["X-Content-Type-Options"] == "nosniff"
        if ctype:
            assert headers["Content-Type"].startswith(ctype), path
    assert "script-src 'none'" in CSP and "default-src 'self'" in CSP
    assert json.loads(_get(base + "api/status")[2])["format"] == "paris-node/status-api/v1"
    assert _get(base + "sample/expert-0.png")[2] == SNAP.samples["expert-0"]


def test_status_open_prints_the_url_of_this_homes_page(server, tmp_path):
    runner = CliRunner()
    got = runner.invoke(main, ["--home", str(tmp_path), "status", "--open"])
    assert got.exit_code != 0 and "no dashboard is running" in got.output
    server.write_url(tmp_path)
    got = runner.invoke(main, ["--home", str(tmp_path), "status", "--open"], env={"DISPLAY": ""})
    assert got.exit_code == 0 and got.output.strip() == server.url
    server.stop()
    assert not (tmp_path / URL_FILE).exists()  # a stopped page withdraws its note


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8787") == ("127.0.0.1", 8787)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8787", "localhost:", ":80", "host:99999"):
        with pytest.raises(UsageError, match="HOST:PORT"):
            parse_listen(bad)


async def test_the_page_mounts_on_the_gateways_server(tmp_path):
    from aiohttp.test_utils import TestClient, TestServer

    from paris_node.content.blockstore import Blockstore
    from paris_node.content.gateway import make_app
    from paris_node.dashboard.server import add_routes

    app = add_routes(make_app(Blockstore(tmp_path / "blocks")), lambda: SNAP)
    async with TestClient(TestServer(app)) as client:
        page = await client.get("/")
        assert page.status == 200 and page.headers["Content-Security-Policy"] == CSP
        assert (await client.get("/ipfs/bafkqaaa")).status == 200  # the gateway still answers beside it


def test_dashboard_command_refuses_a_bad_listen_address_before_joining(tmp_path):
    got = CliRunner().invoke(main, ["--home", str(tmp_path), "dashboard", "--listen", "8787", "--join", "/ip4/x"])
    assert got.exit_code == 2 and "HOST:PORT" in got.output
