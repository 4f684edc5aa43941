"""Seeding a run from pretrained weights (`paris-node init --init-from DIR`, HDDM-style initialisation).

DIR is one of three layouts, recognised by its files:

- `checkpoint`: a paris-node expert checkpoint (config.json + model.safetensors); seeds every expert;
- `diffusers`: a PixArtTransformer2DModel folder (config.json + diffusion_pytorch_model.safetensors); seeds
  every expert;
- `release`: the Paris release layout, `expert_0..N-1/` (diffusers folders) and optional `router/`; expert k is
  seeded from expert_k (so the run may have at most N experts), the router from router/.

The run's experts are a registry preset (the manifest names a preset, not a free shape). With `--preset` the seed
must match it; without, the run takes the one preset whose network the seed has (`infer_expert_preset`). Every
check reads configs and safetensors headers only (`check_seed`), so bad input is refused before anything is
written; `seed_weights` then converts a checked seed into the format's `model.safetensors` (the CID the manifest
names), and `start_checkpoint` turns those weights into the step-0 starting point a trainer resumes from.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from paris_node.checkpoint.diffusers_io import (
    DIFFUSERS_CONFIG,
    DIFFUSERS_WEIGHTS,
    PARIS_SIDECAR,
    ROUTER_WEIGHTS,
    check_tensors,
    expert_config_from_diffusers,
)
from paris_node.checkpoint.format import CheckpointFolder, CheckpointFormatError, safetensors_header
from paris_node.checkpoint.io import load_weights, save_checkpoint
from paris_node.errors import UsageError
from paris_node.models.config import ExpertConfig, RouterConfig
from paris_node.models.factory import build_expert, build_model, build_router
from paris_node.models.presets import EXPERT_PRESETS

NETWORK = ("in_channels", "sample_size", "patch_size", "hidden", "depth", "heads", "caption_channels")
DESCRIBED = ("max_text_len", "text_encoder", "latent", "prediction")  # only a paris.json or our config says these
_WHAT = (
    "a paris-node expert checkpoint (config.json + model.safetensors), a diffusers PixArtTransformer2DModel folder "
    "(config.json + diffusion_pytorch_model.safetensors) or a Paris release folder (expert_0..N-1/, router/)"
)


@dataclass(frozen=True)
class SeedSource:
    """A recognised `--init-from` folder: its layout, its expert folders (one unless a release) and router folder."""

    path: Path
    layout: str
    experts: tuple[Path, ...]
    router: Path | None = None

    def expert_dir(self, k: int) -> Path:
        return self.experts[k] if self.layout == "release" else self.experts[0]


def _bad(src: Path | str, why: str) -> UsageError:
    return UsageError(f"--init-from {src}: {why} (nothing was written)")


def find_seed(src: str | Path) -> SeedSource:
    """Recognise the layout of `src`; UsageError when it is missing or none of the three."""
    path = Path(src)
    if not path.is_dir():
        raise _bad(src, f"no such folder; give {_WHAT}")
    numbered = sorted(p.name for p in path.glob("expert_*") if p.is_dir())
    if numbered:
        bad = [n for n in numbered if not re.fullmatch(r"expert_(0|[1-9][0-9]*)", n)]
        if bad:
            raise _bad(src, f"{', '.join(bad)} is not named expert_N (N = 0, 1, ...)")
        have = sorted(int(n.split("_")[1]) for n in numbered)
        if have != list(range(len(have))):
            raise _bad(src, f"the expert folders are {have}, not expert_0..expert_{len(have) - 1} without gaps")
        router = path / "router"
        experts = tuple(path / f"expert_{k}" for k in have)
        return SeedSource(path, "release", experts, router if router.is_dir() else None)
    if (path / DIFFUSERS_CONFIG).is_file() and (path / DIFFUSERS_WEIGHTS).is_file():
        return SeedSource(path, "diffusers", (path,))
    folder = CheckpointFolder.at(path)
    if folder.config.is_file() and folder.weights.is_file():
        kind = _json(folder.config).get("kind")
        if kind != "expert":
            raise _bad(src, f"a {kind!r} checkpoint, not an expert one; seed from {_WHAT}")
        return SeedSource(path, "checkpoint", (path,))
    raise _bad(src, f"not a recognised layout; expected {_WHAT}")


def _json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise UsageError(f"--init-from: {path} is not readable JSON ({e}) (nothing was written)") from None
    if not isinstance(obj, dict):
        raise UsageError(f"--init-from: {path} is not a JSON object (nothing was written)")
    return obj


# ------------------------------------------------------------------------------------------- configs


def _described(folder: Path, layout: str) -> dict[str, Any]:
    """The expert config fields a seed folder states (the network's shape, and what paris.json or ours adds)."""
    if layout == "checkpoint":
        model = _json(folder / "config.json").get("model", {})
        return {k: model[k] for k in (*NETWORK, *DESCRIBED) if k in model}
    if not (folder / DIFFUSERS_CONFIG).is_file():
        raise _bad(folder, f"no {DIFFUSERS_CONFIG} (a diffusers PixArtTransformer2DModel folder has one)")
    d = _json(folder / DIFFUSERS_CONFIG)
    try:
        heads = int(d.get("num_attention_heads", 16))
        fields = {
            "in_channels": int(d.get("in_channels", 4)),
            "sample_size": int(d.get("sample_size", 128)),
            "patch_size": int(d.get("patch_size", 2)),
            "hidden": heads * int(d.get("attention_head_dim", 72)),
            "depth": int(d.get("num_layers", 28)),
            "heads": heads,
            "caption_channels": int(d.get("caption_channels", 4096)),
        }
    except (TypeError, ValueError) as e:
        raise _bad(folder / DIFFUSERS_CONFIG, f"a shape field is not an integer ({e})") from None
    if (folder / PARIS_SIDECAR).is_file():
        side = _json(folder / PARIS_SIDECAR).get("model", {})
        fields.update({k: side[k] for k in DESCRIBED if k in side})
    return fields


def _differences(stated: dict[str, Any], cfg: ExpertConfig) -> list[str]:
    return [f"{k} is {v!r}, the run's has {getattr(cfg, k)!r}" for k, v in stated.items() if getattr(cfg, k) != v]


def infer_expert_preset(source: SeedSource, text_encoder: str | None = None) -> str:
    """The registry preset whose network every expert seed of `source` has (what `init` uses without --preset)."""
    stated = [_described(p, source.layout) for p in source.experts]
    for name, preset in EXPERT_PRESETS.items():
        cfg = dataclasses.replace(preset, text_encoder=text_encoder or preset.text_encoder)
        if not any(_differences(s, cfg) for s in stated):
            return name
    for name, preset in EXPERT_PRESETS.items():  # the shape is a preset's, something it states is not
        cfg = dataclasses.replace(preset, text_encoder=text_encoder or preset.text_encoder)
        if not any(_differences({k: s[k] for k in NETWORK if k in s}, cfg) for s in stated):
            diffs = sorted({d for s in stated for d in _differences(s, cfg)})
            raise _bad(source.path, f"it has the {name} preset's network but {'; '.join(diffs)}")
    shape = ", ".join(f"{k} {stated[0][k]}" for k in NETWORK if k in stated[0])
    raise _bad(
        source.path,
        f"its network ({shape}) is no expert preset's ({', '.join(EXPERT_PRESETS)}); a run's experts are a preset",
    )


# ------------------------------------------------------------------------------------------- checks


def _header_shapes(path: Path) -> dict[str, torch.Tensor]:
    """Tensors with the shapes a safetensors header states (on the meta device: nothing is read or allocated)."""
    return {k: torch.empty(v["shape"], device="meta") for k, v in safetensors_header(path).items()}


def _expert_target(cfg: ExpertConfig, layout: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    model = build_expert(cfg, device="meta")
    return model, (model if layout == "checkpoint" else model.net)


def check_seed(source: SeedSource, experts: int, expert_cfg: ExpertConfig, router_cfg: RouterConfig | None) -> None:
    """Every expert seed (and the router's) against the run's model configs: the config fields and every tensor
    name and shape; one UsageError listing every mismatch of the first bad folder. Reads headers only."""
    if source.layout == "release" and experts > len(source.experts):
        raise _bad(
            source.path,
            f"the release has {len(source.experts)} expert folders (expert_0..expert_{len(source.experts) - 1}) "
            f"but the run has {experts} experts; use --experts {len(source.experts)} or fewer, or seed from one "
            "transformer folder, which seeds every expert",
        )
    used = sorted({source.expert_dir(k) for k in range(experts)})
    try:
        for folder in used:
            problems = _differences(_described(folder, source.layout), expert_cfg)
            if problems:
                raise _bad(
                    folder, f"config does not match the run's {expert_cfg.preset} expert: {'; '.join(problems)}"
                )
            if source.layout != "checkpoint":  # every other diffusers field must be what our network has
                expert_config_from_diffusers(_json(folder / DIFFUSERS_CONFIG), expert_cfg.to_dict(), str(folder))
            weights = folder / ("model.safetensors" if source.layout == "checkpoint" else DIFFUSERS_WEIGHTS)
            if not weights.is_file():
                raise _bad(folder, f"no {weights.name} (only safetensors weights are read)")
            _, target = _expert_target(expert_cfg, source.layout)
            check_tensors(_header_shapes(weights), target.state_dict(), str(weights))
        if source.router is not None and router_cfg is not None:
            _check_router(source.router, router_cfg)
    except CheckpointFormatError as e:
        raise UsageError(f"--init-from: {e} (nothing was written)") from None


def _check_router(folder: Path, cfg: RouterConfig) -> None:
    d = _json(folder / DIFFUSERS_CONFIG) if (folder / DIFFUSERS_CONFIG).is_file() else {}
    k = d.get("num_experts")
    if k is not None and k != cfg.num_experts:
        raise _bad(
            folder,
            f"the router classifies {k} experts but the run has {cfg.num_experts}; use --experts {k}, "
            "or seed the experts only from a copy of the folder without router/",
        )
    mine = {f.name for f in dataclasses.fields(RouterConfig)} - {"preset", "num_experts"}
    problems = [
        f"{f} is {d[f]!r}, the run's has {getattr(cfg, f)!r}" for f in sorted(mine & set(d)) if d[f] != getattr(cfg, f)
    ]
    if problems:
        raise _bad(folder, f"config does not match the run's router ({cfg.preset}): {'; '.join(problems)}")
    if not (folder / ROUTER_WEIGHTS).is_file():
        raise _bad(folder, f"no {ROUTER_WEIGHTS} (the router's safetensors weights)")
    check_tensors(_header_shapes(folder / ROUTER_WEIGHTS), build_router(cfg, device="meta").state_dict(), str(folder))


# ------------------------------------------------------------------------------------------- weights


def seed_weights(folder: Path, layout: str, kind: str, cfg: ExpertConfig | RouterConfig, out: Path) -> Path:
    """Write a checked seed folder's weights as the format's `model.safetensors` (what `save_checkpoint` writes
    for the run's model: keys, dtypes and layout), at `out`; loading is strict, so a file that changed since
    `check_seed` is refused."""
    model = build_expert(cfg) if kind == "expert" else build_router(cfg)
    target = model.net if kind == "expert" and layout != "checkpoint" else model
    if kind == "router":
        name = ROUTER_WEIGHTS
    else:
        name = "model.safetensors" if layout == "checkpoint" else DIFFUSERS_WEIGHTS
    weights = load_weights(folder / name)
    try:
        check_tensors(weights, target.state_dict(), str(folder / name))
        target.load_state_dict(weights, strict=True)
    except CheckpointFormatError as e:
        raise UsageError(f"--init-from: {e} (nothing was written)") from None
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".seed-") as tmp:
        ckpt = save_checkpoint(Path(tmp) / "ckpt", model, {"kind": kind, "model": cfg.to_dict()})
        CheckpointFolder(ckpt).weights.replace(out)
    return out


def start_checkpoint(
    weights: Path, out: Path, kind: str, model_config: dict[str, Any], lr: float, weight_decay: float
) -> Path:
    """A checkpoint folder at step 0 whose model and EMA are the seed `weights` and whose AdamW state is fresh:
    what `setup_training(..., resume_from=out)` continues as if it had built the model from the seed. The
    optimizer is AdamW(lr, weight_decay) like setup_training's own; tests/checkpoint/test_seed.py holds them equal.
    """
    model = build_model(kind, model_config)
    state = load_weights(weights)
    check_tensors(state, model.state_dict(), str(weights))
    model.load_state_dict(state, strict=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_state = {"step": 0, "samples_seen": 0, "model": model.state_dict(), "optimizer": opt.state_dict()}
    return save_checkpoint(out, model, {"kind": kind, "model": model_config, "step": 0}, train_state)
