"""`paris-node fetch` (verified checkpoints from the swarm) and `paris-node sample` (ensemble sampling)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option
from paris_node.errors import UsageError
from paris_node.records import ROUTER_JOB, job_of_expert


def _jobs_wanted(targets: tuple[str, ...], fetch_all: bool, experts: int) -> list[str]:
    every = [job_of_expert(k) for k in range(experts)] + [ROUTER_JOB]
    if fetch_all:
        return every
    if not targets:
        raise UsageError("say what to fetch: --all, an expert number, or 'router'")
    jobs = []
    for t in targets:
        job = ROUTER_JOB if t == "router" else (job_of_expert(int(t)) if t.isdigit() else None)
        if job not in every:
            raise UsageError(f"fetch {t!r}: the run has experts 0..{experts - 1} and 'router'")
        jobs.append(job)
    return jobs


@main.command()
@home_option
@click.argument("targets", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Every expert and the router.")
@click.option("--run", "run_id", default="demo", show_default=True, help="Run id (CID of its manifest) or 'demo'.")
@click.option("--join", multiple=True, metavar="MADDR", help="Multiaddr of a swarm member (repeatable).")
@click.option("--allow-partial", is_flag=True, help="Exit 0 even if some job has no verified checkpoint.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the swarm.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
@click.pass_obj
def fetch(state: CliState, targets, fetch_all, run_id, join, allow_partial, timeout, as_json) -> None:
    """Fetch the latest *verified* checkpoints of the run into the local cache.

    \b
    Verified: signed; signer allowed by the run; every byte matches its CID and sha256; safetensors that fit
    the run's model config; no rollback below what is held; and on open runs, a held-out validation loss,
    computed here, within the run's threshold. Rejected checkpoints are listed with the reason.
    TARGETS: expert numbers and/or 'router' (or --all).
    """
    from paris_node.content.blockstore import Blockstore
    from paris_node.content.exchange import ExchangeService
    from paris_node.node.fetcher import CheckpointFetcher
    from paris_node.node.session import obtain_run, reader_dht
    from paris_node.node.verify import Candidate
    from paris_node.swarm.membership import read_pointers, read_providers

    home = state.home.ensure()
    store = Blockstore(home.blocks_dir)
    with reader_dht(list(join), timeout) as dht, ExchangeService(dht, store, serve=False) as exchange:
        manifest = obtain_run(home, run_id, dht, exchange)
        jobs = _jobs_wanted(targets, fetch_all, manifest.experts)

        def providers(cid: str) -> list[str]:
            return [r.body.peer for r in read_providers(dht, manifest.run_id, cid)]

        fetcher = CheckpointFetcher(
            home,
            store,
            manifest,
            fetch=lambda cid, peers: exchange.fetch(cid, list(peers), deadline_s=timeout * 5),
            providers=providers,
        )
        rows, missing = [], []
        for job in jobs:
            candidates = [Candidate(p) for p in read_pointers(dht, manifest.run_id, job)]
            accepted, verdicts = fetcher.fetch_job(job, candidates)
            rows += verdicts
            if accepted is None:
                missing.append(job)
                if not verdicts:
                    rows.append(_none_row(job))
    _print_verdicts(rows, manifest.run_id, as_json)
    if missing and not allow_partial:
        click.echo(f"no verified checkpoint for: {', '.join(missing)} (use --allow-partial to accept)", err=True)
        sys.exit(1)


def _none_row(job: str):
    from paris_node.node.verify import Verdict

    return Verdict(job=job, signer="-", step=-1, manifest_cid="-", reason="nobody announced a checkpoint")


def _print_verdicts(rows, run_id: str, as_json: bool) -> None:
    if as_json:
        out = [
            {
                "job": v.job,
                "step": v.step,
                "signer": v.signer,
                "cid": v.manifest_cid,
                "val_loss": v.val_loss,
                "verdict": "ok" if v.ok else "rejected",
                "reason": v.reason,
            }
            for v in rows
        ]
        click.echo(json.dumps({"run": run_id, "checkpoints": out}, indent=2))
        return
    click.echo(f"run {run_id}")
    click.echo(f"{'job':10} {'step':>7} {'signer':18} {'manifest CID':24} {'val loss':>9}  verdict")
    for v in rows:
        loss = "-" if v.val_loss is None else f"{v.val_loss:.4f}"
        step = "-" if v.step < 0 else str(v.step)
        verdict = ("ok" + (f" ({v.reason})" if v.reason else "")) if v.ok else f"REJECTED: {v.reason}"
        click.echo(f"{v.job:10} {step:>7} {v.signer[:16]:18} {v.manifest_cid[:22]:24} {loss:>9}  {verdict}")


@main.command()
@home_option
@click.argument("prompts", nargs=-1, required=True)
@click.option("--run", "run_id", default=None, help="Run id; default: the only run in the cache.")
@click.option("--routing", default="top2", show_default=True, help="top1 | top2 | topk:N | full")
@click.option("--steps", type=click.IntRange(1, 1000), default=None, help="Euler steps (default per preset).")
@click.option("--cfg", "cfg_scale", type=float, default=None, help="Classifier-free guidance scale (default 7.5).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-n", "n", type=click.IntRange(1, 64), default=1, show_default=True, help="Images per prompt.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default="sample.png", show_default=True)
@click.option("--explain", is_flag=True, help="Print and save (OUT.explain.json) which experts ran, with weights.")
@click.option("--device", default="cpu", show_default=True)
@click.pass_obj
def sample(state: CliState, prompts, run_id, routing, steps, cfg_scale, seed, n, out, explain, device) -> None:
    """Router-weighted ensemble sampling from the fetched cache to a PNG (a grid when there are several images)."""
    from paris_node.models.vae import LatentCodec, codec_spec
    from paris_node.node.cache import run_cache
    from paris_node.sampling.images import save_png, to_pil
    from paris_node.sampling.loading import load_ensemble
    from paris_node.sampling.routing import parse_routing

    mode = parse_routing(routing)
    home = state.home
    run_id = run_id or _only_cached_run(home)
    base = run_cache(home, run_id)
    experts = {int(p.name.split("-")[1]): p for p in sorted(base.glob("expert-*")) if (p / "fetched.json").exists()}
    router = base / "router"
    if not experts:
        raise UsageError(f"no fetched experts for run {run_id} in {base}; run `paris-node fetch --all` first")
    if len(experts) > 1 and not (router / "fetched.json").exists():
        raise UsageError(f"the cache of run {run_id} has no router; run `paris-node fetch router` first")
    sampler = load_ensemble(
        experts,
        router if len(experts) > 1 else None,
        routing=mode,
        cfg_scale=7.5 if cfg_scale is None else cfg_scale,
        steps=steps or 50,
        device=device,
    )
    latents, log = sampler.sample(list(prompts), seed=seed, n_per_prompt=n, explain=explain)
    pixels = LatentCodec(codec_spec(sampler.latent)).decode(latents)
    path = save_png(to_pil(pixels), out)
    s = sampler.stats
    click.echo(f"wrote {path} ({len(prompts) * n} image(s), routing {routing}, {s.expert_calls} expert calls)")
    if explain and log is not None:
        click.echo(log.summary())
        explain_path = Path(str(out) + ".explain.json")
        explain_path.write_text(log.to_json())
        click.echo(f"wrote {explain_path}")


def _only_cached_run(home) -> str:
    runs = [p.name for p in home.cache_dir.glob("*") if p.is_dir() and p.name != "shards"]
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise UsageError(f"nothing fetched in {home.cache_dir}; run `paris-node fetch --all --join MADDR` first")
    raise UsageError(f"the cache holds several runs ({', '.join(runs)}); choose one with --run")
