"""CLI commands for the models layer (registered on `main`)."""

from __future__ import annotations

import json
from typing import Any

import click

from paris_node.cli import main


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def preset_table() -> list[dict]:
    """Every expert and router preset with its parameter count (built on the meta device: no memory)."""
    from paris_node.models.factory import build_expert, build_router
    from paris_node.models.presets import EXPERT_PRESETS, ROUTER_PRESETS

    rows = [
        _row("expert", name, cfg, build_expert(cfg, "meta"), cfg.image_size, cfg.text_encoder)
        for name, cfg in EXPERT_PRESETS.items()
    ]
    for name, cfg in ROUTER_PRESETS.items():
        rows.append(
            dict(_row("router", name, cfg, build_router(cfg, "meta"), None, None), num_experts=cfg.num_experts)
        )
    return rows


def _row(kind: str, name: str, cfg: Any, model: Any, image_size: int | None, text_encoder: str | None) -> dict:
    """One preset's row; an expert's and a router's share every field but their own few."""
    from paris_node.models.factory import count_params

    return {
        "kind": kind,
        "preset": name,
        "params": count_params(model),
        "latent": cfg.latent,
        "latent_shape": list(cfg.latent_shape),
        "image_size": image_size,
        "hidden": cfg.hidden,
        "depth": cfg.depth,
        "heads": cfg.heads,
        "text_encoder": text_encoder,
    }


@main.command("presets")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def presets(as_json: bool) -> None:
    """List expert and router presets: parameter count, latent shape, width/depth, text encoder."""
    rows = preset_table()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'kind':<7} {'preset':<6} {'params':>8}  {'latent':<8} {'shape':<10} {'h x d / heads':<14} text")
    for r in rows:
        shape = "x".join(map(str, r["latent_shape"]))
        arch = f"{r['hidden']}x{r['depth']}/{r['heads']}"
        text = r["text_encoder"] or f"(K={r['num_experts']}, no text)"
        click.echo(
            f"{r['kind']:<7} {r['preset']:<6} {_fmt_params(r['params']):>8}  {r['latent']:<8} {shape:<10} "
            f"{arch:<14} {text}"
        )
