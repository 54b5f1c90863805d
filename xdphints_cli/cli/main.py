"""The root command: global options, lazy subcommands and the one place errors become exit codes.

Only click is imported here: `--help` and shell completion must stay fast, so
each subcommand's module (and pyroute2, rich) is imported when it runs.
"""

from __future__ import annotations

import importlib
import re
import sys
from typing import List, Optional

import click

from xdphints_cli import __version__
from xdphints_cli.cli.app import App
from xdphints_cli.errors import EXIT_FAILED, EXIT_USAGE, XdpHintsError

# name -> (module, attribute, one-line help): the help text lives here so that
# `xdphints --help` lists the commands without importing them.
COMMANDS = {
    "show": ("xdphints_cli.cli.show", "show", "Show everything that decides whether XDP hints work on a device."),
    "enable": ("xdphints_cli.cli.enable", "enable", "Turn on the hardware side of hints (timestamping, offloads)."),
    "disable": ("xdphints_cli.cli.enable", "disable", "Turn the hardware side of hints off again."),
    "check": ("xdphints_cli.cli.check", "check", "Exit 0 if hints are usable now, 6 if they need enable, 3 if not supported."),
    "btf": ("xdphints_cli.cli.btf", "btf", "Show the hints structs (metadata layouts) in a program's or file's BTF."),
    "dump": ("xdphints_cli.cli.dump", "dump", "Dump packets of one RX queue with their XDP hints (AF_XDP)."),
    "demo": ("xdphints_cli.cli.demo", "demo", "Show XDP hints end to end on a throwaway veth pair (no NIC needed)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> List[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, _, short) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-j", "--json", "json_", is_flag=True, help="JSON output on stdout.")
@click.option("-p", "--pretty", is_flag=True, help="Indented JSON (implies --json).")
@click.option("-n", "--netns", metavar="NAME", help="Run inside the named network namespace (like ip -n).")
@click.option("--no-color", is_flag=True, help="No colour (NO_COLOR in the environment does the same).")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, "--version", prog_name="xdphints", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, json_: bool, pretty: bool, netns: Optional[str], no_color: bool, debug: bool) -> None:
    """Inspect and use Linux XDP hints: the RX metadata (hardware timestamp, RX hash,
    VLAN tag) an XDP program reads from the NIC and hands to AF_XDP.

    Exit codes: 0 success, 1 failure, 2 usage error, 3 not supported,
    4 permission denied, 5 no such device or object, 6 (check) needs enable.
    """
    app = ctx.ensure_object(App)
    app.json = app.json or json_ or pretty
    app.pretty = app.pretty or pretty
    app.no_color = no_color
    app.debug = debug
    if netns is not None:  # -n '' is an error, not "no namespace"
        from xdphints_cli import netns as ns

        ns.enter(netns)
        app.netns = netns


def _wants_json(argv: List[str]) -> bool:
    """Whether a failed command line asked for JSON, so its error comes as JSON too."""
    for arg in argv:
        if arg == "--":
            break
        if arg in ("--json", "--pretty") or re.fullmatch(r"-[jp]+", arg):
            return True
    return False


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    app = App()
    try:
        # without standalone mode, click returns ctx.exit()'s code instead of exiting
        rc = cli.main(args=argv, prog_name="xdphints", standalone_mode=False, obj=app)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        app.fail("interrupted", 130, app.json or _wants_json(argv))
    except click.ClickException as e:  # usage errors and bad parameters
        app.fail(e.format_message().splitlines()[0], EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code,
                 _wants_json(argv))
    except XdpHintsError as e:
        if app.debug:
            raise
        app.fail(str(e), e.exit_code, app.json or _wants_json(argv))
    except BrokenPipeError:
        sys.exit(EXIT_FAILED)
    except OSError as e:
        if app.debug:
            raise
        app.fail(f"{e.strerror or e}", EXIT_FAILED, app.json or _wants_json(argv))
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
