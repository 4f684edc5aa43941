"""The page's stylesheet, served as `/static/dashboard.css` (a Python string, so it ships with the package)."""

CSS = """
:root { --fg: #1d2330; --muted: #6b7280; --line: #e3e6ec; --bg: #f6f7f9; --card: #fff;
        --train: #2563eb; --val: #e4572e; --ok: #15803d; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 14px 24px; background: #1d2330; color: #fff; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header .sub { margin: 2px 0 0; color: #c9cfda; }
main { padding: 8px 24px 24px; max-width: 1400px; }
h2 { font-size: 16px; margin: 18px 0 8px; }
h3 { font-size: 14px; margin: 0 0 6px; font-family: ui-monospace, monospace; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 14px;
          margin-top: 14px; }
dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 0; }
dl.run dt { color: var(--muted); }
dl.run dd { margin: 0; overflow-wrap: anywhere; }
.id { white-space: nowrap; }
code, .id, .job { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; font-size: 12.5px; }
td { overflow-wrap: anywhere; white-space: normal; }
tr.router td:first-child .job { color: #7c3aed; }
.state { padding: 1px 7px; border-radius: 9px; font-size: 12px; background: #eef0f4; }
.state.active { background: #dcfce7; color: var(--ok); }
.state.claiming { background: #fef3c7; color: var(--warn); }
.state.free { color: var(--muted); }
.warn { color: var(--warn); }
.muted { color: var(--muted); }
.standbys { margin: 8px 0 0; color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
svg.plot { display: block; max-width: 100%; height: auto; }
svg.plot .frame { fill: #fbfcfd; stroke: var(--line); }
svg.plot .grid { stroke: var(--line); stroke-dasharray: 3 3; }
svg.plot .tick { fill: var(--muted); font-size: 10px; font-family: ui-monospace, monospace; }
svg.plot .empty { fill: var(--muted); font-size: 12px; text-anchor: middle; }
svg.plot .series { fill: none; stroke-width: 1.8; }
svg.plot .series.train { stroke: var(--train); }
svg.plot .series.val { stroke: var(--val); }
svg.plot circle.series.train { fill: var(--train); }
svg.plot circle.series.val { fill: var(--val); }
svg.plot .legend { font-size: 11px; }
svg.plot .legend.train { fill: var(--train); }
svg.plot .legend.val { fill: var(--val); }
figure.sample { margin: 8px 0 0; }
figure.sample img { image-rendering: pixelated; max-width: 100%; height: auto; border-radius: 4px;
                    border: 1px solid var(--line); }
figure.sample figcaption { color: var(--muted); font-size: 12px; }
figure.sample ol { margin: 2px 0 0; padding-left: 20px; }
img.partition { image-rendering: pixelated; max-width: 100%; border: 1px solid var(--line); }
ul.notes { margin: 0; padding-left: 18px; color: var(--warn); overflow-wrap: anywhere; }
footer { padding: 10px 24px 24px; color: var(--muted); }
a { color: var(--train); }
"""
