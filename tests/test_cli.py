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


def _commands(cmd=None, path=()):
    import click

    cmd = cmd or main
    ctx = click.Context(main)
    for name in cmd.list_commands(ctx) if isinstance(cmd, click.Group) else []:
        sub = main.get_command(ctx, name) if cmd is main else cmd.get_command(ctx, name)
        if isinstance(sub, click.Group):
            yield from _commands(sub, (*path, name))
        else:
            yield (*path, name), sub


def test_every_command_and_option_is_documented_and_takes_the_global_options():
    import click

    missing = []
    for path, cmd in _commands():
        if not cmd.help:
            missing.append(" ".join(path))
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"--home", "--log-level"} <= opts, path
        missing += [f"{' '.join(path)} {p.opts[0]}" for p in cmd.params if isinstance(p, click.Option) and not p.help]
    assert not missing, missing


def test_stated_defaults_are_the_defaults_used():
    from paris_node.cli.sample import DEFAULT_STEPS

    out = CliRunner().invoke(main, ["sample", "--help"]).output
    assert f"[default: {DEFAULT_STEPS};" in out and "per preset" not in out
