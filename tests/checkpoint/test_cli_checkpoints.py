"""`paris-node import` / `export` on the command line: the files, the messages, the exit codes."""

from __future__ import annotations

import torch
from click.testing import CliRunner
from diffusers import PixArtTransformer2DModel
from safetensors.torch import load_file, save_file
from test_diffusers_io import TINY, diffusers_folder, same

from paris_node.cli import main


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_import_then_export_on_the_command_line(tmp_path):
    net = diffusers_folder(tmp_path / "hf")
    home = ["--home", str(tmp_path / "home")]
    extras = ["--text-encoder", TINY.text_encoder, "--max-text-len", str(TINY.max_text_len), "--latent", "pixels"]
    got = cli(*home, "import", str(tmp_path / "hf"), str(tmp_path / "ours"), *extras)
    assert got.exit_code == 0 and "expert:" in got.output
    got = cli(*home, "export", "0", str(tmp_path / "out"), "--from", str(tmp_path / "ours"))
    assert got.exit_code == 0
    assert same(PixArtTransformer2DModel.from_pretrained(tmp_path / "out").state_dict(), net.state_dict())
    again = cli(*home, "export", "0", str(tmp_path / "out"), "--from", str(tmp_path / "ours"))
    assert again.exit_code == 1 and "already exists" in again.output


def test_a_mismatched_folder_is_one_error_line(tmp_path):
    diffusers_folder(tmp_path / "hf", num_layers=TINY.depth + 1)
    weights = tmp_path / "hf" / "diffusion_pytorch_model.safetensors"
    w = load_file(weights)
    w["extra"] = torch.zeros(1)
    save_file(w, weights)
    got = cli("--home", str(tmp_path / "home"), "import", str(tmp_path / "hf"), str(tmp_path / "ours"))
    assert got.exit_code == 1 and "unexpected extra" in got.output and not (tmp_path / "ours").exists()
