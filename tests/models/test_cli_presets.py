import json

from click.testing import CliRunner

from paris_node.cli import main


def test_presets_lists_every_expert_and_router_with_counts():
    out = CliRunner().invoke(main, ["presets"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any(line.split()[:3] == ["expert", "XL/2", "607.0M"] for line in lines)
    assert any(line.split()[:3] == ["router", "B/2", "130.1M"] for line in lines)
    assert sum(line.startswith("expert") for line in lines) == 4
    assert sum(line.startswith("router") for line in lines) == 3


def test_presets_json_has_latent_shapes():
    out = CliRunner().invoke(main, ["presets", "--json"])
    rows = {(r["kind"], r["preset"]): r for r in json.loads(out.output)}
    assert rows["expert", "B/2"]["latent_shape"] == [4, 32, 32] and rows["expert", "B/2"]["image_size"] == 256
    assert rows["expert", "tiny"]["latent_shape"] == [3, 16, 16] and rows["expert", "tiny"]["latent"] == "pixels"
