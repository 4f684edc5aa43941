"""The page as one object a node starts and stops: collector thread + HTTP server, for one run.

Used by `paris-node start --dashboard HOST:PORT` (inside a training node, reading through its DHT and block
exchange) and by `paris-node dashboard --join MADDR` (a reader node that trains nothing).
"""

from __future__ import annotations

import json
import logging
import os
import webbrowser
from collections.abc import Sequence
from pathlib import Path

from paris_node.content.blockstore import Blockstore
from paris_node.dashboard.collector import Collector
from paris_node.dashboard.server import URL_FILE, DashboardServer
from paris_node.dashboard.source import DhtSource
from paris_node.errors import UsageError
from paris_node.home import Home

log = logging.getLogger(__name__)


class Dashboard:
    def __init__(
        self,
        home: Home,
        manifest,  # paris_node.data.runspec.RunManifest
        dht,
        exchange,
        store: Blockstore,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        every_s: float = 5.0,
        served_by: str | None = None,
        witnesses: Sequence[str] = (),
    ):
        # whose watched view of the owners the page trusts (swarm/claims.attested): the node serving it, or the
        # peers a standalone page joined through
        witnesses = [served_by] if served_by and not witnesses else list(witnesses)
        source = DhtSource(dht, manifest.run_id, exchange, store, witnesses=witnesses)
        refresh = max(2, round(every_s))
        self.home = home
        self.collector = Collector(home, manifest, source, every_s=every_s, refresh_s=refresh, served_by=served_by)
        self.server = DashboardServer(self.collector.snapshot, host, port)

    @property
    def url(self) -> str | None:
        return self.server.url

    def start(self) -> Dashboard:
        self.server.start()
        self.collector.start()
        self.server.write_url(self.home.root)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.stop(timeout)
        self.collector.stop(timeout)


def running_url(home: Home) -> str:
    """The URL of the page a process serves for this home (`start --dashboard` or `dashboard`), or UsageError."""
    path = Path(home.root) / URL_FILE
    hint = "start one with `paris-node dashboard --join MADDR` or `paris-node start --dashboard 127.0.0.1:8787`"
    try:
        info = json.loads(path.read_text())
        url, pid = str(info["url"]), int(info["pid"])
    except FileNotFoundError:
        raise UsageError(f"no dashboard is running for {home.root}; {hint}") from None
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{path} is unreadable; {hint}") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise UsageError(f"the dashboard of {home.root} is gone (process {pid} exited); {hint}") from None
    except PermissionError:
        pass  # alive, another user's
    return url


def open_in_browser(url: str) -> bool:
    """Open `url` where a desktop session exists (never launches a browser on a headless server)."""
    import sys

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32")):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False
