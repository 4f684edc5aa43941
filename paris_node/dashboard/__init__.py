"""The swarm's page: a node serves `/` (HTML) and `/api/status` (JSON) about its run.

Layers, lowest first: `history` (bounded loss history, a JSON file in the home), `samples` (is this a PNG we
may show?), `view` (records + manifests + history -> the JSON view model), `plots` (SVG loss curves), `render`
(view model -> escaped HTML); `collector` reads the swarm in a background thread into a cached snapshot and
`server` serves that snapshot over aiohttp. Only `collector` and `server` touch the network.
"""
