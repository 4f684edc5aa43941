"""Checkpoint commands: `verify [--repair]`, `export` / `import` (diffusers), `car export` / `car import`."""

from __future__ import annotations

import sys

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option, say


@main.command("verify")
@home_option
@click.option("--repair", is_flag=True, help="Delete bad blocks and restore damaged cached files.")
@click.option("--join", multiple=True, metavar="MADDR", help="A swarm member to repair from (repeatable).")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the swarm.")
@click.pass_obj
def verify_command(state: CliState, repair: bool, join: tuple[str, ...], timeout: float) -> None:
    """Check the content store (every block against its CID) and the checkpoint cache (every file against its
    signed manifest). With --repair, restore what differs: from the local store, else from the swarm (--join).
    Exit 1 if anything is still wrong."""
    from paris_node.content.blockstore import Blockstore
    from paris_node.node.repair import verify_all

    home = state.home
    store = Blockstore(home.blocks_dir)
    if repair and join:
        from paris_node.content.exchange import ExchangeService
        from paris_node.identity import signer_peer
        from paris_node.node.session import reader_dht
        from paris_node.swarm.membership import peers_providing

        with reader_dht(list(join), timeout) as dht, ExchangeService(dht, store, serve=False) as exchange:

            def providers(inst) -> list[str]:
                run = _run_of(home, inst)
                signer = [signer_peer(inst.signer)]  # the publisher held it; others announced it
                return peers_providing(dht, run, inst.manifest_cid, also=signer) if run else signer

            findings = verify_all(
                home,
                store,
                repair=True,
                fetch=lambda cid, peers: exchange.fetch(cid, list(peers), deadline_s=timeout * 5),
                providers=providers,
            )
    else:
        findings = verify_all(home, store, repair=repair)
    for f in findings:
        click.echo(f"{f.where}: {f.problem}")
    left = [f for f in findings if not f.repaired]
    if not findings:
        click.echo("ok: every block matches its CID and every cached checkpoint its manifest")
    elif left:
        hint = "" if repair else " (run `paris-node verify --repair`)"
        say(f"{len(left)} problem(s) left{hint}")
        sys.exit(1)
    else:
        click.echo(f"repaired {len(findings)} problem(s)")


def _run_of(home, inst) -> str | None:
    import json

    try:
        return json.loads(inst.record)["run"]
    except (ValueError, KeyError):
        return None


@main.command("export")
@home_option
@click.argument("job")
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["diffusers"]), default="diffusers", show_default=True, help="Output layout."
)
@click.option("--run", "run_id", default=None, help="Run whose cached checkpoint to export (default: the only one).")
@click.option(
    "--from", "src", type=click.Path(file_okay=False, exists=True), default=None, help="A checkpoint folder."
)
@click.pass_obj
def export_command(state: CliState, job: str, out: str, fmt: str, run_id: str | None, src: str | None) -> None:
    """Write JOB's checkpoint (expert N, `expert/N` or `router`) as a diffusers folder OUT.

    An expert loads with `PixArtTransformer2DModel.from_pretrained(OUT)`; a router is written with its own
    config.json and pytorch_model.safetensors. The cached copy is checked against its manifest first."""
    from pathlib import Path

    from paris_node.checkpoint.diffusers_io import export_diffusers
    from paris_node.errors import UsageError
    from paris_node.node import cache
    from paris_node.records import ROUTER_JOB, job_of_expert

    if src is None:
        job = job_of_expert(int(job)) if job.isdigit() else job
        if job != ROUTER_JOB and not job.startswith("expert/"):
            raise UsageError(f"export {job!r}: name an expert (3 or expert/3) or 'router'")
        run_id = run_id or _only_run(state.home)
        inst = cache.read_installed(state.home, run_id, job)
        if inst is None:
            raise UsageError(f"no fetched checkpoint of {job} in run {run_id}; run `paris-node fetch` first")
        folder = cache.checked_dir(state.home, run_id, inst)
    else:
        folder = Path(src)
    path = export_diffusers(folder, out)
    click.echo(f"wrote {path} ({fmt})")


