"""The checkpoint format (version 2): file names, roles, the manifest's file table, strict safetensors checks.

A checkpoint is a folder. Each file has one role, and the role decides who needs it:

| role      | files                                                   | fetched by                 |
|-----------|---------------------------------------------------------|----------------------------|
| `weights` | `model.safetensors` (the EMA weights: what is sampled)   | everyone                   |
| `config`  | `config.json` (`kind`, `model` config, training config)  | everyone                   |
| `state`   | `training_state.safetensors` + `training_state.json`     | takeover, mirroring        |
| `sample`  | `sample.png` (optional preview image)                    | dashboards (on request)    |

`weights` and `config` are required and appear once; `state` is both of its files or neither; `sample` is
optional. The signed manifest (records.CheckpointPayload, `format` 2) lists every file as
`{cid, size, sha256, role}`; `manifest_entries` is the one strict reader of that table. Pure: no torch, no
network; reading a file's header is the only I/O here.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paris_node.errors import ParisError

FORMAT_VERSION = 2

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
SAMPLE = "sample.png"

ROLE_WEIGHTS, ROLE_CONFIG, ROLE_STATE, ROLE_SAMPLE = "weights", "config", "state", "sample"
ROLES = (ROLE_WEIGHTS, ROLE_CONFIG, ROLE_STATE, ROLE_SAMPLE)
FILES_OF_ROLE: dict[str, tuple[str, ...]] = {
    ROLE_WEIGHTS: (WEIGHTS,),
    ROLE_CONFIG: (CONFIG,),
    ROLE_STATE: (STATE_TENSORS, STATE_JSON),
    ROLE_SAMPLE: (SAMPLE,),
}
ROLE_OF_FILE: dict[str, str] = {name: role for role, names in FILES_OF_ROLE.items() for name in names}
REQUIRED_ROLES = frozenset({ROLE_WEIGHTS, ROLE_CONFIG})

# What each use downloads: sampling needs the model only; resuming training needs its exact state too.
FOR_SAMPLING = frozenset({ROLE_WEIGHTS, ROLE_CONFIG})
FOR_TRAINING = frozenset({ROLE_WEIGHTS, ROLE_CONFIG, ROLE_STATE})

REPAIR_HINT = "run `paris-node verify --repair` to restore it from the content store or the swarm"

# safetensors dtypes and their sizes in bytes (the format's full list as of safetensors 0.4)
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
_MAX_HEADER = 100 << 20  # safetensors' own limit


class CheckpointFormatError(ParisError, ValueError):
    """A checkpoint folder or manifest does not follow the format; the message names the file and the fix.

    A failure (exit 1), not bad input: the bytes are damaged or foreign, whoever pointed at them."""


# ------------------------------------------------------------------------------------------- hashing


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint as its signed manifest lists it."""

    name: str
    role: str
    cid: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"cid": self.cid, "size": self.size, "sha256": self.sha256, "role": self.role}


def manifest_entries(files: Mapping[str, Mapping[str, Any]]) -> dict[str, FileEntry]:
    """The manifest's file table, strictly checked: known names, each with its role, required roles present,
    no role duplicated, `state` complete. Raises CheckpointFormatError naming every problem at once."""
    problems: list[str] = []
    entries: dict[str, FileEntry] = {}
    for name, meta in sorted(files.items()):
        role = meta.get("role") if isinstance(meta, Mapping) else None
        if role is None:
            problems.append(f"{name} has no role")
            continue
        if role not in ROLES:
            problems.append(f"{name} has an unknown role {role!r} (roles: {', '.join(ROLES)})")
            continue
        if ROLE_OF_FILE.get(name) != role:
            problems.append(
                f"{name} cannot have role {role!r} (a {role} file is named {' or '.join(FILES_OF_ROLE[role])})"
            )
            continue
        try:
            entries[name] = FileEntry(name, role, str(meta["cid"]), int(meta["size"]), str(meta["sha256"]))
        except (KeyError, TypeError, ValueError):
            problems.append(f"{name} lacks cid, size or sha256")
    have = {e.role for e in entries.values()}
    problems += [f"no {role} file" for role in sorted(REQUIRED_ROLES - have)]
    state = [n for n in FILES_OF_ROLE[ROLE_STATE] if n in entries]
    if state and len(state) != len(FILES_OF_ROLE[ROLE_STATE]):
        problems.append(f"state is incomplete (has {state[0]} only)")
    if problems:
        raise CheckpointFormatError("checkpoint manifest: " + "; ".join(problems))
    return entries


