"""`paris-node sample`: router-weighted ensemble sampling from the fetched cache to a PNG."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, check_device, home_option, say
from paris_node.errors import ParisError, UsageError

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only inside the commands that need them
    from paris_node.sampling.ensemble import EnsembleSampler
    from paris_node.sampling.routing import RoutingMode

DEFAULT_STEPS = 50
DEFAULT_CFG = 7.5


@main.command()
@home_option
@click.argument("prompts", nargs=-1, required=True)
@click.option(
    "--run", "run_id", default=None, help="Run id.  [default: this home's run (swarm.json), else the only one cached]"
)
@click.option("--routing", default="top2", show_default=True, help="top1 | top2 | topk:N | full")
@click.option("--steps", type=click.IntRange(1, 1000), default=DEFAULT_STEPS, show_default=True, help="Euler steps.")
@click.option("--cfg", "cfg_scale", type=float, default=DEFAULT_CFG, show_default=True, help="Guidance scale.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial noise.")
@click.option("-n", "n", type=click.IntRange(1, 64), default=1, show_default=True, help="Images per prompt.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="sample.png", show_default=True, help="PNG.")
@click.option("--explain", is_flag=True, help="Print and save (OUT.explain.json) which experts ran, with weights.")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
@click.option(
    "--caption-prior/--no-caption-prior",
    default=True,
    show_default=True,
    help="Also route by how well the prompt matches each cluster's captions (when the router carries them); "
    "--no-caption-prior routes on the noisy image alone, as Paris does.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Step progress bar on stderr.")
@click.pass_obj
def sample(
    state: CliState, prompts, run_id, routing, steps, cfg_scale, seed, n, out, explain, device, caption_prior, progress
):
    """Router-weighted ensemble sampling from the fetched cache to a PNG (a grid when there are several images)."""
    from paris_node.sampling.routing import parse_routing

    mode = parse_routing(routing)
    check_device(device)
    run_id, base, experts, router = fetched_ensemble(state.home.check(), run_id)
    images = len(prompts) * n
    latents, log, sampler, took = _run_sampler(
        experts, router, mode, cfg_scale, steps, device, list(prompts), seed, n, explain, progress, base, caption_prior
    )
    from paris_node.models.vae import LatentCodec, codec_spec
    from paris_node.sampling.images import save_png, to_pil

    pixels = LatentCodec(codec_spec(sampler.latent)).decode(latents)
    path = save_png(to_pil(pixels), out)
    s = sampler.stats
    say(f"{images} image(s) x {steps} steps in {took:.1f} s ({took / steps:.2f} s per step for the batch)")
    click.echo(f"wrote {path} ({images} image(s), routing {routing}, {s.expert_calls} expert calls)")
    if explain and log is not None:
        click.echo(log.summary())
        explain_path = Path(str(out) + ".explain.json")
        explain_path.write_text(log.to_json())
        click.echo(f"wrote {explain_path}")


def fetched_ensemble(home, run_id: str | None) -> tuple[str, Path, dict[int, Path], Path | None]:
    """(run id, its cache folder, expert folders, router folder) of the run to sample, every file checked against
    its manifest; UsageError naming the fetch command when the cache lacks what sampling needs."""
    from paris_node.node.cache import run_cache, sampling_dirs
    from paris_node.node.session import check_run_arg

    if run_id is not None:
        check_run_arg(run_id)
    run_id = run_id or _default_run(home)
    base = run_cache(home, run_id)
    experts, router = sampling_dirs(home, run_id)
    if not experts:
        raise UsageError(f"no fetched experts for run {run_id} in {base}; run `paris-node fetch --all` first")
    if len(experts) > 1 and router is None:
        raise UsageError(f"the cache of run {run_id} has no router; run `paris-node fetch router` first")
    return run_id, base, experts, router


def fetched_sampler(
    experts: dict[int, Path],
    router: Path | None,
    base: Path,
    routing: RoutingMode | str,
    cfg_scale: float,
    steps: int,
    device: str,
    caption_prior: bool,
) -> EnsembleSampler:
    """The ensemble sampler of `fetched_ensemble`'s checkpoints (its router only when there are several experts); a
    damaged weights file is a ParisError naming the cache folder and the fetch that repairs it."""
    from safetensors import SafetensorError

    from paris_node.sampling.loading import load_ensemble

    try:
        return load_ensemble(
            experts,
            router if len(experts) > 1 else None,
            routing=routing,
            cfg_scale=cfg_scale,
            steps=steps,
            device=device,
            caption_prior=caption_prior,
        )
    except SafetensorError as e:
        raise ParisError(
            f"a checkpoint in {base} is not a valid safetensors file ({e}): delete that folder and run "
            "`paris-node fetch --all` again"
        ) from None


def _run_sampler(
    experts, router, mode, cfg_scale, steps, device, prompts, seed, n, explain, progress, base, caption_prior=True
):
    from tqdm import tqdm

    sampler = fetched_sampler(experts, router, base, mode, cfg_scale, steps, device, caption_prior)
    desc = f"{len(prompts) * n} image(s)"
    bar = tqdm(total=steps, unit="step", desc=desc, file=sys.stderr, disable=not progress, leave=False)

    def on_step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    t0 = time.monotonic()
    try:
        latents, log = sampler.sample(prompts, seed=seed, n_per_prompt=n, explain=explain, on_step=on_step)
    finally:
        bar.close()
    return latents, log, sampler, time.monotonic() - t0


def _default_run(home) -> str:
    from paris_node.node.homestate import read_swarm

    cached = sorted(p.name for p in home.cache_dir.glob("*") if p.is_dir() and p.name != "shards")
    remembered = read_swarm(home).run
    if remembered is not None and remembered in cached:
        say(f"using run: {remembered} (from {home.swarm_file}; --run to choose another)")
        return remembered
    if len(cached) == 1:
        return cached[0]
    if not cached:
        hint = "" if read_swarm(home).join(True) else " --join MADDR"
        raise UsageError(f"nothing fetched in {home.cache_dir}; run `paris-node fetch --all{hint}` first")
    raise UsageError(f"the cache holds several runs ({', '.join(cached)}); choose one with --run")
