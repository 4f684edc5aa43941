"""The page's HTTP side (aiohttp): `/`, `/api/status`, `/sample/<job>.png`, `/partition.png`, the stylesheet.

Handlers only read the latest `Snapshot` (built by the collector thread), so a request never waits on the DHT,
the content exchange or a render, and a slow browser never slows training. Every answer carries a strict
Content-Security-Policy (no script at all, resources from this origin only), `nosniff` and no-referrer.
`add_routes(app, source)` mounts the page on any aiohttp app (e.g. the gateway's); `DashboardServer` runs it on
its own port in a thread of its own, for synchronous callers like the node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from paris_node.dashboard.style import CSS
from paris_node.errors import UsageError
from paris_node.fsutil import atomic_write

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'; img-src 'self'; style-src 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
URL_FILE = "dashboard.json"  # in the node home: where the running page is, for `paris-node status --open`


@dataclass(frozen=True)
class Snapshot:
    """Everything the server answers with, built at once in the background."""

    html: str
    api: bytes  # /api/status body (JSON)
    samples: dict[str, bytes] = field(default_factory=dict)  # "expert-0" -> verified PNG bytes
    partition: bytes | None = None


LOADING = Snapshot(
    html="<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='2'>"
    "<title>paris-node</title></head><body><p>reading the swarm…</p></body></html>",
    api=json.dumps({"format": "paris-node/status-api/v1", "loading": True}).encode(),
)

SnapshotSource = Callable[[], Snapshot]
_SOURCE = web.AppKey("dashboard_source", object)


def _resp(body: bytes | str, content_type: str) -> web.Response:
    data = body.encode() if isinstance(body, str) else body
    charset = "utf-8" if content_type.startswith(("text/", "application/json")) else None
    return web.Response(body=data, content_type=content_type, charset=charset, headers=HEADERS)


async def _page(request: web.Request) -> web.Response:
    return _resp(request.app[_SOURCE]().html, "text/html")


async def _api(request: web.Request) -> web.Response:
    return _resp(request.app[_SOURCE]().api, "application/json")


async def _css(request: web.Request) -> web.Response:
    return _resp(CSS, "text/css")


async def _sample(request: web.Request) -> web.Response:
    data = request.app[_SOURCE]().samples.get(request.match_info["name"])
    if data is None:
        raise web.HTTPNotFound(text="no verified sample for this job\n", headers=HEADERS)
    return _resp(data, "image/png")


async def _partition(request: web.Request) -> web.Response:
    data = request.app[_SOURCE]().partition
    if data is None:
        raise web.HTTPNotFound(text="no partition preview yet\n", headers=HEADERS)
    return _resp(data, "image/png")


def add_routes(app: web.Application, source: SnapshotSource) -> web.Application:
    app[_SOURCE] = source
    app.router.add_get("/", _page)
    app.router.add_get("/api/status", _api)
    app.router.add_get("/static/dashboard.css", _css)
    app.router.add_get(r"/sample/{name:(expert-[0-9]{1,4}|router)}.png", _sample)
    app.router.add_get("/partition.png", _partition)
    return app


@web.middleware
async def security_headers(request: web.Request, handler) -> web.StreamResponse:
    """The same headers on every answer of the page's own server, errors and unknown paths included."""
    try:
        resp = await handler(request)
    except web.HTTPException as e:
        e.headers.update(HEADERS)
        raise
    resp.headers.update(HEADERS)
    return resp


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {value!r}: use HOST:PORT, e.g. 127.0.0.1:8787 (or 0.0.0.0:8787 to share it)")
    return host.strip("[]"), int(port)


class DashboardServer:
    """Serves `source()` on host:port from a thread with its own event loop; `url` once started."""

    def __init__(self, source: SnapshotSource, host: str = "127.0.0.1", port: int = 0):
        self.source, self.host, self.port = source, host, port
        self.url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._url_file: Path | None = None

    def start(self, timeout: float = 15.0) -> DashboardServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._setup())
            except BaseException as e:  # the port taken, a bad host: reported to start()
                errors.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="paris-dashboard", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise UsageError(f"the dashboard did not start listening on {self.host}:{self.port} in {timeout:.0f} s")
        if errors:
            raise UsageError(f"the dashboard cannot listen on {self.host}:{self.port}: {errors[0]}") from errors[0]
        log.info("dashboard at %s", self.url)
        return self

    async def _setup(self) -> None:
        app = add_routes(web.Application(middlewares=[security_headers]), self.source)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"

    def write_url(self, home_root: Path) -> None:
        """Note where the page is in the node home (read by `paris-node status --open`); removed on stop."""
        self._url_file = home_root / URL_FILE
        atomic_write(self._url_file, json.dumps({"url": self.url, "pid": os.getpid()}))

    def stop(self, timeout: float = 10.0) -> None:
        if self._url_file is not None:
            try:  # only our own note: another process may have started a page for this home since
                if json.loads(self._url_file.read_text()).get("pid") == os.getpid():
                    self._url_file.unlink()
            except (OSError, ValueError, AttributeError):
                pass
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