def select(entries: Mapping[str, FileEntry], roles: Iterable[str]) -> dict[str, FileEntry]:
    """The entries whose role is in `roles` (what a use downloads)."""
    wanted = set(roles)
    return {n: e for n, e in entries.items() if e.role in wanted}


# ------------------------------------------------------------------------------------------- a folder


@dataclass(frozen=True)
class CheckpointFolder:
    """A typed view of a checkpoint folder on disk (nothing is read until asked)."""

    path: Path

    @classmethod
    def at(cls, path: str | os.PathLike) -> CheckpointFolder:
        return cls(Path(path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def state_tensors(self) -> Path:
        return self.path / STATE_TENSORS

    @property
    def state_json(self) -> Path:
        return self.path / STATE_JSON

    @property
    def sample(self) -> Path:
        return self.path / SAMPLE

    @property
    def has_state(self) -> bool:
        return self.state_json.is_file()

    def files(self) -> dict[str, Path]:
        """The format's files present here, name -> path (hidden and foreign files are not part of it)."""
        return {n: self.path / n for n in ROLE_OF_FILE if (self.path / n).is_file()}

    def roles(self) -> set[str]:
        return {ROLE_OF_FILE[n] for n in self.files()}

    def read_config(self) -> dict[str, Any]:
        try:
            config = json.loads(self.config.read_text())
        except (OSError, ValueError, RecursionError) as e:
            raise CheckpointFormatError(f"{self.config}: not a readable checkpoint config ({e})") from e
        if not isinstance(config, dict):
            raise CheckpointFormatError(f"{self.config}: not a JSON object")
        return config


# ------------------------------------------------------------------------------------------- safetensors


def safetensors_header(path: str | os.PathLike, expected_size: int | None = None) -> dict[str, dict[str, Any]]:
    """Check a safetensors file without loading it; returns {tensor name: {dtype, shape, data_offsets}}.

    Strict: the header length fits the file, the header is a JSON object, every tensor has a known dtype,
    a shape and offsets whose length matches dtype x shape, the tensors tile the data section exactly (no gap,
    no overlap, nothing after), and the file has `expected_size` bytes when given. Anything else (a pickle,
    garbage, a truncated or flipped file) is a CheckpointFormatError naming the file and the repair command.
    """
    path = Path(path)

    def bad(why: str) -> CheckpointFormatError:
        return CheckpointFormatError(f"{path} is not a valid safetensors file ({why}); {REPAIR_HINT}")

    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise bad(f"{size} bytes, shorter than a header")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise bad(f"header length {n} does not fit the file's {size} bytes")
            raw = f.read(n)
    except OSError as e:
        raise CheckpointFormatError(f"{path}: cannot be read ({e}); {REPAIR_HINT}") from e
    if expected_size is not None and size != expected_size:
        raise bad(f"{size} bytes, the manifest says {expected_size}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise bad(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise bad("header is not a JSON object")
    header.pop("__metadata__", None)
    spans = []
    for name, info in header.items():
        try:
            width = _DTYPE_BYTES[info["dtype"]]
            shape = [int(s) for s in info["shape"]]
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise bad(f"tensor {name!r} has a malformed entry") from None
        count = 1
        for s in shape:
            if s < 0:
                raise bad(f"tensor {name!r} has a negative dimension")
            count *= s
        if not 0 <= start <= end or end - start != count * width:
            raise bad(f"tensor {name!r}: offsets {start}..{end} do not match {info['dtype']} x {shape}")
        spans.append((start, end, name))
    pos = 0
    for start, end, name in sorted(spans):
        if start != pos:
            raise bad(f"tensor {name!r} starts at {start}, expected {pos} (gap or overlap)")
        pos = end
    if 8 + n + pos != size:
        raise bad(f"the tensors end at byte {8 + n + pos} but the file has {size}")
    return header
