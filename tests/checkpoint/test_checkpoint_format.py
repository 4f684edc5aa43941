"""The checkpoint format: roles in the manifest, strict safetensors checks, the folder view, save/load."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from paris_node.checkpoint import (
    FOR_SAMPLING,
    FOR_TRAINING,
    CheckpointFolder,
    CheckpointFormatError,
    load_model,
    load_training_state,
    manifest_entries,
    safetensors_header,
    save_checkpoint,
)
from paris_node.checkpoint.format import select
from paris_node.models.factory import build_expert
from paris_node.models.presets import expert_preset


def meta(role: str | None, size: int = 3) -> dict:
    m = {"cid": "bafkreiexample", "size": size, "sha256": "0" * 64}
    return m if role is None else {**m, "role": role}


GOOD = {
    "model.safetensors": meta("weights"),
    "config.json": meta("config"),
    "training_state.safetensors": meta("state"),
    "training_state.json": meta("state"),
}


def test_a_full_manifest_gives_every_file_its_role_and_uses_select_by_role():
    entries = manifest_entries({**GOOD, "sample.png": meta("sample")})
    assert {n: e.role for n, e in entries.items()}["sample.png"] == "sample"
    assert set(select(entries, FOR_SAMPLING)) == {"model.safetensors", "config.json"}
    assert set(select(entries, FOR_TRAINING)) == set(GOOD)


@pytest.mark.parametrize(
    ("files", "problem"),
    [
        ({**GOOD, "config.json": meta(None)}, "config.json has no role"),
        ({**GOOD, "config.json": meta("weights")}, "config.json cannot have role 'weights'"),  # weights twice
        ({**GOOD, "model.safetensors": meta("secret")}, "unknown role 'secret'"),
        ({k: v for k, v in GOOD.items() if k != "model.safetensors"}, "no weights file"),
        ({k: v for k, v in GOOD.items() if k != "config.json"}, "no config file"),
        ({k: v for k, v in GOOD.items() if k != "training_state.json"}, "state is incomplete"),
        ({**GOOD, "notes.txt": meta("sample")}, "notes.txt cannot have role 'sample'"),
        ({**GOOD, "model.safetensors": {"role": "weights"}}, "lacks cid, size or sha256"),
    ],
)
def test_a_bad_file_table_is_one_clear_error(files, problem):
    with pytest.raises(CheckpointFormatError, match="checkpoint manifest: ") as e:
        manifest_entries(files)
    assert problem in str(e.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(CheckpointFormatError) as e:
        manifest_entries({"config.json": meta(None)})
    assert "config.json has no role" in str(e.value) and "no weights file" in str(e.value)


# ------------------------------------------------------------------------------------------- safetensors


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(4, dtype=torch.int64)}, path)
    return path


def test_a_good_file_gives_its_header(weights):
    header = safetensors_header(weights, weights.stat().st_size)
    assert header["a"]["shape"] == [2, 3] and header["b"]["dtype"] == "I64"


def _flip(path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-1]), "the tensors end at byte"),  # truncated
        (lambda p: p.write_bytes(p.read_bytes() + b"\0"), "the tensors end at byte"),  # trailing bytes
        (lambda p: _flip(p, 3), "header length"),  # the length prefix
        (lambda p: _flip(p, 9), "header is not JSON"),  # a byte of the JSON header
        (lambda p: p.write_bytes(b"\x80\x04\x95 pickle"), "header length"),  # a pickle
        (lambda p: p.write_bytes(b"1234"), "shorter than a header"),
    ],
)
def test_a_damaged_file_is_a_typed_error_naming_the_repair(weights, damage, why):
    damage(weights)
    with pytest.raises(CheckpointFormatError, match="verify --repair") as e:
        safetensors_header(weights)
    assert why in str(e.value) and str(weights) in str(e.value)


def test_offsets_that_lie_about_the_shape_are_refused(tmp_path):
    header = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "lying.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(CheckpointFormatError, match="do not match F32"):
        safetensors_header(path)


def test_a_size_other_than_the_manifest_s_is_refused(weights):
    with pytest.raises(CheckpointFormatError, match="the manifest says 1"):
        safetensors_header(weights, expected_size=1)


# ------------------------------------------------------------------------------------------- folders


def test_save_writes_every_role_and_load_is_strict(tmp_path):
    cfg = expert_preset("tiny")
    model = build_expert(cfg)
    state = {"step": 3, "opt": {"m": torch.ones(2)}}
    out = save_checkpoint(tmp_path / "c", model, {"kind": "expert", "model": cfg.to_dict()}, state, b"\x89PNG")
    folder = CheckpointFolder.at(out)
    assert folder.roles() == {"weights", "config", "state", "sample"} and folder.has_state
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # no staging folder left
    assert torch.equal(load_training_state(out)["opt"]["m"], torch.ones(2))
    load_model(out)
    _flip(folder.weights, 12)  # inside the JSON header: a clear error, never a raw traceback from the library
    with pytest.raises(CheckpointFormatError, match="verify --repair"):
        load_model(out)


def test_weights_of_another_shape_name_the_mismatch(tmp_path):
    cfg = expert_preset("tiny")
    out = save_checkpoint(tmp_path / "c", build_expert(cfg), {"kind": "expert", "model": cfg.to_dict()})
    tensors = {"not.a.key": torch.zeros(1)}
    save_file(tensors, CheckpointFolder.at(out).weights)
    with pytest.raises(CheckpointFormatError, match="does not match its config.json"):
        load_model(out)


def test_a_config_without_kind_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(CheckpointFormatError, match="'kind' and 'model'"):
        save_checkpoint(tmp_path / "c", build_expert(expert_preset("tiny")), {"model": {}})
    assert list(tmp_path.iterdir()) == []
