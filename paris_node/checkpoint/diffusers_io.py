"""diffusers in and out: an expert as a `PixArtTransformer2DModel` folder, a diffusers folder as an expert.

Export writes what `PixArtTransformer2DModel.from_pretrained(DIR)` loads with strict keys: diffusers' own
`save_pretrained` of the expert's network (`config.json` + `diffusion_pytorch_model.safetensors`), plus
`paris.json` with what diffusers' config cannot say (text encoder, text length, latent space, prediction),
which diffusers ignores. A router exports as `config.json` (its own config) + `pytorch_model.safetensors`.

Import reads such a folder (ours, or any diffusers PixArt transformer) and, for the Paris release layout,
`expert_N/` + `router/`. Every problem is listed at once: config fields this expert cannot represent, and
missing, unexpected and mis-shaped tensors. Nothing is written unless everything matches; the target must
not exist. What of the Paris layout was checked against real files: nothing (none are available here); the
folder names and the diffusers files follow the release's published description, and the router's key
names are not public, so a real release router will most likely be refused with its mismatches listed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from paris_node.checkpoint.format import CheckpointFolder, CheckpointFormatError
from paris_node.checkpoint.io import load_model, load_weights, save_checkpoint
from paris_node.fsutil import atomic_replace_dir, atomic_write, staging_dir
from paris_node.models.config import ExpertConfig, RouterConfig
from paris_node.models.factory import build_expert, build_router

DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"
DIFFUSERS_CONFIG = "config.json"
PARIS_SIDECAR = "paris.json"
ROUTER_WEIGHTS = "pytorch_model.safetensors"
PIXART_CLASS = "PixArtTransformer2DModel"

# What an imported expert's config needs besides the network shape (diffusers' config does not hold it).
DEFAULT_EXTRAS = {"max_text_len": 77, "text_encoder": "clip:openai/clip-vit-large-patch14", "latent": "sd-vae"}


def _fresh_target(out: Path) -> None:
    if out.exists():
        raise CheckpointFormatError(f"{out} already exists; choose a new folder (nothing was written)")


# ------------------------------------------------------------------------------------------- export


def export_diffusers(src: str | Path, out: str | Path) -> Path:
    """Export the checkpoint folder `src` (expert or router) as a diffusers-style folder `out`."""
    src, out = Path(src), Path(out)
    _fresh_target(out)
    model, config = load_model(src)  # strict, checked
    tmp = staging_dir(out)
    try:
        if config["kind"] == "expert":
            model.net.save_pretrained(tmp, safe_serialization=True)
            sidecar = {"kind": "expert", "model": config["model"]}
        else:
            weights = {k: v.contiguous() for k, v in model.state_dict().items()}
            from safetensors.torch import save_file

            save_file(weights, str(tmp / ROUTER_WEIGHTS), metadata={"format": "pt"})
            atomic_write(tmp / DIFFUSERS_CONFIG, json.dumps({"kind": "router", **config["model"]}, indent=2))
            sidecar = {"kind": "router", "model": config["model"]}
        atomic_write(tmp / PARIS_SIDECAR, json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        return atomic_replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------------------- import


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointFormatError(f"{path}: not a readable JSON config ({e})") from e
    if not isinstance(obj, dict):
        raise CheckpointFormatError(f"{path}: not a JSON object")
    return obj


def expert_config_from_diffusers(d: dict[str, Any], extras: dict[str, Any], name: str) -> ExpertConfig:
    """The ExpertConfig a diffusers PixArt config describes; CheckpointFormatError listing every field that
    this expert (flow-matching, no learned sigma, no micro-conditions) cannot represent."""
    problems = []
    if d.get("_class_name", PIXART_CLASS) != PIXART_CLASS:
        problems.append(f"_class_name is {d.get('_class_name')!r}, not {PIXART_CLASS}")
    heads, head_dim = int(d.get("num_attention_heads", 16)), int(d.get("attention_head_dim", 72))
    hidden = heads * head_dim
    in_ch = int(d.get("in_channels", 4))
    cfg = ExpertConfig(
        preset=str(extras.get("preset", "imported")),
        in_channels=in_ch,
        sample_size=int(d.get("sample_size", 128)),
        patch_size=int(d.get("patch_size", 2)),
        hidden=hidden,
        depth=int(d.get("num_layers", 28)),
        heads=heads,
        caption_channels=int(d.get("caption_channels", 4096)),
        max_text_len=int(extras["max_text_len"]),
        text_encoder=str(extras["text_encoder"]),
        latent=str(extras["latent"]),
        prediction=str(extras.get("prediction", "velocity")),
    )
    # every field of the source config must be what our expert's network has (same maths, not only same shapes):
    # e.g. out_channels 8 is PixArt-alpha's learned sigma, which a flow-matching expert does not predict
    ours = dict(build_expert(cfg, device="meta").net.config)
    if d.get("use_additional_conditions") is None:  # diffusers' default: on at sample_size 128
        d = {**d, "use_additional_conditions": cfg.sample_size == 128}
    for key, got in sorted(d.items()):
        if key.startswith("_") or key not in ours:
            continue
        want = ours[key]
        if got != want and not (isinstance(want, tuple) and list(want) == got):
            problems.append(f"{key} is {got!r}, this expert has {want!r}")
    if problems:
        raise CheckpointFormatError(f"{name}: config cannot be imported: " + "; ".join(problems))
    return cfg


def check_tensors(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], name: str) -> None:
    """Strict key and shape match; the error lists every missing, unexpected and mis-shaped tensor."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    common = sorted(set(got) & set(want))
    shapes = [
        f"{k} {list(got[k].shape)} (expected {list(want[k].shape)})" for k in common if got[k].shape != want[k].shape
    ]
    problems = [f"missing {', '.join(missing)}"] if missing else []
    problems += [f"unexpected {', '.join(extra)}"] if extra else []
    problems += [f"mis-shaped {', '.join(shapes)}"] if shapes else []
    if problems:
        raise CheckpointFormatError(f"{name}: tensors do not match the model: " + "; ".join(problems))


