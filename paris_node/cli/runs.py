"""`paris-node runs`: the runs this home holds (id, name, dataset, experts, what is fetched)."""

from __future__ import annotations

import json

import click

from paris_node.cli import main
from paris_node.cli.common import CliState, home_option


def held_runs(home) -> list[dict]:
    """Every run manifest under `<home>/runs/` that verifies, with what the cache holds of it."""
    from paris_node.data.manifest import load_run
    from paris_node.node import cache
    from paris_node.node.homestate import read_swarm
    from paris_node.swarm import keys

    if not home.runs_dir.is_dir():
        return []
    remembered = read_swarm(home).run
    rows = []
    for d in sorted(home.runs_dir.iterdir()):
        try:
            m = load_run(home, d.name)
        except Exception as e:  # a damaged or foreign folder: listed, not fatal
            rows.append({"run": d.name, "error": str(e)})
            continue
        jobs = keys.jobs_for(m.experts, router=m.experts > 1)
        fetched = [job for job in jobs if cache.read_info(home, m.run_id, job) is not None]
        rows.append(
            {
                "run": m.run_id,
                "name": m.name,
                "dataset": m.dataset,
                "experts": m.experts,
                "preset": m.expert_preset,
                "demo": m.is_demo,
                "fetched": fetched,
                "jobs": len(jobs),
                "this_home": m.run_id == remembered,
            }
        )
    return rows


@main.command("runs")
@home_option
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_obj
def runs_command(state: CliState, as_json: bool) -> None:
    """List the runs this home holds: id, name, dataset, experts, preset, fetched checkpoints (* = home's run)."""
    rows = held_runs(state.home.check())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no runs in {state.home.runs_dir} (create one with `paris-node init`, or `start`/`fetch` one)")
        return
    click.echo(f"  {'run':60} {'name':12} {'dataset':14} {'K':>3} {'preset':6} fetched")
    for r in rows:
        if "error" in r:
            click.echo(f"  {r['run']:60} unreadable: {r['error']}")
            continue
        mark = "*" if r["this_home"] else " "
        got = f"{len(r['fetched'])}/{r['jobs']}" + (f" ({', '.join(r['fetched'])})" if r["fetched"] else "")
        click.echo(
            f"{mark} {r['run']:60} {r['name'][:12]:12} {r['dataset'][:14]:14} {r['experts']:>3} {r['preset']:6} {got}"
        )
