"""`paris-node add | get | pin | gc | repo stat | gateway`: the content store from the command line.

`add` mirrors `ipfs add` (same flag names; no flags = Kubo's defaults, CIDv0); `get` tries the local store,
then peers (`--peer`), then gateways (`--gateway`), then Kubo (`--ipfs-api` or $PARIS_IPFS_API), verifies
every block and writes the file atomically.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from pathlib import Path

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import PROFILES, ImportProfile, parse_cid
from paris_node.content.dag import add_file, check_regular_file, export_file, missing_blocks
from paris_node.content.errors import ContentError, FetchError, StoreFull
from paris_node.errors import UsageError

log = logging.getLogger(__name__)
ipfs_api_option = click.option(
    "--ipfs-api",
    metavar="MADDR",
    default=None,
    envvar="PARIS_IPFS_API",
    help="Kubo RPC address, e.g. /ip4/127.0.0.1/tcp/5001 (or $PARIS_IPFS_API).",
)


def _store(state: CliState) -> Blockstore:
    return Blockstore(state.home.ensure().blocks_dir)


def build_profile(
    profile: str, cid_version: int | None, raw_leaves: bool | None, chunker: str | None
) -> ImportProfile:
    """Resolve `ipfs add`-style flags on top of a named profile (Kubo: --cid-version 1 implies raw leaves)."""
    if profile not in PROFILES:
        raise UsageError(f"--profile {profile!r} is unknown; choose one of {', '.join(PROFILES)}")
    p = PROFILES[profile]
    changes: dict = {}
    if cid_version is not None:
        if cid_version not in (0, 1):
            raise UsageError(f"--cid-version must be 0 or 1, not {cid_version}")
        changes["cid_version"] = cid_version
        if raw_leaves is None and cid_version == 1:
            changes["raw_leaves"] = True
    if raw_leaves is not None:
        changes["raw_leaves"] = raw_leaves
    if chunker is not None:
        m = re.fullmatch(r"size-(\d+)", chunker)
        if not m or not 1 <= int(m.group(1)) <= 1024 * 1024:
            raise UsageError(f"--chunker {chunker!r}: only size-N with 1 <= N <= 1048576 is supported")
        changes["chunk_size"] = int(m.group(1))
    if not changes:
        return p
    new = dataclasses.replace(p, **changes)
    named = [k for k, v in PROFILES.items() if dataclasses.replace(v, name="") == dataclasses.replace(new, name="")]
    return dataclasses.replace(new, name=named[0] if named else "custom")


@main.command("add")
@home_option
@click.argument("path", type=click.Path(dir_okay=True, path_type=Path))
@click.option("-n", "--only-hash", is_flag=True, help="Only compute the CID; store nothing.")
@click.option("-Q", "--quiet", "quiet", is_flag=True, help="Print only the root CID.")
@click.option("--cid-version", type=int, default=None, help="0 (Qm..., default) or 1 (bafy..., implies raw leaves).")
@click.option("--raw-leaves/--no-raw-leaves", default=None, help="Leaves as raw blocks (default: per CID version).")
@click.option("--chunker", default=None, metavar="size-N", help="Fixed chunk size, e.g. size-262144.")
@click.option(
    "--profile",
    default="kubo-default",
    show_default=True,
    type=click.Choice(list(PROFILES)),
    help="Named import profile (chunker, CID version, leaves); the other flags adjust it.",
)
@click.option("--pin/--no-pin", default=True, show_default=True, help="Pin the root so gc keeps it.")
@ipfs_api_option
@click.pass_obj
def add_command(
    state: CliState,
    path: Path,
    only_hash: bool,
    quiet: bool,
    cid_version: int | None,
    raw_leaves: bool | None,
    chunker: str | None,
    profile: str,
    pin: bool,
    ipfs_api: str | None,
) -> None:
    """Add a file: print its CID, identical to what `ipfs add` prints with the same flags."""
    prof = build_profile(profile, cid_version, raw_leaves, chunker)
    check_regular_file(path)
    store = None if only_hash else _store(state)
    root = add_file(store, path, prof, pin=pin and not only_hash)
    if ipfs_api and not only_hash:
        from paris_node.content.kubo import KuboClient

        asyncio.run(KuboClient(ipfs_api).add_checked(path, prof, ours=root))
    click.echo(root if quiet else f"added {root} {path.name}")


async def _from_peers(store: Blockstore, cid: str, peers: list[str]) -> None:
    """Fetch over libp2p from the given peer multiaddrs (needs the exchange module; skipped if absent)."""
    try:
        from hivemind.p2p import P2P

        from paris_node.content.exchange import fetch_dag
    except ImportError as e:
        log.warning("peer exchange unavailable (%s); skipping peers", e)
        return
    from multiaddr import Multiaddr

    ids = [Multiaddr(p).value_for_protocol("p2p") for p in peers]
    p2p = await P2P.create(initial_peers=[Multiaddr(p) for p in peers])
    try:
        await fetch_dag(p2p, store, cid, ids, deadline_s=600.0)
    finally:
        await p2p.shutdown()


async def _from_kubo(store: Blockstore, cid: str, ipfs_api: str) -> None:
    from paris_node.content.kubo import KuboClient

    kubo = KuboClient(ipfs_api)
    while missing := await asyncio.to_thread(missing_blocks, store, cid):
        for c in missing:
            store.put(c, await kubo.block_get(c))


def fetch_to_store(store: Blockstore, cid: str, peers: list[str], gateways: list[str], ipfs_api: str | None) -> str:
    """Complete the DAG in the store from the first source that can; returns the source's name."""
    if not missing_blocks(store, cid):
        return "local store"
    sources = []
    if peers:
        sources.append(("peers", lambda: _from_peers(store, cid, peers)))
    if gateways:
        from paris_node.content.gateway_client import fetch_from_gateways

        sources.append(("gateways", lambda: fetch_from_gateways(store, cid, gateways)))
    if ipfs_api:
        sources.append(("kubo", lambda: _from_kubo(store, cid, ipfs_api)))
    if not sources:
        raise FetchError(f"{cid} is not in the local store; pass --peer, --gateway URL or --ipfs-api MADDR")
    for name, run in sources:
        try:
            asyncio.run(run())
        except StoreFull:
            raise
        except Exception as e:  # a bad source is survived; the next one is tried
            log.warning("%s could not supply %s: %s", name, cid, e)
        if not missing_blocks(store, cid):
            return name
    raise FetchError(f"no source could supply every block of {cid}")


