"""The root command: global options, lazy subcommands and the one place errors become exit codes.

Only click is imported here: `--help` and shell completion must stay fast, so
each subcommand's module (and pyroute2, rich) is imported when it runs. The program
starts in entry.py, which hands everything here but the one form it runs without click.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, List, Optional

import click

from xdphints_cli import __version__
from xdphints_cli.cli.app import App, exit_for
from xdphints_cli.cli.options import enter_netns, global_options, json_asked, netns_in
from xdphints_cli.errors import EXIT_USAGE, XdpHintsError

# name -> (module, attribute, one-line help): the help text lives here so that
# `xdphints --help` lists the commands without importing them.
COMMANDS = {
    "show": ("xdphints_cli.cli.show", "show", "Show everything that decides whether XDP hints work on a device."),
    "enable": ("xdphints_cli.cli.enable", "enable", "Turn on the hardware side of hints (timestamping, offloads)."),
    "disable": ("xdphints_cli.cli.enable", "disable", "Turn the hardware side of hints off again."),
    "check": ("xdphints_cli.cli.check", "check", "Exit 0 if hints are usable now, 6 if they need enable, 3 if not supported."),
    "apply": ("xdphints_cli.cli.apply", "apply", "Make the hints a file lists ready on its devices; --watch keeps them so."),
    "btf": ("xdphints_cli.cli.btf", "btf", "Show the hints structs (metadata layouts) in a program's or file's BTF."),
    "dump": ("xdphints_cli.cli.dump", "dump", "Dump packets of one RX queue with their XDP hints (AF_XDP)."),
    "verify": ("xdphints_cli.cli.verify", "verify", "Compare the XDP hints with what the kernel stack holds for the same packets."),
    "monitor": ("xdphints_cli.cli.monitor", "monitor", "Print each event that touches XDP hints (offloads, hwtstamp, XDP, links)."),
    "metrics": ("xdphints_cli.cli.metrics", "metrics", "Write the hints' readiness in the Prometheus text format (node_exporter)."),
    "demo": ("xdphints_cli.cli.demo", "demo", "Show XDP hints end to end on a throwaway veth pair (no NIC needed)."),
    "help": ("xdphints_cli.cli.help", "help_", "Show the help of the tool or of a command."),
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

    def resolve_command(self, ctx: click.Context, args: List[str]):
        """A command name, or a unique prefix of one (`xdphints sh eth0`, as ip and bpftool
        take); a device name means `show DEV` (as `ethtool eth0` does)."""
        word = args[0]
        if word.startswith("-") or ctx.resilient_parsing:
            return super().resolve_command(ctx, args)

        def is_device(name: str) -> bool:
            # in the namespace of a -n after the word (`xdphints sho -n lab`), so enter it now
            prefixed = [n for n in COMMANDS if n.startswith(word)]
            command = self.get_command(ctx, prefixed[0] if len(prefixed) == 1 else "show")
            for ns in netns_in(command, ctx, args[1:]):
                enter_netns(ctx, ns)
            return _is_device(name)

        name = resolve_name(word, is_device)
        if name is None:  # the word is the device
            return "show", self.get_command(ctx, "show"), args
        return name, self.get_command(ctx, name), args[1:]


def resolve_name(word: str, is_device: Callable[[str], bool]) -> Optional[str]:
    """The command `word` names: itself or the one it is a unique prefix of; None when it
    stands for a device (`show DEV`). Raises a usage error for an ambiguous prefix or a
    near miss of a command name that is no device either."""
    if word in COMMANDS:
        return word
    if is_device(word):        # asked only for a word that is no command name
        return None
    matches = [n for n in COMMANDS if n.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.UsageError(f"'{word}' is ambiguous: {', '.join(matches)}")
    import difflib

    near = difflib.get_close_matches(word, list(COMMANDS), n=2)
    if near:
        raise click.UsageError(f"no command or device '{word}'; did you mean "
                               + " or ".join(f"'{n}'" for n in near) + "?")
    return None  # show says "no such device"


def _command_for(word: str) -> Optional[click.Command]:
    """The command a first word stands for, as far as can be told without entering a
    namespace: a command name or a unique prefix of one, else `show` (a device);
    None for an ambiguous prefix."""
    matches = [word] if word in COMMANDS else [n for n in COMMANDS if n.startswith(word)]
    if len(matches) > 1:
        return None
    return cli.get_command(None, matches[0] if matches else "show")


def _is_device(name: str) -> bool:
    """Whether `name` is a device here (in the namespace -n entered, which sysfs may not show)."""
    import socket

    try:
        socket.if_nametoindex(name)
        return True
    except (OSError, ValueError):
        return False


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options
@click.version_option(__version__, "-V", "--version", prog_name="xdphints", message="%(prog)s %(version)s")
def cli() -> None:
    """Inspect and use Linux XDP hints: the RX metadata (hardware timestamp, RX hash,
    VLAN tag) an XDP program reads from the NIC and hands to AF_XDP.

    The options below work before or after COMMAND. `xdphints DEV` is `xdphints show DEV`;
    a unique prefix of a command name works (`xdphints sh eth0`).

    Exit codes: 0 success, 1 failure, 2 usage error, 3 not supported,
    4 permission denied, 5 no such device or object, 6 (check) needs enable,
    7 (verify) hints disagree with the kernel stack.
    """


# click 8.2 and later raise it for a bare `xdphints`; older ones print the help and exit 0
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main(argv: Optional[List[str]] = None) -> None:
    from xdphints_cli.cli import streams

    streams.install()       # done already when started through entry.py
    argv = list(sys.argv[1:] if argv is None else argv)
    app = App()
    try:
        # before click reads a word: -j anywhere makes any error a JSON one, also one
        # a callback meets before -j's own has run (`-n nosuch check -j`)
        app.json = json_asked(cli, argv, _command_for)
        # without standalone mode, click returns ctx.exit()'s code instead of exiting
        rc = cli.main(args=argv, prog_name="xdphints", standalone_mode=False, obj=app)
        sys.stdout.flush()     # a reader that left shows here, not in the interpreter's exit
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        app.fail("interrupted", 130, app.json)
    except _NO_ARGS_IS_HELP as e:  # bare `xdphints`: the help, as a usage error
        sys.stderr.write(e.format_message() + "\n")
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:  # usage errors and bad parameters, with all their lines
        first, _, rest = _as_given(e.format_message(), argv).partition("\n")
        app.fail(first, EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code, app.json,
                 detail=rest.rstrip())
    except (KeyboardInterrupt, XdpHintsError, OSError) as e:
        exit_for(app, e)
    sys.exit(rc if isinstance(rc, int) else 0)


def _as_given(message: str, argv: List[str]) -> str:
    """click quotes a bad value with repr(), which shows a byte that is not UTF-8 as
    \\udcff: such a word is put back as given, so that the output shows it in the one
    text form (\\xff, safe_text.escape) every other message uses."""
    for word in argv:
        if any("\udc80" <= c <= "\udcff" for c in word):
            message = message.replace(repr(word)[1:-1], word)
    return message


if __name__ == "__main__":
    main()
