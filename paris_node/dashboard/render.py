"""The page: the view model of view.py as one HTML document, every value escaped.

No script at all; refreshing is a `<meta http-equiv="refresh">`, styling is the package's stylesheet
(`/static/dashboard.css`), plots are inline SVG with presentation classes only, so the page works under
`Content-Security-Policy: default-src 'self'; script-src 'none'` and offline. Pure module.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any

from paris_node.dashboard.plots import loss_svg

CSS_PATH = "/static/dashboard.css"
SAMPLE_MIN_HEIGHT = 96  # px on the page


def e(value: Any) -> str:
    """Escape anything for HTML text or a quoted attribute; None shows as a dash."""
    return "–" if value is None else escape(str(value), quote=True)


def short(node_id: Any) -> str:
    if not isinstance(node_id, str) or not node_id:
        return "–"
    text = node_id if len(node_id) <= 14 else f"{node_id[:8]}…{node_id[-4:]}"
    return f'<span class="id" title="{e(node_id)}">{e(text)}</span>'


def num(x: Any, digits: int = 4) -> str:
    return "–" if not isinstance(x, (int, float)) or isinstance(x, bool) else e(f"{x:.{digits}g}")


def dur(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "–"
    s = float(seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _row(cells: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _run(view: dict[str, Any]) -> str:
    run = view["run"]
    publishers = run["publishers"]
    policy = "open (anyone; held-out loss decides)" if publishers == "open" else f"{len(publishers)} allowed signers"
    items = [
        ("run id", f"<code>{e(run['id'])}</code>"),
        ("name", e(run["name"])),
        ("dataset", e(run["dataset"])),
        ("experts (K)", e(run["experts"])),
        ("presets", f"expert {e(run['expert_preset'])} · router {e(run['router_preset'])}"),
        ("publishers", e(policy)),
        ("val-loss threshold", num(run.get("val_loss_threshold"))),
    ]
    if publishers != "open":
        items.append(("allowed", " ".join(short(p) for p in publishers)))
    return '<dl class="run">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _jobs(view: dict[str, Any]) -> str:
    head = (
        "job", "owner", "lease", "left", "step", "train loss", "val loss", "samples/s", "checkpoint", "age", "holders"
    )  # fmt: skip
    rows = []
    for j in view["jobs"]:
        ck = j["checkpoint"]
        ck_cell = "–"
        if ck is not None:
            mark = "" if ck["verified"] else ' <span class="warn" title="manifest not verified yet">?</span>'
            ck_cell = f'<code title="{e(ck["cid"])}">{e(ck["cid"][:14])}…</code> @{e(ck["step"])}{mark}'
        holders = ck["holders"] if ck else []
        rows.append(
            _row(
                [
                    f'<span class="job">{e(j["job"])}</span>',
                    short(j["owner"]),
                    f'<span class="state {e(j["lease_state"])}">{e(j["lease_state"])}</span>',
                    dur(j["lease_left_s"]),
                    e(j["step"]),
                    num(j["train_loss"]),
                    num(j["val_loss"]),
                    num(j["samples_per_s"], 3),
                    ck_cell,
                    dur(ck["age_s"]) if ck else "–",
                    f'<span title="{e(" ".join(holders))}">{len(holders)}</span>' if ck else "–",
                ],
                cls=f"job-row {e(j['kind'])}",
            )
        )
    header = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    return f'<table id="jobs"><thead>{header}</thead><tbody>{"".join(rows)}</tbody></table>'


def _cards(view: dict[str, Any]) -> str:
    cards = []
    for j in view["jobs"]:
        parts = [f"<h3>{e(j['job'])}</h3>", loss_svg(j["history"], title=f"{j['job']} loss")]
        s = j["sample"]
        if s is not None:
            zoom = max(1, -(-SAMPLE_MIN_HEIGHT // max(1, int(s["height"]))))  # small samples: crisp, bigger
            prompts = "".join(f"<li>{e(p)}</li>" for p in s["prompts"])
            parts.append(
                f'<figure class="sample"><img src="{e(s["url"])}" alt="{e(j["job"])} sample at step {e(s["step"])}"'
                f' width="{int(s["width"]) * zoom}" height="{int(s["height"]) * zoom}">'
                f"<figcaption>step {e(s['step'])}<ol>{prompts}</ol></figcaption></figure>"
            )
        elif j["kind"] == "expert":
            parts.append('<p class="muted">no verified sample yet</p>')
        cards.append(f'<div class="card" id="card-{e(j["job"].replace("/", "-"))}">{"".join(parts)}</div>')
    return f'<div class="cards">{"".join(cards)}</div>'


def _nodes(view: dict[str, Any]) -> str:
    head = (
        "<tr><th>node</th><th>role</th><th>job</th><th>step</th><th>version</th><th>status age</th><th>error</th></tr>"
    )
    rows = [
        _row(
            [
                short(n["node_id"]),
                e(n["role"]),
                e(n["job"]),
                e(n["step"]),
                e(n["version"]),
                dur(n["age_s"]),
                "" if n.get("error") is None else f'<span class="warn">{e(n["error"])}</span>',
            ]
        )
        for n in view["nodes"]
    ]
    return f'<table id="nodes"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def render_page(view: dict[str, Any], refresh_s: int = 5) -> str:
    """The whole page for one snapshot of the view model."""
    run = view["run"]
    standbys = " ".join(short(s) for s in view["standbys"]) or '<span class="muted">none</span>'
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(view["generated_ms"] / 1000))
    partition = (
        f'<img class="partition" src="{e(view["partition"]["url"])}" alt="partition preview: one row per expert">'
        if view.get("partition")
        else '<p class="muted">partition preview not available yet</p>'
    )
    notes = "".join(f"<li>{e(n)}</li>" for n in view["notes"])
    served = f" · served by {short(view['served_by'])}" if view.get("served_by") else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>paris-node · {e(run['name'])}</title>"
        f'<link rel="stylesheet" href="{CSS_PATH}"></head><body>'
        f'<header><h1>paris-node swarm</h1><p class="sub">run <b>{e(run["name"])}</b>{served} · {e(when)}</p>'
        "</header><main>"
        f"<section><h2>Run</h2>{_run(view)}</section>"
        f'<section><h2>Jobs</h2>{_jobs(view)}<p class="standbys">standbys: {standbys}</p></section>'
        f"<section><h2>Losses and samples</h2>{_cards(view)}</section>"
        f"<section><h2>Partition</h2>{partition}</section>"
        f"<section><h2>Nodes</h2>{_nodes(view)}</section>"
        + (f'<section><h2>Notes</h2><ul class="notes">{notes}</ul></section>' if notes else "")
        + f'</main><footer>refreshes every {int(refresh_s)} s · <a href="/api/status">/api/status</a> (JSON)'
        "</footer></body></html>\n"
    )
