"""`xdphints help [COMMAND]`: the help of the tool or of one command (a prefix works)."""

from __future__ import annotations

from typing import Optional

import click


@click.command("help")
@click.argument("command", required=False, metavar="[COMMAND]")
@click.pass_context
def help_(ctx: click.Context, command: Optional[str]) -> None:
    """Show the help of the tool, or of COMMAND (the same as COMMAND --help)."""
    from xdphints_cli.cli.main import COMMANDS, resolve_name

    root_ctx = ctx.parent
    group = root_ctx.command
    if command is None:
        click.echo(root_ctx.get_help())
        return
    name = resolve_name(command, lambda word: False)
    if name is None:
        raise click.UsageError(f"no such command '{command}'; the commands are {', '.join(COMMANDS)}")
    cmd = group.get_command(root_ctx, name)
    with cmd.make_context(name, [], parent=root_ctx, resilient_parsing=True) as sub:
        click.echo(sub.get_help())
