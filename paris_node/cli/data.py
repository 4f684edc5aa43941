"""`paris-node init` (create a run) and `paris-node data preview | show` (look at one).

`init` with no options builds the built-in demo run; every machine gets the same run id. Flags map
one-to-one onto `RunSpec` fields; a flag left out keeps the demo's value (samples: all of a
dataset other than the demo's). The run id goes to stdout, the summary to stderr.
"""

from __future__ import annotations

import dataclasses
import json

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option
from paris_node.content.cid import PROFILES
from paris_node.content.errors import BlockNotFound
from paris_node.errors import UsageError
from paris_node.identity import load_or_create


def _publishers(value: str | None) -> str | tuple[str, ...] | None:
    if value is None or value == "open":
        return value
    ids = tuple(sorted({v.strip() for v in value.split(",") if v.strip()}))
    if not ids:
        raise UsageError("--publishers: give 'open' or a comma-separated list of node ids (see 'paris-node id')")
    return ids


@main.command("init")
@home_option
@click.option("--dataset", help="shapes[:N] | emoji | imagefolder:PATH | webdataset:GLOB  [demo: shapes]")
@click.option("--experts", type=int, help="Number of expert clusters K.  [demo: 4]")
@click.option("--preset", "expert_preset", help="Expert model preset (tiny, small, B/2, XL/2).  [demo: small]")
@click.option("--router-preset", help="Router model preset.  [default: the one that fits --preset; demo: small]")
@click.option("--resolution", type=int, help="Image size; must match the expert preset.  [default: the preset's]")
@click.option("--samples", type=int, help="Use the first N usable samples.  [demo: 2048; other datasets: all]")
@click.option("--no-center-crop", is_flag=True, default=None, help="Squash whole images instead of centre-cropping.")
@click.option("--embedder", help="pixels | dinov2:PATH_OR_ID | clip:PATH_OR_ID  [demo: pixels]")
@click.option("--fine-clusters", type=int, help="Fine k-means centroids before merging to K.  [1024, capped at N/8]")
@click.option("--val-fraction", type=float, help="Held-out share of each cluster.  [0.05]")
@click.option("--text-encoder", help="Text encoder spec.  [default: the expert preset's]")
@click.option("--publishers", help="'open' (anyone, gated by --val-loss-threshold) or node ids, comma-separated.")
@click.option("--val-loss-threshold", type=float, help="Open runs: max held-out loss ratio (vs zero).  [0.9]")
@click.option("--batch", type=int, help="Training batch size.")
@click.option("--lr", type=float, help="Learning rate.")
@click.option("--ema", type=float, help="EMA decay.")
@click.option("--steps", type=int, help="Training steps per expert.")
@click.option("--publish-every-steps", type=int, help="Publish a checkpoint every N steps.  [250]")
@click.option("--cid-profile", type=click.Choice(sorted(PROFILES)), help="CID profile for shards and checkpoints.")
@click.option("--seed", type=int, help="Seed of the partition and the validation split.")
@click.option("--name", help="Human-readable run name.")
@click.option(
    "--init-from",
    metavar="DIR",
    help="Seed the experts (and router) from pretrained weights: an expert checkpoint, a diffusers PixArt folder "
    "or a Paris release folder (expert_N/, router/).  [default: the preset the seed matches]",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
@click.pass_obj
def init_command(state: CliState, as_json: bool, no_center_crop: bool | None, **flags) -> None:
    """Create a run: partition the data into expert shards, store them, sign the run manifest, print the run id."""
    from paris_node.data.manifest import DEMO_RUN, build_run, load_run

    flags["publishers"] = _publishers(flags["publishers"])
    if no_center_crop:
        flags["center_crop"] = False
    given = {k: v for k, v in flags.items() if v is not None}
    if "dataset" in given and given["dataset"] != DEMO_RUN.dataset:
        given.setdefault("samples", None)
    if "init_from" in given and "expert_preset" not in given:  # the run's experts take the seed's preset
        from paris_node.checkpoint.seed import find_seed, infer_expert_preset

        given["expert_preset"] = infer_expert_preset(find_seed(given["init_from"]), given.get("text_encoder"))
    if "expert_preset" in given and "router_preset" not in given:
        from paris_node.data.prepare import consistent_router

        fit = consistent_router(given["expert_preset"])  # UsageError for an unknown preset
        if fit is not None:
            given["router_preset"] = fit
    spec = dataclasses.replace(DEMO_RUN, **given)
    if spec != DEMO_RUN and "name" not in given:  # only the demo run is called 'demo'
        spec = dataclasses.replace(spec, name=spec.dataset.split(":", 1)[0])
    spec.validate()
    from paris_node.data.prepare import resolve_models

    _, text_encoder, _ = resolve_models(spec)  # an inconsistent run is refused before any data is read or written
    if spec.init_from is not None:
        from paris_node.data.manifest import check_run_seed

        check_run_seed(spec, text_encoder)  # and bad seed weights before the home is touched
    home = state.home.ensure()
    identity = None if spec == DEMO_RUN else load_or_create(home.identity_path)
    run_id, _ = build_run(spec, home, identity)
    m = load_run(home, run_id)
    _remember(home, run_id)
    summary = {
        "run_id": run_id,
        "name": m.name,
        "signer": m.signer + (" (demo key)" if m.is_demo else ""),
        "dataset": m.dataset,
        "samples": m.samples,
        "skipped": m.skipped,
        "experts": [{"train": s.train.samples, "val": s.val.samples} for s in m.shards],
        "init": None if m.init is None else m.init.to_dict(),
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"run {m.name!r}: {m.samples} samples ({m.skipped} skipped) from {m.dataset}", err=True)
    for s in m.shards:
        click.echo(f"  expert {s.expert}: {s.train.samples} train / {s.val.samples} val  {s.train.cid}", err=True)
    if m.init is not None:
        seeds = [f"expert {k} {r.cid}" for k, r in enumerate(m.init.experts)]
        seeds.append(f"router {m.init.router.cid}" if m.init.router else "router from scratch")
        click.echo(f"  seeded ({m.expert_preset} experts): " + ", ".join(seeds), err=True)
    click.echo(f"  signer {summary['signer']}", err=True)
    click.echo(run_id)


def _remember(home, run_id: str) -> None:
    """The home's run is now this one (what `start`, `fetch`, `status`, `sample` use without --run)."""
    from paris_node.node.homestate import node_running, read_swarm, write_swarm

    pid = node_running(home)
    if pid is not None and read_swarm(home).run not in (None, run_id):
        click.echo(f"  (not made this home's run: the node running here, PID {pid}, trains another)", err=True)
        return
    write_swarm(home, run=run_id)


def _load(home, run: str):
    """A run held in this home, by id; 'demo' means the built-in demo run (built here if needed)."""
    from paris_node.data.manifest import load_run
    from paris_node.node.session import check_run_arg, demo_run

    check_run_arg(run, "RUN")
    return demo_run(home.ensure()) if run == "demo" else load_run(home, run)


@main.group("data")
def data_group() -> None:
    """Look at a run's data: its partition and manifest."""


@data_group.command("preview")
@home_option
@click.argument("run")
@click.option(
    "-o", "--output", default="clusters.png", show_default=True, type=click.Path(dir_okay=False), help="PNG to write."
)
@click.option("--per-row", default=8, show_default=True, type=click.IntRange(1, 64), help="Images per cluster.")
@click.pass_obj
def preview_command(state: CliState, run: str, output: str, per_row: int) -> None:
    """Write a PNG with a row of sample images per expert cluster and the cluster sizes."""
    from paris_node.data.prepare import shard_path
    from paris_node.data.preview import write_preview
    from paris_node.data.shards import ShardDataset

    m = _load(state.home, run)
    try:
        shards = [ShardDataset(shard_path(state.home, s.train.cid)) for s in m.shards]
    except BlockNotFound as e:
        raise UsageError(f"run {run}: a shard is not in the local store ({e}); fetch the run's data first") from None
    out = write_preview(m, shards, output, per_row)
    click.echo(str(out))


@data_group.command("show")
@home_option
@click.argument("run")
@click.pass_obj
def show_command(state: CliState, run: str) -> None:
    """Print a run manifest (verified) as JSON."""
    m = _load(state.home, run)
    click.echo(json.dumps({"run_id": m.run_id, **m.record.unsigned(), "sig": m.record.sig}, indent=2))
