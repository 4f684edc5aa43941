"""Fetch a DAG from any IPFS HTTP gateway, trusting nothing it sends.

First one CAR request for the whole DAG (`?format=car`); every block is hash-checked and stored only if it is
part of the requested DAG. A gateway may cut a CAR short (it answers 200 and stops when it lacks a block), so
completeness is checked by walking the local copy; whatever is still missing is then fetched block by block
(`?format=raw`). A block that fails its hash abandons that gateway; the caller moves on to the next source.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp

from paris_node.content.blockstore import Blockstore
from paris_node.content.car import CarDecoder
from paris_node.content.cid import MAX_BLOCK_SIZE, block_links, multihash_of, parse_cid, verify_block
from paris_node.content.dag import missing_blocks
from paris_node.content.errors import BlockTooLarge, ContentError, FetchError, StoreFull, TruncatedStream
from paris_node.content.gateway import CAR_TYPE, RAW_TYPE

__all__ = ["fetch_dag_from_gateway", "fetch_from_gateways"]

log = logging.getLogger(__name__)
DEFAULT_TIMEOUT = 30.0
_PARALLEL = 8


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    # Per-read deadline, not total: a big DAG may take long, a stalled gateway may not.
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_connect=seconds, sock_read=seconds)


async def _fetch_car(session: aiohttp.ClientSession, base: str, store: Blockstore, root: str) -> int:
    """Stream a CAR into the store; returns blocks stored. Raises BlockMismatch on a tampered block."""
    url = f"{base}/ipfs/{root}?format=car&dag-scope=all"
    wanted = {multihash_of(root)}
    stored = 0
    dec = CarDecoder()
    async with session.get(url, headers={"Accept": f"{CAR_TYPE}; version=1; order=dfs; dups=n"}) as resp:
        if resp.status != 200:
            raise FetchError(f"{base} answered HTTP {resp.status} to the CAR request")
        async for piece in resp.content.iter_chunked(1024 * 1024):
            for cid, block in dec.feed(piece):
                info = parse_cid(cid)
                if info.multihash not in wanted:
                    log.debug("gateway %s sent block %s outside the DAG: ignored", base, cid)
                    continue
                await asyncio.to_thread(store.put, cid, block)
                stored += 1
                wanted.update(multihash_of(c) for c in block_links(info, block))
    try:
        dec.close()
    except TruncatedStream as e:
        log.debug("gateway %s: %s; completing block by block", base, e)
    return stored


async def _fetch_raw(session: aiohttp.ClientSession, base: str, store: Blockstore, cid: str) -> None:
    async with session.get(f"{base}/ipfs/{cid}?format=raw", headers={"Accept": RAW_TYPE}) as resp:
        if resp.status != 200:
            raise FetchError(f"{base} answered HTTP {resp.status} for block {cid}")
        if resp.content_length is not None and resp.content_length > MAX_BLOCK_SIZE:
            raise BlockTooLarge(f"{base} claims {resp.content_length} bytes for block {cid}")
        data = bytearray()
        async for piece in resp.content.iter_chunked(256 * 1024):
            data += piece
            if len(data) > MAX_BLOCK_SIZE:
                raise BlockTooLarge(f"{base} sent more than {MAX_BLOCK_SIZE} bytes for block {cid}")
    verify_block(cid, data)
    await asyncio.to_thread(store.put, cid, bytes(data))


async def fetch_dag_from_gateway(
    store: Blockstore, root: str, gateway_url: str, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Make the DAG under `root` complete in `store` from one gateway, or raise (ContentError/FetchError)."""
    parse_cid(root)
    base = gateway_url.rstrip("/")
    async with aiohttp.ClientSession(timeout=_timeout(timeout)) as session:
        if await asyncio.to_thread(missing_blocks, store, root):
            try:
                await _fetch_car(session, base, store, root)
            except (FetchError, aiohttp.ClientError, asyncio.TimeoutError) as e:
                log.debug("gateway %s: CAR request failed (%s); trying raw blocks", base, e)
        sem = asyncio.Semaphore(_PARALLEL)

        async def one(cid: str) -> None:
            async with sem:
                await _fetch_raw(session, base, store, cid)

        while missing := await asyncio.to_thread(missing_blocks, store, root):
            try:
                await asyncio.gather(*(one(c) for c in missing))
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                raise FetchError(f"gateway {base}: {type(e).__name__}: {e}") from None


async def fetch_from_gateways(
    store: Blockstore, root: str, gateways: list[str], timeout: float = DEFAULT_TIMEOUT
) -> str:
    """Try gateways in order until one completes the DAG; returns the URL that did. Logs each failure once."""
    errors = []
    for url in gateways:
        try:
            await fetch_dag_from_gateway(store, root, url, timeout)
            return url
        except StoreFull:
            raise
        except (ContentError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            log.warning("gateway %s failed for %s: %s", url, root, e)
            errors.append(f"{url}: {e}")
    raise FetchError(f"no gateway could supply {root}: " + "; ".join(errors) if errors else "no gateways configured")
