"""`paris-node eval`: sample the fetched ensemble with each routing strategy, score it, write a report.

The report is three files in `--out`: `report.md` (a table a person reads), `report.json` (the same numbers for
scripts; stable field names, numbers as numbers) and `samples.png` (rows = routing strategies, columns = the
first prompts, each cell marked with what the reader saw).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paris_node.errors import UsageError
from paris_node.evaluate.features import inception_fid, inception_unavailable
from paris_node.evaluate.grid import labelled_grid
from paris_node.evaluate.quality import FeatureSpace, Score, check_prompts, held_out_prompts, score_images
from paris_node.evaluate.shapes_reader import read_images, to_uint8
from paris_node.fsutil import atomic_write

log = logging.getLogger(__name__)

GRID_COLUMNS = 8


@dataclass(frozen=True)
class EvalSettings:
    routings: tuple[str, ...] = ("top2",)
    n: int = 64
    seed: int = 0
    steps: int = 50
    cfg_scale: float = 7.5
    prompts: tuple[str, ...] = ()
    per_prompt: int = 1


def _mark(reading) -> str:
    if reading.colour is None:
        return f"{reading.background}, no shape"
    return f"{reading.colour} {reading.shape}/{reading.background}"


def eval_prompts(dataset: str, settings: EvalSettings) -> tuple[list[str], bool]:
    """(prompts, has_reader): the given prompts (checked against the shapes vocabulary) or n held-out ones."""
    shapes = dataset.split(":")[0] == "shapes"
    if settings.prompts:
        if shapes:
            check_prompts(list(settings.prompts))
        return list(settings.prompts), shapes
    if not shapes:
        raise UsageError(
            f"dataset {dataset!r} has no built-in held-out prompts; give prompts with --prompt (repeatable)"
        )
    return held_out_prompts(settings.n, settings.seed), True


def evaluate(
    make_sampler: Callable[[str], Any],
    decode: Callable[[Any], Any],
    dataset: str,
    resolution: int,
    settings: EvalSettings,
    cache_dir: Path | None,
    on_step: Callable[[str, int, int], None] | None = None,
) -> tuple[list[Score], dict[str, Any], Any]:
    """Sample each routing's images for the prompts, score them; returns (scores, notes, grid image).

    `make_sampler(routing)` gives an EnsembleSampler, `decode(latents)` pixels in [-1, 1].
    """
    prompts, has_reader = eval_prompts(dataset, settings)
    notes: dict[str, Any] = {
        "dataset": dataset,
        "resolution": resolution,
        "prompts": len(prompts),
        "per_prompt": settings.per_prompt,
        "steps": settings.steps,
        "cfg_scale": settings.cfg_scale,
        "seed": settings.seed,
    }
    space = None
    if dataset.split(":")[0] == "shapes":
        t0 = time.perf_counter()
        space = FeatureSpace.for_shapes(resolution, cache_dir)
        notes["feature_space"] = {
            "label_accuracy": space.label_accuracy,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    else:
        notes["fid"] = "skipped: no built-in held-out reference images for this dataset"
    inception_why = inception_unavailable() if space is not None else None
    if inception_why:
        notes["fid_inception"] = inception_why
    if not has_reader:
        notes["fidelity"] = f"no attribute reader for dataset {dataset!r}: distribution distance only"
    scores, rows, marks = [], [], []
    from paris_node.sampling.images import to_pil

    k = settings.per_prompt
    per_row = [p for p in prompts for _ in range(k)]
    for routing in settings.routings:
        sampler = make_sampler(routing)
        t0 = time.perf_counter()
        cb = None if on_step is None else (lambda done, total, r=routing: on_step(r, done, total))
        latents, _ = sampler.sample(prompts, seed=settings.seed, n_per_prompt=k, on_step=cb)
        pixels = decode(latents)
        seconds = time.perf_counter() - t0
        images = to_uint8(pixels)
        score = score_images(routing, images, per_row, space, seconds)
        score.extra["expert_calls_per_step"] = round(sampler.stats.expert_calls_per_step, 3)
        if space is not None and inception_why is None:
            score.extra["fid_inception"] = inception_fid(space.real_images, images)
        scores.append(score)
        readings = read_images(images) if has_reader else None
        if k == 1:  # rows = routings, columns = prompts
            rows.append((routing, to_pil(pixels[:GRID_COLUMNS])))
            if readings:
                marks.append([_mark(r) for r in readings[:GRID_COLUMNS]])
            continue
        for i, prompt in enumerate(prompts[:GRID_COLUMNS]):  # rows = (routing, prompt), columns = samples
            rows.append((f"{routing}: {prompt}", to_pil(pixels[i * k : (i + 1) * k])))
            if readings:
                marks.append([_mark(r) for r in readings[i * k : (i + 1) * k]])
    columns = prompts[:GRID_COLUMNS] if k == 1 else [f"seed {settings.seed}, sample {j + 1}" for j in range(k)]
    grid = labelled_grid(rows, columns, marks if has_reader else None)
    return scores, notes, grid


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(scores: list[Score], notes: dict[str, Any], title: str) -> str:
    lines = [f"# {title}", ""]
    lines.append(
        f"dataset `{notes['dataset']}` at {notes['resolution']} px, {notes['prompts']} prompts x "
        f"{notes['per_prompt']} image(s), {notes['steps']} Euler steps, CFG {notes['cfg_scale']}, seed {notes['seed']}"
    )
    for key in ("fidelity", "fid", "fid_inception"):
        if isinstance(notes.get(key), str):
            lines.append(f"- {notes[key]}")
    fs = notes.get("feature_space")
    if fs:
        acc = ", ".join(f"{a:.3f}" for a in fs["label_accuracy"])
        lines.append(f"- FID features: the shapes classifier (label accuracy on held-out real images: {acc})")
    lines += ["", "| strategy | background | colour | shape | all three | FID (features) | s | expert calls/step |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for s in scores:
        f = s.fidelity or {}
        fid = "-" if s.fid is None else f"{s.fid:.2f}"
        lines.append(
            f"| {s.strategy} | {_pct(f.get('background'))} | {_pct(f.get('colour'))} | {_pct(f.get('shape'))} | "
            f"{_pct(f.get('all'))} | {fid} | {s.seconds:.1f} | {s.extra.get('expert_calls_per_step', '-')} |"
        )
    return "\n".join(lines) + "\n"


def write_report(out: Path, scores: list[Score], notes: dict[str, Any], grid, title: str) -> dict[str, Path]:
    """Write report.md, report.json and samples.png into `out` (each atomically); returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "json": out / "report.json", "grid": out / "samples.png"}
    atomic_write(paths["markdown"], markdown(scores, notes, title))
    doc = {"title": title, "notes": notes, "scores": [s.to_dict() for s in scores]}
    atomic_write(paths["json"], json.dumps(doc, indent=2) + "\n")
    atomic_write(paths["grid"], lambda tmp: grid.save(tmp, format="PNG"))
    return paths
