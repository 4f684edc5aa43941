"""Checkpoints: one format (format.py: names, roles, manifest table, strict safetensors checks) and its
reading and writing (io.py). Trainer, publisher, fetcher, cache and sampler all go through here."""

from paris_node.checkpoint.format import (
    CONFIG,
    FOR_SAMPLING,
    FOR_TRAINING,
    FORMAT_VERSION,
    ROLES,
    SAMPLE,
    STATE_JSON,
    STATE_TENSORS,
    WEIGHTS,
    CheckpointFolder,
    CheckpointFormatError,
    FileEntry,
    manifest_entries,
    safetensors_header,
    sha256_file,
)
from paris_node.checkpoint.io import load_model, load_training_state, load_weights, read_config, save_checkpoint

__all__ = [
    "CONFIG",
    "FORMAT_VERSION",
    "FOR_SAMPLING",
    "FOR_TRAINING",
    "ROLES",
    "SAMPLE",
    "STATE_JSON",
    "STATE_TENSORS",
    "WEIGHTS",
    "CheckpointFolder",
    "CheckpointFormatError",
    "FileEntry",
    "load_model",
    "load_training_state",
    "load_weights",
    "manifest_entries",
    "read_config",
    "safetensors_header",
    "save_checkpoint",
    "sha256_file",
]
