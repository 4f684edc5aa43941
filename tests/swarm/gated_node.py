"""A swarm node held at the start line: `python tests/swarm/gated_node.py <python -m paris_node.swarm args>`.

The node starts, joins and reports `ready` like any other (it is `paris_node.swarm.__main__.main`), then waits
for a line on its stdin before its first claim. A test that writes that line to several such nodes at once
releases them into the claim at the same instant (swarm_harness.SwarmNode.release). Test-only: the product has
no start line; this is the `on_session` hook of `main`, a blocking read (no polling), bounded by a deadline.
"""

from __future__ import annotations

import sys
import threading

from paris_node.swarm.__main__ import main
from paris_node.swarm.runner import Session

HOLD_S = 300.0  # a test that never releases its nodes fails on its own deadline long before this


def _hold(session: Session) -> None:
    released = threading.Event()

    def read_line() -> None:
        sys.stdin.readline()  # a line, or EOF when the test is gone: either way the hold ends
        released.set()

    threading.Thread(target=read_line, daemon=True).start()
    released.wait(HOLD_S)


if __name__ == "__main__":
    main(on_session=_hold)
