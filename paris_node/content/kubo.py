"""A small Kubo RPC client (aiohttp): version, add (explicit import parameters), cat, pin/add, block/get.

`ipfshttpclient` is not used: its last release (0.7.0, 2021) refuses every daemon from 0.8.0 on in `connect()`,
and Kubo is far past that. Every call is a POST, as Kubo's RPC requires. After `add` the client compares Kubo's
CID with the one paris-node computed and raises KuboMismatch if they differ (e.g. a daemon whose
`Import.UnixFSFileMaxLinks` differs from the profile: the RPC has no per-call max-links parameter).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import aiohttp
from multiaddr import Multiaddr

from paris_node.content.cid import ImportProfile, file_cid, resolve_profile, verify_block
from paris_node.content.errors import ContentError, KuboMismatch
from paris_node.errors import UsageError

__all__ = ["IPFS_API_ENV", "KuboClient", "KuboError", "api_url", "import_params", "publish_to_kubo"]

IPFS_API_ENV = "PARIS_IPFS_API"


class KuboError(ContentError):
    """The Kubo daemon could not be reached or answered with an error."""


def api_url(maddr: str | None = None) -> str | None:
    """`/ip4/127.0.0.1/tcp/5001` (or an http:// URL) -> `http://127.0.0.1:5001`; None if neither flag nor env."""
    maddr = maddr or os.environ.get(IPFS_API_ENV)
    if not maddr:
        return None
    if maddr.startswith(("http://", "https://")):
        return maddr.rstrip("/")
    try:
        ma = Multiaddr(maddr)
        host = None
        for proto in ("ip4", "ip6", "dns", "dns4", "dns6"):
            try:
                host = ma.value_for_protocol(proto)
            except Exception:
                continue
            if host:
                host = f"[{host}]" if proto == "ip6" else host
                break
        port = ma.value_for_protocol("tcp")
    except Exception:
        host = port = None
    if not host or not port:
        raise UsageError(f"--ipfs-api {maddr!r} is not a multiaddr like /ip4/127.0.0.1/tcp/5001")
    return f"http://{host}:{port}"


def import_params(profile: ImportProfile) -> dict[str, str]:
    """`ipfs add` parameters that pin down the DAG (Kubo's defaults can be changed in its config)."""
    return {
        "cid-version": str(profile.cid_version),
        "raw-leaves": "true" if profile.raw_leaves else "false",
        "chunker": f"size-{profile.chunk_size}",
        "hash": "sha2-256",
    }


class KuboClient:
    def __init__(self, maddr: str | None = None, timeout: float = 60.0) -> None:
        url = api_url(maddr)
        if url is None:
            raise UsageError(f"no Kubo API: pass --ipfs-api /ip4/127.0.0.1/tcp/5001 or set {IPFS_API_ENV}")
        self.base = f"{url}/api/v0"
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)

    async def _post(self, path: str, params: dict | None = None, data=None) -> bytes:
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as s:
                async with s.post(f"{self.base}/{path}", params=params, data=data) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        msg = body.decode("utf-8", "replace")
                        try:
                            msg = json.loads(msg).get("Message", msg)
                        except ValueError:
                            pass
                        raise KuboError(f"Kubo {path} failed (HTTP {resp.status}): {msg.strip()}")
                    return body
        except (aiohttp.ClientError, TimeoutError) as e:
            raise KuboError(f"cannot reach Kubo at {self.base}: {e}") from None

    async def version(self) -> str:
        return json.loads(await self._post("version"))["Version"]

    async def add(self, path: str | os.PathLike, profile: ImportProfile | str, pin: bool = True) -> str:
        """Add a file with the profile's explicit import parameters; returns Kubo's root CID."""
        prof = resolve_profile(profile)
        params = {**import_params(prof), "pin": "true" if pin else "false", "quieter": "true", "progress": "false"}
        path = Path(path)
        with open(path, "rb") as f:
            form = aiohttp.FormData()
            form.add_field("file", f, filename=path.name, content_type="application/octet-stream")
            body = await self._post("add", params, form)
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or "Hash" not in lines[-1]:
            raise KuboError(f"Kubo add returned no CID: {body[:200]!r}")
        return lines[-1]["Hash"]

    async def add_checked(self, path: str | os.PathLike, profile: ImportProfile | str, ours: str | None = None) -> str:
        """Add and pin in Kubo, then insist Kubo's CID equals ours (computed here if not given)."""
        prof = resolve_profile(profile)
        ours = ours or file_cid(path, prof)
        theirs = await self.add(path, prof, pin=True)
        if theirs != ours:
            raise KuboMismatch(
                f"Kubo made {theirs} but paris-node made {ours} for {path} with profile {prof.name}: check the "
                f"daemon's Import config (max links {prof.max_links}) and version"
            )
        return theirs

    async def cat(self, cid: str) -> bytes:
        return await self._post("cat", {"arg": cid})

    async def pin_add(self, cid: str) -> None:
        await self._post("pin/add", {"arg": cid, "recursive": "true"})

    async def block_get(self, cid: str) -> bytes:
        """One block, hash-checked before it is returned."""
        data = await self._post("block/get", {"arg": cid})
        verify_block(cid, data)
        return data


def publish_to_kubo(path: str | os.PathLike, profile: ImportProfile | str, maddr: str | None = None) -> str | None:
    """Synchronous helper for publishers: add + pin in Kubo and check the CID; None when no Kubo is configured
    (neither `maddr` nor $PARIS_IPFS_API). Call it from a worker thread, not from inside a running event loop."""
    if api_url(maddr) is None:
        return None
    import asyncio

    return asyncio.run(KuboClient(maddr).add_checked(path, profile))
