"""`paris-node verify [--repair]`: check the whole cache and content store, and mend what differs.

The store is checked block by block (every block re-hashed against its CID); the cache folder by folder
(every installed file against its manifest entry: size, safetensors header, sha256). A repair deletes bad
blocks, gets missing ones again (from the local store when it still holds them, else through `fetch`: the
swarm), and reinstalls only the damaged files of a folder, swapping the folder in atomically. Nothing here
trusts the damaged bytes: a file is installed only after it matches its signed manifest again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from paris_node.checkpoint import sha256_file
from paris_node.content.blockstore import Blockstore
from paris_node.content.cid import block_links, verify_block
from paris_node.content.dag import missing_blocks
from paris_node.content.errors import ContentError
from paris_node.errors import ParisError
from paris_node.home import Home
from paris_node.node import cache

log = logging.getLogger(__name__)

# fetch(root_cid, providers) -> None, as in node/fetcher.py; providers(installed) -> peers to ask
FetchFn = Callable[[str, Sequence[str]], object]


@dataclass
class Finding:
    where: str  # "store" or "<run>/<job>"
    problem: str
    repaired: bool = False


def verify_store(store: Blockstore, repair: bool) -> list[Finding]:
    return [
        Finding("store", f"block {cid} does not hash to its CID" + ("; deleted" if repair else ""), repair)
        for cid in store.verify(repair=repair)
    ]


def repair_installed(
    home: Home,
    store: Blockstore,
    run_id: str,
    inst: cache.Installed,
    fetch: FetchFn | None = None,
    providers: Sequence[str] = (),
) -> list[str]:
    """Reinstall the damaged files of one cached checkpoint; returns the files restored.

    Raises ParisError if a file cannot be restored (its blocks are gone and no `fetch` got them back).
    """
    folder = cache.job_dir(home, run_id, inst.job)
    bad = [n for n in inst.files if cache.check(folder, _only(inst, n))]
    if not bad:
        return []
    with cache.Staging(home, run_id, inst.job, store) as stage:
        stage.adopt(folder, [n for n in inst.files if n not in bad and (folder / n).is_file()])
        for name in bad:
            entry = inst.files[name]
            drop_bad_blocks(store, entry.cid)  # a hard-linked cache file shares its bytes with the store
            if missing_blocks(store, entry.cid):
                if fetch is None:
                    raise ParisError(
                        f"{inst.job} {name}: the content store no longer holds it; repair from the swarm "
                        "(`paris-node verify --repair --join MADDR`)"
                    )
                fetch(entry.cid, list(providers))
            out = stage.path / name
            cache.install_file(store, entry, out)
            if out.stat().st_size != entry.size or sha256_file(out) != entry.sha256:
                raise ParisError(f"{inst.job} {name}: the restored copy still differs from its manifest")
        stage.commit(inst)
    return bad


def drop_bad_blocks(store: Blockstore, root: str) -> int:
    """Delete the blocks of the DAG at `root` whose bytes no longer hash to their CID; returns how many."""
    dropped, stack, seen = 0, [root], set()
    while stack:
        cid = stack.pop()
        if cid in seen or not store.has(cid):
            continue
        seen.add(cid)
        data = store.get(cid)
        try:
            verify_block(cid, data)
        except ContentError:
            store.delete(cid)
            dropped += 1
            continue
        stack.extend(block_links(cid, data))
    return dropped


def _only(inst: cache.Installed, name: str) -> cache.Installed:
    """`inst` narrowed to one file (to check files one by one)."""
    return cache.Installed(inst.job, inst.step, inst.signer, inst.manifest_cid, inst.record, {name: inst.files[name]})


def verify_all(
    home: Home,
    store: Blockstore,
    *,
    repair: bool = False,
    fetch: FetchFn | None = None,
    providers: Callable[[cache.Installed], Sequence[str]] = lambda inst: [],
) -> list[Finding]:
    """Check the store, then every installed checkpoint of every run; with `repair`, mend what can be."""
    findings = verify_store(store, repair)
    runs = sorted(p.name for p in home.cache_dir.iterdir() if p.is_dir()) if home.cache_dir.is_dir() else []
    for run_id in runs:
        for job, inst in cache.installed_jobs(home, run_id).items():
            problems = cache.check(cache.job_dir(home, run_id, job), inst)
            if not problems:
                continue
            where = f"{run_id[:16]}.../{job}"
            if not repair:
                findings += [Finding(where, p) for p in problems]
                continue
            try:
                restored = repair_installed(home, store, run_id, inst, fetch, providers(inst))
                findings.append(Finding(where, "; ".join(problems) + f"; restored {', '.join(restored)}", True))
            except (ParisError, TimeoutError) as e:
                findings.append(Finding(where, "; ".join(problems) + f"; NOT repaired: {e}"))
    return findings
