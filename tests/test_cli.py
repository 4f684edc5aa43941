import json

from click.testing import CliRunner

from paris_node.cli import main


def test_help_lists_user_commands():
    out = CliRunner().invoke(main, ["--help"]).output
    for cmd in ("start", "fetch", "sample", "status", "id"):
        assert cmd in out


def test_id_is_stable_and_uses_home(tmp_path):
    runner = CliRunner()
    first = runner.invoke(main, ["--home", str(tmp_path), "id", "--json"])
    assert first.exit_code == 0, first.output
    info = json.loads(first.output)
    assert info["node_id"].startswith("z6Mk") and info["peer_id"].startswith("12D3KooW")
    again = json.loads(runner.invoke(main, ["id", "--json", "--home", str(tmp_path)]).output)
    assert again == info
    env = json.loads(runner.invoke(main, ["id", "--json"], env={"PARIS_NODE_HOME": str(tmp_path)}).output)
    assert env == info


def test_bad_key_is_a_clear_error(tmp_path):
    (tmp_path / "identity.key").write_bytes(b"junk")
    (tmp_path / "identity.key").chmod(0o600)
    res = CliRunner().invoke(main, ["--home", str(tmp_path), "id"])
    assert res.exit_code == 1
    assert "not an Ed25519 libp2p private key" in res.output
