"""Publishing as a callback on a background thread, so the training loop never waits on the network."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

Publish = Callable[[Path, int, dict], None]


class BackgroundPublisher:
    """Runs `publish(path, step, metrics)` on one worker thread so the loop never waits on the network.

    At most one call runs and one waits; a newer checkpoint replaces a waiting older one (only the newest matters
    to the swarm). A failing callback is logged and survived. `close` publishes what is pending, then joins.
    """

    def __init__(self, publish: Publish | None):
        self._fn = publish
        self._cv = threading.Condition()
        self._pending: tuple[Path, int, dict] | None = None
        self._running: Path | None = None
        self._closing = False
        self.published: list[int] = []
        self._thread = None
        if publish is not None:
            self._thread = threading.Thread(target=self._work, name="paris-publish", daemon=True)
            self._thread.start()

    def submit(self, path: Path, step: int, metrics: dict) -> None:
        if self._fn is None:
            return
        with self._cv:
            if self._pending is not None:
                log.debug("publish of step %d skipped: superseded by step %d", self._pending[1], step)
            self._pending = (path, step, metrics)
            self._cv.notify()

    def in_use(self) -> set[Path]:
        with self._cv:
            return {p for p in (self._running, self._pending and self._pending[0]) if p is not None}

    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closing:
                    self._cv.wait()
                if self._pending is None:
                    return
                (path, step, metrics), self._pending = self._pending, None
                self._running = path
            try:
                self._fn(path, step, metrics)
                self.published.append(step)
            except Exception:
                log.warning("publish callback failed for step %d", step, exc_info=True)
            with self._cv:
                self._running = None

    def close(self, timeout: float) -> None:
        if self._thread is None:
            return
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("publish still running after %.0f s; leaving it in the background", timeout)
