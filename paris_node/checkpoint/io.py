"""Writing and loading checkpoint folders (format.py names the files): the `save_pretrained` / `from_pretrained`.

Nothing is pickled, ever: `torch.save`/`torch.load` would execute code from whoever wrote the file. A folder
appears complete or not at all (fsutil.atomic_replace_dir). Loading checks the safetensors header before the
library sees the bytes, then the keys and shapes against the model the config describes (strict).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from paris_node.checkpoint.format import (
    REPAIR_HINT,
    CheckpointFolder,
    CheckpointFormatError,
    safetensors_header,
)
from paris_node.fsutil import atomic_replace_dir, staging_dir
from paris_node.models.factory import build_model

_TENSOR = "__tensor__"


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


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
    directory: str | Path,
    model: nn.Module,
    config: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    sample_png: bytes | None = None,
) -> Path:
    """Atomically write a checkpoint folder; `model` is what gets published (the EMA model in training).

    `config` must hold `kind` ("expert"/"router") and `model` (the model config dict) so `load_model` can rebuild
    it; anything else (the training config, step) is kept alongside. `train_state` is any nested dict of tensors
    and JSON values (the `state` role); `sample_png` an optional preview image (the `sample` role).
    """
    directory = Path(directory)
    if "kind" not in config or "model" not in config:
        raise CheckpointFormatError("checkpoint config needs 'kind' and 'model' entries")
    tmp = staging_dir(directory)
    folder = CheckpointFolder(tmp)
    try:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(folder.weights), metadata={"format": "pt"})
        folder.config.write_bytes(_json_bytes(config))
        if train_state is not None:
            tensors: dict[str, torch.Tensor] = {}
            skeleton = _split(train_state, "", tensors)
            save_file(tensors, str(folder.state_tensors))
            folder.state_json.write_bytes(_json_bytes(skeleton))
        if sample_png is not None:
            folder.sample.write_bytes(sample_png)
        atomic_replace_dir(tmp, directory)  # fsyncs every file first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    return CheckpointFolder.at(directory).read_config()


def load_weights(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, after `safetensors_header` has checked its layout (typed error if not)."""
    safetensors_header(path)
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError) as e:  # the header check passed, so this is rare: report it the same way
        raise CheckpointFormatError(f"{path} cannot be loaded ({e}); {REPAIR_HINT}") from e


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from `config.json` and load `model.safetensors` (strict: every key and shape)."""
    folder = CheckpointFolder.at(directory)
    config = folder.read_config()
    if "kind" not in config or "model" not in config:
        raise CheckpointFormatError(f"{folder.config} lacks 'kind' or 'model'; {REPAIR_HINT}")
    try:
        model = build_model(config["kind"], config["model"], device="cpu")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointFormatError(f"{folder.config} does not describe a model ({e})") from e
    weights = load_weights(folder.weights)
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        raise CheckpointFormatError(f"{folder.weights} does not match its config.json ({e})") from e
    return model.to(device).eval(), config


def load_training_state(directory: str | Path) -> dict[str, Any]:
    """The `train_state` given to `save_checkpoint`, tensors restored; an error if the checkpoint has none."""
    folder = CheckpointFolder.at(directory)
    if not folder.has_state:
        raise CheckpointFormatError(f"{folder.path} has no training state (it is a published, weights-only copy)")
    try:
        skeleton = json.loads(folder.state_json.read_text())
    except (OSError, ValueError, RecursionError) as e:
        raise CheckpointFormatError(f"{folder.state_json}: not readable JSON ({e}); {REPAIR_HINT}") from e
    tensors = load_weights(folder.state_tensors) if folder.state_tensors.exists() else {}
    return _join(skeleton, tensors)