@main.command("get")
@home_option
@click.argument("cid")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path), help="File to write.")
@click.option("--peer", "peers", multiple=True, metavar="MADDR", help="Peer multiaddr ending in /p2p/<id>.")
@click.option("--gateway", "gateways", multiple=True, metavar="URL", help="IPFS HTTP gateway, e.g. https://ipfs.io")
@ipfs_api_option
@click.option("--pin/--no-pin", default=False, help="Pin the fetched DAG.")
@click.pass_obj
def get_command(
    state: CliState,
    cid: str,
    output: Path,
    peers: tuple[str, ...],
    gateways: tuple[str, ...],
    ipfs_api: str | None,
    pin: bool,
) -> None:
    """Fetch a file by CID, verify every block, write it atomically to -o."""
    parse_cid(cid)
    store = _store(state)
    if pin:  # before fetching, so a concurrent gc keeps the blocks as they arrive
        store.pin(cid)
    source = fetch_to_store(store, cid, list(peers), list(gateways), ipfs_api)
    size = export_file(store, cid, output)
    click.echo(f"wrote {output} ({size} bytes, from {source})", err=True)


@main.group("pin")
def pin_group() -> None:
    """Pins: roots the garbage collector keeps (with everything below them)."""


@pin_group.command("ls")
@home_option
@click.pass_obj
def pin_ls(state: CliState) -> None:
    """List pinned roots."""
    for cid in _store(state).pins():
        click.echo(f"{cid} recursive")


@pin_group.command("add")
@home_option
@click.argument("cid")
@click.pass_obj
def pin_add(state: CliState, cid: str) -> None:
    """Pin CID (and everything below it) so gc keeps it."""
    parse_cid(cid)
    _store(state).pin(cid)
    click.echo(f"pinned {cid} recursively")


@pin_group.command("rm")
@home_option
@click.argument("cid")
@click.pass_obj
def pin_rm(state: CliState, cid: str) -> None:
    """Unpin CID (its blocks go at the next gc unless another pin reaches them)."""
    parse_cid(cid)
    try:
        _store(state).unpin(cid)
    except KeyError:
        raise UsageError(f"{cid} is not pinned (see `paris-node pin ls`)") from None
    click.echo(f"unpinned {cid}")


@main.command("gc")
@home_option
@click.pass_obj
def gc_command(state: CliState) -> None:
    """Delete every block no pin reaches."""
    removed, freed = _store(state).gc()
    click.echo(f"removed {removed} blocks, freed {freed} bytes")


@main.group("repo")
def repo_group() -> None:
    """The local content store."""


@repo_group.command("stat")
@home_option
@click.pass_obj
def repo_stat(state: CliState) -> None:
    """Blocks, bytes and pins of the local content store."""
    store = _store(state)
    st = store.stat()
    click.echo(f"blocks  {st['blocks']}\nbytes   {st['bytes']}\npins    {len(store.pins())}\npath    {store.root}")


@main.command("gateway")
@home_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface; anything else exposes the store.")
@click.option("--port", default=8080, show_default=True, type=int, help="TCP port.")
@click.pass_obj
def gateway_command(state: CliState, host: str, port: int) -> None:
    """Serve the local store as a trustless IPFS HTTP gateway until interrupted."""
    from paris_node.content.gateway import start_gateway, stop_gateway

    async def serve() -> None:
        runner = await start_gateway(_store(state), host, port)
        click.echo(f"serving /ipfs/ on http://{host}:{port}", err=True)
        try:
            await asyncio.Event().wait()
        finally:
            await stop_gateway(runner)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


__all__ = ["ContentError", "build_profile", "fetch_to_store"]
