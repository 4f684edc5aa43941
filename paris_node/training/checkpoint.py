"""Checkpoint directories: `config.json` + `model.safetensors` (EMA weights: what is published) and, for resume,
`training_state.safetensors` (every tensor: raw weights, optimizer moments) + `training_state.json` (the rest).

Nothing is pickled, ever: `torch.save`/`torch.load` would execute code from whoever wrote the file. A directory
appears complete or not at all: it is written under a temporary sibling name, fsynced, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from paris_node.errors import UsageError
from paris_node.models.presets import build_model

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
_TENSOR = "__tensor__"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Replace every tensor in a nested dict/list by a reference; collect the tensors under dotted keys."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj.detach().to("cpu").contiguous().clone()
        return {_TENSOR: prefix}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{prefix}.{k}" if prefix else str(k), tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def save_checkpoint(
    directory: str | Path, model: nn.Module, config: dict[str, Any], train_state: dict[str, Any] | None = None
) -> Path:
    """Atomically write a checkpoint directory; `model` is what gets published (the EMA model in training).

    `config` must hold `kind` ("expert"/"router") and `model` (the model config dict) so `load_model` can rebuild
    it; anything else (the training config, step) is kept alongside. `train_state` is any nested dict of tensors
    and JSON values; tensors go to safetensors, the skeleton to JSON.
    """
    directory = Path(directory)
    if "kind" not in config or "model" not in config:
        raise UsageError("checkpoint config needs 'kind' and 'model' entries")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        _write_json(tmp / CONFIG, config)
        if train_state is not None:
            tensors: dict[str, torch.Tensor] = {}
            skeleton = _split(train_state, "", tensors)
            save_file(tensors, str(tmp / STATE_TENSORS))
            _write_json(tmp / STATE_JSON, skeleton)
        for f in tmp.iterdir():
            _fsync_file(f)
        _fsync_file(tmp)
        old = None
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(directory, old)
        os.replace(tmp, directory)
        _fsync_file(directory.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: not a readable checkpoint config ({e})") from e


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from `config.json` and load `model.safetensors` (strict: every key must match)."""
    directory = Path(directory)
    config = read_config(directory)
    model = build_model(config["kind"], config["model"], device="cpu")
    weights = load_file(str(directory / WEIGHTS))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise UsageError(f"{directory / WEIGHTS} does not match its config.json ({e})") from e
    return model.to(device).eval(), config


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """The `train_state` given to `save_checkpoint`, tensors restored; UsageError if the checkpoint has none."""
    directory = Path(directory)
    if not (directory / STATE_JSON).exists():
        raise UsageError(f"{directory} has no training state (it is a published, weights-only checkpoint)")
    skeleton = json.loads((directory / STATE_JSON).read_text())
    tensors = load_file(str(directory / STATE_TENSORS)) if (directory / STATE_TENSORS).exists() else {}
    return _join(skeleton, tensors)