def import_expert(src: str | Path, out: str | Path, **extras: Any) -> Path:
    """A diffusers PixArt transformer folder -> an expert checkpoint folder `out` (weights + config, no state).

    `extras` (text_encoder, max_text_len, latent, prediction, preset) fill what diffusers' config lacks; a
    `paris.json` written by `export_diffusers` supplies them, so our own exports round-trip exactly.
    """
    src, out = Path(src), Path(out)
    _fresh_target(out)
    d = _read_json(src / DIFFUSERS_CONFIG)
    side = _read_json(src / PARIS_SIDECAR)["model"] if (src / PARIS_SIDECAR).exists() else {}
    merged = {**DEFAULT_EXTRAS, **{k: v for k, v in side.items() if k in (*DEFAULT_EXTRAS, "prediction")}}
    merged.update({k: v for k, v in extras.items() if v is not None})
    if "preset" not in merged and "preset" in side:
        merged["preset"] = side["preset"]
    cfg = expert_config_from_diffusers(d, merged, str(src))
    if not (src / DIFFUSERS_WEIGHTS).is_file():
        raise CheckpointFormatError(f"{src}: no {DIFFUSERS_WEIGHTS} (only safetensors weights are imported)")
    weights = load_weights(src / DIFFUSERS_WEIGHTS)
    model = build_expert(cfg)
    check_tensors(weights, model.net.state_dict(), str(src / DIFFUSERS_WEIGHTS))
    model.net.load_state_dict(weights, strict=True)
    config = {"kind": "expert", "model": cfg.to_dict(), "imported_from": str(src)}
    return save_checkpoint(out, model, config)


def import_router(src: str | Path, out: str | Path, num_experts: int | None = None) -> Path:
    """A router folder (ours: `config.json` + `pytorch_model.safetensors`) -> a router checkpoint folder."""
    src, out = Path(src), Path(out)
    _fresh_target(out)
    d = _read_json(src / DIFFUSERS_CONFIG)
    d = {k: v for k, v in d.items() if k != "kind"}
    if num_experts is not None:
        d["num_experts"] = num_experts
    try:
        cfg = RouterConfig.from_dict(d)
    except TypeError as e:
        raise CheckpointFormatError(f"{src / DIFFUSERS_CONFIG}: not a router config this node knows ({e})") from e
    weights = load_weights(src / ROUTER_WEIGHTS)
    model = build_router(cfg)
    check_tensors(weights, model.state_dict(), str(src / ROUTER_WEIGHTS))
    model.load_state_dict(weights, strict=True)
    return save_checkpoint(out, model, {"kind": "router", "model": cfg.to_dict(), "imported_from": str(src)})


def import_release(src: str | Path, out: str | Path, **extras: Any) -> dict[str, Path]:
    """A Paris-release-layout folder (`expert_0..N/`, `router/`) -> `out/expert-N/`, `out/router/`.

    Every part is checked before anything is written; `out` appears whole or not at all.
    """
    src, out = Path(src), Path(out)
    _fresh_target(out)
    experts = sorted((p for p in src.glob("expert_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    if not experts:
        raise CheckpointFormatError(f"{src}: no expert_N/ folders (the Paris release layout)")
    tmp = staging_dir(out)
    try:
        done = {}
        for p in experts:
            k = int(p.name.split("_")[1])
            done[f"expert/{k}"] = import_expert(p, tmp / f"expert-{k}", **extras)
        if (src / "router").is_dir():
            done["router"] = import_router(src / "router", tmp / "router", num_experts=len(experts))
        atomic_replace_dir(tmp, out)
        return {job: out / path.name for job, path in done.items()}
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def is_checkpoint(path: str | Path) -> bool:
    return CheckpointFolder.at(path).config.is_file() and CheckpointFolder.at(path).weights.is_file()
