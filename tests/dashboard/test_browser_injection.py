"""In a real browser: markup and script a peer puts in a caption, a status string or a job name is shown as
text and never runs; the page itself loads under its CSP without a single violation."""

from __future__ import annotations

from browser import chromium, csp_violations, image_loaded
from dash_helpers import HOSTILE, lease, png_bytes, pointer, run_info, status

from paris_node.dashboard.history import History
from paris_node.dashboard.render import render_page
from paris_node.dashboard.server import DashboardServer, Snapshot
from paris_node.dashboard.view import CheckpointInfo, SampleInfo, ViewInputs, build_view
from paris_node.identity import Identity
from paris_node.records import now_ms

HOSTILE_CAPTION = HOSTILE + '"><svg onload="window.__pwned=3">'


def _snapshot() -> Snapshot:
    t = now_ms()
    a, b = Identity.generate(), Identity.generate()
    history = History("run")
    for step, loss in ((10, 0.9), (20, 0.7), (30, 0.6)):
        history.add("expert/0", step, t - 1000 * (40 - step), train_loss=loss, val_loss=loss + 0.05)
    sample = png_bytes(["a red circle", HOSTILE_CAPTION], size=32)
    inp = ViewInputs(
        run=run_info(name=f"injection {HOSTILE}"),
        jobs=["expert/0", "expert/1", "router"],
        leases=[lease(a, "expert/0", t)],
        statuses=[
            status(a, "expert/0", 30, t, loss="0.6"),
            status(b, f"router{HOSTILE}", 0, t, role=f"standby{HOSTILE}"),
        ],
        pointers={"expert/0": [pointer(a, "expert/0", "bafkmanifest", 30, t)]},
        checkpoints={"bafkmanifest": CheckpointInfo("bafkmanifest", a.node_id, 30, t, {"val_loss": 0.65})},
        samples={"expert/0": SampleInfo(30, "bafkmanifest", "bafksample", 64, 32, ("a red circle", HOSTILE_CAPTION))},
        history=history,
        notes=[f"expert/1: sample not shown: {HOSTILE}"],
    )
    view = build_view(inp, t)
    import json

    return Snapshot(render_page(view), json.dumps(view).encode(), {"expert-0": sample})


def test_injected_markup_is_shown_escaped_and_never_runs():
    snap = _snapshot()
    server = DashboardServer(lambda: snap).start()
    try:
        with chromium() as driver:
            driver.get(server.url)
            assert driver.execute_script("return window.__pwned === undefined")
            assert driver.execute_script("return document.querySelectorAll('script, iframe, object').length") == 0
            assert driver.execute_script("return document.querySelectorAll('[onerror], [onload]').length") == 0
            text = driver.find_element("tag name", "body").text
            assert HOSTILE in text and HOSTILE_CAPTION in text  # shown, as text
            assert image_loaded(driver, "figure.sample img")
            assert csp_violations(driver) == []
    finally:
        server.stop()
