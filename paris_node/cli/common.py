"""Shared CLI plumbing: the state object, the global options every command accepts, and input checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import click

from paris_node.errors import UsageError
from paris_node.home import Home

LOG_LEVELS = ["debug", "info", "warning", "error"]


@dataclass
class CliState:
    home: Home
    log_level: str = "info"


def set_log_level(level: str) -> None:
    logging.getLogger().setLevel(getattr(logging, level.upper()))


def _set_home(ctx: click.Context, _param, value):
    if value is not None:
        ctx.ensure_object(CliState).home = Home.resolve(value)
    return value


def _set_log_level(ctx: click.Context, _param, value):
    if value is not None:
        ctx.ensure_object(CliState).log_level = value
        set_log_level(value)
    return value


# a subcommand's `--home`, one spec for both ways it gets one: `home_option`, or add_global_options when it has none
_HOME_OPTION: dict[str, Any] = {
    "type": click.Path(file_okay=False),
    "default": None,
    "expose_value": False,
    "callback": _set_home,
    "is_eager": True,
    "help": "Node home (overrides the global --home).",
}


def home_option(f):
    """`--home` on a subcommand too (`paris-node fetch --home X`), overriding the group's."""
    return click.option("--home", **_HOME_OPTION)(f)


def _global_params() -> list[click.Option]:
    return [
        click.Option(["--home"], **_HOME_OPTION),
        click.Option(
            ["--log-level"],
            type=click.Choice(LOG_LEVELS),
            default=None,
            expose_value=False,
            callback=_set_log_level,
            is_eager=True,
            help="Log verbosity (overrides the global --log-level).",
        ),
    ]


def add_global_options(cmd: click.Command) -> None:
    """Give `cmd` (and, for a group, every subcommand) `--home` and `--log-level` unless it has them."""
    if getattr(cmd, "_paris_globals", False):
        return
    have = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    cmd.params.extend(p for p in _global_params() if p.opts[0] not in have)
    cmd._paris_globals = True
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            add_global_options(sub)


def check_device(device: str, flag: str = "--device", allow_auto: bool = False) -> str:
    """`device` if this machine's torch can use it; else a UsageError naming what is available."""
    import re

    choices = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
    if device == "auto" and allow_auto or device == "cpu":
        return device
    m = re.fullmatch(r"cuda(?::(\d+))?", device)
    if not m:
        raise UsageError(f"{flag} {device!r} is not a device: use {choices}")
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"{flag} {device}: this torch build sees no CUDA GPU; use {flag} cpu")
    n = torch.cuda.device_count()
    if m.group(1) is not None and int(m.group(1)) >= n:
        raise UsageError(f"{flag} {device}: this machine has {n} CUDA device(s) (cuda:0..cuda:{n - 1})")
    return device


def say(message: str) -> None:
    """A note for the person at the terminal (stderr, so stdout stays parseable)."""
    click.echo(message, err=True)


def not_built(name: str, issue: str) -> None:
    """Say plainly that a command is not built yet and exit 2."""
    click.echo(f"paris-node {name}: not built yet ({issue}).", err=True)
    raise SystemExit(2)
