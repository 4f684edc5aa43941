"""`paris-node eval`: score the fetched ensemble offline (prompt fidelity, feature FID) and write a report."""

from __future__ import annotations

import sys

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, check_device, home_option, say
from paris_node.errors import UsageError


@main.command(name="eval")
@home_option
@click.option("--run", "run_id", default=None, help="Run id.  [default: this home's run, else the only one cached]")
@click.option(
    "--routing",
    "routings",
    multiple=True,
    default=("top2",),
    show_default=True,
    help="top1 | top2 | topk:N | full; repeat to compare several.",
)
@click.option("-n", "n", type=click.IntRange(2, 1024), default=64, show_default=True, help="Held-out prompts.")
@click.option("--prompt", "prompts", multiple=True, help="Score these prompts instead of held-out ones (repeatable).")
@click.option("--per-prompt", type=click.IntRange(1, 64), default=1, show_default=True, help="Images per prompt.")
@click.option("--steps", type=click.IntRange(1, 1000), default=50, show_default=True, help="Euler steps.")
@click.option("--cfg", "cfg_scale", type=float, default=7.5, show_default=True, help="Guidance scale.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of prompts and initial noise.")
@click.option("--out", "out", type=click.Path(file_okay=False), default="eval-out", show_default=True, help="Folder.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
@click.option(
    "--caption-prior/--no-caption-prior",
    default=True,
    show_default=True,
    help="Route by the prompt's match to each cluster's captions too (see `sample --help`).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of the table.")
@click.pass_obj
def evaluate(
    state: CliState,
    run_id,
    routings,
    n,
    prompts,
    per_prompt,
    steps,
    cfg_scale,
    seed,
    out,
    device,
    caption_prior,
    as_json,
) -> None:
    """Score the fetched experts + router: what the samples show against their prompts, and a feature FID.

    \b
    shapes runs: a deterministic reader checks background colour, foreground colour and shape of every sample
    (held-out caption combinations by default), and FID is measured in the features of a small classifier trained
    on held-out real images (cached). Other datasets: give --prompt; only the sample grid and timings are reported.
    Writes OUT/report.md, OUT/report.json and OUT/samples.png.
    """
    import json
    from pathlib import Path

    from paris_node.cli.sample import fetched_ensemble, fetched_sampler
    from paris_node.evaluate.report import EvalSettings, markdown, write_report
    from paris_node.evaluate.report import evaluate as run_eval
    from paris_node.models.vae import LatentCodec, codec_spec
    from paris_node.node.session import held_run
    from paris_node.sampling.routing import parse_routing

    for r in routings:
        parse_routing(r)
    check_device(device)
    home = state.home.check()
    run_id, base, experts, router = fetched_ensemble(home, run_id)
    manifest = held_run(home, run_id)
    if manifest is None:
        raise UsageError(f"run {run_id} is not held in {home.root}; run `paris-node fetch --all --run {run_id}` first")
    settings = EvalSettings(tuple(routings), n, seed, steps, cfg_scale, tuple(prompts), per_prompt)

    def make_sampler(routing: str):
        return fetched_sampler(experts, router, base, routing, cfg_scale, steps, device, caption_prior)

    codec = None

    def decode(latents):
        nonlocal codec
        if codec is None:
            codec = LatentCodec(codec_spec(manifest.latent_space))
        return codec.decode(latents)

    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_step(routing: str, done: int, total: int) -> None:
        bar = bars.get(routing) or bars.setdefault(
            routing, tqdm(total=total, unit="step", desc=f"eval {routing}", file=sys.stderr, leave=False)
        )
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    say(f"evaluating run {run_id} ({manifest.dataset}, {len(experts)} experts) with {', '.join(routings)}")
    scores, notes, grid = run_eval(
        make_sampler, decode, manifest.dataset, manifest.resolution, settings, home.root / "eval-cache", on_step
    )
    title = f"paris-node eval of run {run_id[:16]}..."
    paths = write_report(Path(out), scores, notes, grid, title)
    if as_json:
        click.echo(json.dumps({"notes": notes, "scores": [s.to_dict() for s in scores]}, indent=2))
    else:
        click.echo(markdown(scores, notes, title))
    click.echo(f"wrote {paths['markdown']}, {paths['json']}, {paths['grid']}")
