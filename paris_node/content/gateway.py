"""Trustless IPFS HTTP gateway over the local blockstore (aiohttp).

`GET /ipfs/{cid}` answers with one raw block (`Accept: application/vnd.ipld.raw` or `?format=raw`), a CARv1 of
the DAG in DFS order without duplicates (`application/vnd.ipld.car` or `?format=car`), or the file bytes
(anything else). Raw and CAR responses carry `Content-Disposition: attachment`. CARs honour `dag-scope=
block|entity|all` and `entity-bytes=from:to` (only the blocks that verify that byte range: a resumable or
partial download of a large weights file). Everything that can be known before the first byte is answered
with a status: a file request for a directory is 501, a range outside the file 400, a missing root 404.
`GET /ipfs/bafkqaaa` is the standard probe (empty identity block). Listens on 127.0.0.1 by
default; exposing it on another interface is the caller's explicit choice.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from paris_node.content.blockstore import Blockstore
from paris_node.content.car import SCOPES, ByteRange, entity_size, iter_car, resolve_range
from paris_node.content.cid import IDENTITY, parse_cid
from paris_node.content.dag import iter_file
from paris_node.content.errors import BlockNotFound, ContentError, UnsupportedCid

__all__ = ["CAR_TYPE", "RAW_TYPE", "make_app", "start_gateway", "stop_gateway"]

log = logging.getLogger(__name__)
RAW_TYPE = "application/vnd.ipld.raw"
CAR_TYPE = "application/vnd.ipld.car"
_CAR_RESPONSE_TYPE = f"{CAR_TYPE}; version=1; order=dfs; dups=n"
_IMMUTABLE = "public, max-age=29030400, immutable"
_STORE_KEY = web.AppKey("store", Blockstore)


def _wanted_format(request: web.Request) -> str:
    fmt = request.query.get("format")
    if fmt in ("raw", "car"):
        return fmt
    if fmt:
        raise web.HTTPBadRequest(text=f"unsupported format {fmt!r}: use raw or car\n")
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        media = part.split(";")[0].strip()
        if media == RAW_TYPE:
            return "raw"
        if media == CAR_TYPE:
            version = [p.strip() for p in part.split(";")[1:] if p.strip().startswith("version=")]
            if version and version[0] != "version=1":
                raise web.HTTPNotAcceptable(text="only CAR version=1 is served\n")
            return "car"
    return "file"


def _car_params(request: web.Request) -> tuple[str, ByteRange | None]:
    """`dag-scope` and `entity-bytes` (trustless gateway spec); a bad value is a 400 before any bytes."""
    scope = request.query.get("dag-scope", "all")
    if scope not in SCOPES:
        raise web.HTTPBadRequest(text=f"dag-scope={scope!r}: use block, entity or all\n")
    raw = request.query.get("entity-bytes")
    if raw is None:
        return scope, None
    try:
        lo_s, hi_s = raw.split(":")
        rng = (int(lo_s), None if hi_s == "*" else int(hi_s))
    except ValueError:
        raise web.HTTPBadRequest(
            text=f"entity-bytes={raw!r}: use from:to (inclusive offsets, to may be *)\n"
        ) from None
    if rng[1] is not None and rng[0] >= 0 and rng[1] >= 0 and rng[1] < rng[0]:
        raise web.HTTPBadRequest(text=f"entity-bytes={raw!r}: to is before from\n")
    return "entity", rng


def _root_problem(store: Blockstore, cid: str, rng: ByteRange | None) -> web.HTTPException | None:
    """What must be answered before any bytes: a file request for a non-file, a range outside the file."""
    size = entity_size(store, cid)
    if rng is None:
        if size is None:  # a directory (or other non-file): no listing here; say so with a status, not 200
            return web.HTTPNotImplemented(
                text=f"{cid} is not a file (a UnixFS directory?): directory listings are not served; "
                "ask for format=car (dag-scope=entity enumerates it)\n"
            )
        return None
    if size is not None and resolve_range(rng, size) is None and size > 0:
        return web.HTTPBadRequest(text=f"entity-bytes is entirely outside the {size}-byte entity\n")
    return None


async def _next(it):
    """Advance a blocking iterator in a worker thread (blocks come from disk)."""
    return await asyncio.to_thread(next, it, None)


async def _handle(request: web.Request) -> web.StreamResponse:
    store: Blockstore = request.app[_STORE_KEY]
    cid = request.match_info["cid"]
    if request.match_info.get("rest"):
        raise web.HTTPNotImplemented(text="paths inside a DAG are not supported; request the file's own CID\n")
    try:
        info = parse_cid(cid)
    except UnsupportedCid as e:
        raise web.HTTPNotImplemented(text=f"{e}\n") from None
    except ContentError as e:
        raise web.HTTPBadRequest(text=f"{e}\n") from None
    fmt = _wanted_format(request)
    headers = {"X-Ipfs-Path": f"/ipfs/{cid}", "X-Content-Type-Options": "nosniff", "Cache-Control": _IMMUTABLE}

    if info.mh_code == IDENTITY:
        data = info.digest
    elif fmt != "car":
        try:
            data = await asyncio.to_thread(store.get, cid)
        except BlockNotFound:
            raise web.HTTPNotFound(text=f"block {cid} is not held by this node\n") from None
    if fmt == "raw":
        disposition = f'attachment; filename="{cid}.bin"'
        raw_headers = {**headers, "Etag": f'"{cid}.raw"', "Content-Disposition": disposition}
        return web.Response(body=data, content_type=RAW_TYPE, headers=raw_headers)
    if info.mh_code == IDENTITY and fmt == "file":
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)
    if fmt == "car" and info.mh_code != IDENTITY and not await asyncio.to_thread(store.has, cid):
        raise web.HTTPNotFound(text=f"block {cid} is not held by this node\n")
    scope, rng = _car_params(request) if fmt == "car" else ("all", None)
    if info.mh_code != IDENTITY and (fmt == "file" or rng is not None):
        try:
            problem = await asyncio.to_thread(_root_problem, store, cid, rng)
        except (ContentError, ValueError) as e:  # a root block that does not decode: nothing is sent
            raise web.HTTPBadGateway(text=f"{cid}: the stored root block does not decode ({e})\n") from None
        if problem is not None:
            raise problem

    resp = web.StreamResponse(headers=headers)
    if fmt == "car":
        resp.content_type = CAR_TYPE
        resp.headers["Content-Type"] = _CAR_RESPONSE_TYPE
        tag = "" if scope == "all" and rng is None else f".{scope}" + ("" if rng is None else f".{rng[0]}-{rng[1]}")
        resp.headers["Etag"] = f'"{cid}.car{tag}"'
        resp.headers["Content-Disposition"] = f'attachment; filename="{cid}.car"'
        pieces = iter_car(store, cid, scope=scope, entity_bytes=rng)
    else:
        resp.content_type = "application/octet-stream"
        resp.headers["Etag"] = f'"{cid}"'
        pieces = iter_file(store, cid)
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    try:
        while (piece := await _next(pieces)) is not None:
            await resp.write(piece)
    except (ContentError, ValueError) as e:
        # Headers are sent: the only honest signal left is a truncated body (clients check completeness).
        log.debug("gateway: %s for %s ended early: %s", fmt, cid, e)
        if request.transport is not None:
            request.transport.close()
        return resp
    await resp.write_eof()
    return resp


def make_app(store: Blockstore) -> web.Application:
    app = web.Application()
    app[_STORE_KEY] = store
    app.router.add_route("GET", "/ipfs/{cid}", _handle)
    app.router.add_route("GET", "/ipfs/{cid}/{rest:.*}", _handle)
    app.router.add_route("HEAD", "/ipfs/{cid}", _handle)
    return app


async def start_gateway(store: Blockstore, host: str = "127.0.0.1", port: int = 8080) -> web.AppRunner:
    """Serve `store` as a trustless gateway; port 0 picks a free port (see `runner.addresses`)."""
    runner = web.AppRunner(make_app(store), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("gateway listening on %s", ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses))
    return runner


async def stop_gateway(runner: web.AppRunner) -> None:
    await runner.cleanup()
