"""`paris-node init` and `paris-node data preview | show` end to end on a small run."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from paris_node.cli import main

SMALL = ["--dataset", "shapes:64", "--experts", "2", "--preset", "tiny", "--router-preset", "tiny"]


def test_init_preview_show(tmp_path):
    runner = CliRunner()
    home = ["--home", str(tmp_path)]
    res = runner.invoke(main, [*home, "init", *SMALL, "--publishers", "open", "--steps", "10"])
    assert res.exit_code == 0, res.output
    run_id = res.stdout.strip().splitlines()[-1]
    assert run_id.startswith("bafkrei")
    out = tmp_path / "clusters.png"
    res = runner.invoke(main, [*home, "data", "preview", run_id, "-o", str(out), "--per-row", "4"])
    assert res.exit_code == 0, res.output
    with Image.open(out) as img:
        assert img.format == "PNG" and img.height >= 2 * 64  # one row per expert
    shown = json.loads(runner.invoke(main, [*home, "data", "show", run_id]).stdout)
    assert shown["run_id"] == run_id and shown["payload"]["experts"] == 2
    assert shown["payload"]["spec"]["training"]["steps"] == 10 and shown["payload"]["name"] == "shapes"


def test_init_bad_input_is_one_clear_line(tmp_path):
    res = CliRunner().invoke(main, ["--home", str(tmp_path), "init", *SMALL, "--samples", "3"])
    assert res.exit_code == 2 and "error:" in res.output and "too few" in res.output  # usage errors exit 2
    res = CliRunner().invoke(main, ["--home", str(tmp_path), "data", "preview", "bafkreiabc"])
    assert res.exit_code == 2 and "error:" in res.output