@main.command("import")
@home_option
@click.argument("src", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--text-encoder", default=None, help="Text encoder spec the expert was trained with.")
@click.option("--max-text-len", type=int, default=None, help="Text tokens per caption.")
@click.option("--latent", type=click.Choice(["pixels", "sd-vae"]), default=None, help="Latent space.")
@click.option("--prediction", type=click.Choice(["velocity", "epsilon"]), default=None, help="What it predicts.")
@click.pass_obj
def import_command(state: CliState, src: str, out: str, text_encoder, max_text_len, latent, prediction) -> None:
    """Turn SRC into checkpoint folder(s) at OUT: a diffusers PixArt transformer folder (one expert), a router
    folder, or the Paris release layout (expert_N/ + router/). Strict: every key, shape and config field must
    match; every mismatch is listed and nothing is written."""
    from pathlib import Path

    from paris_node.checkpoint.diffusers_io import import_expert, import_release, import_router

    extras = dict(text_encoder=text_encoder, max_text_len=max_text_len, latent=latent, prediction=prediction)
    s = Path(src)
    if any(s.glob("expert_*")):
        for job, path in import_release(s, out, **extras).items():
            click.echo(f"{job}: {path}")
        return
    if (s / "pytorch_model.safetensors").exists():
        click.echo(f"router: {import_router(s, out)}")
        return
    click.echo(f"expert: {import_expert(s, out, **extras)}")


def _only_run(home) -> str:
    from paris_node.errors import UsageError

    runs = sorted(p.name for p in home.cache_dir.glob("*") if p.is_dir()) if home.cache_dir.is_dir() else []
    if len(runs) != 1:
        raise UsageError(f"the cache holds {len(runs)} runs; choose one with --run")
    return runs[0]


@main.group("car")
def car_group() -> None:
    """CARv1 archives: move a checkpoint (any DAG) to or from a pinning service or another IPFS node."""


@car_group.command("export")
@home_option
@click.argument("cid")
@click.argument("file", type=click.Path(dir_okay=False))
@click.pass_obj
def car_export(state: CliState, cid: str, file: str) -> None:
    """Write the DAG under CID (all of it must be held here) as a CARv1 FILE (DFS order, no duplicates)."""
    from paris_node.content.blockstore import Blockstore
    from paris_node.content.car import write_car
    from paris_node.content.cid import parse_cid
    from paris_node.content.dag import missing_blocks
    from paris_node.errors import UsageError

    parse_cid(cid)
    store = Blockstore(state.home.blocks_dir)
    missing = missing_blocks(store, cid)
    if missing:
        raise UsageError(
            f"{cid} is not held whole here ({len(missing)} block(s) missing, e.g. {missing[0]}); "
            "fetch it first (`paris-node get` or `paris-node fetch`)"
        )
    n = write_car(store, cid, file)
    click.echo(f"wrote {file} ({n} bytes, root {cid})")


@car_group.command("import")
@home_option
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option("--no-pin", is_flag=True, help="Do not pin the CAR's roots.")
@click.pass_obj
def car_import(state: CliState, file: str, no_pin: bool) -> None:
    """Add every block of a CARv1 FILE to the store, each verified against its CID first (a tampered or
    truncated CAR is refused at the first bad byte); pins its roots. Exit 1 if a root's DAG is incomplete."""
    from paris_node.content.blockstore import Blockstore
    from paris_node.content.car import import_car

    store = Blockstore(state.home.ensure().blocks_dir)
    roots, stored, missing = import_car(store, file, pin=not no_pin)
    click.echo(f"imported {stored} block(s); roots: {', '.join(roots) or '(none)'}")
    if missing:
        say(f"the CAR does not hold every block of its roots ({len(missing)} missing, e.g. {missing[0]})")
        sys.exit(1)
