"""The global options, one table for the root command and every subcommand, and the
click helpers commands share (-d DEV, usage errors).

They are accepted before or after the command name (`xdphints -j show eth0` and
`xdphints show eth0 -j`), as bpftool takes `-j`/`-p` anywhere. Each sets a field of the
App object as soon as it is parsed (eager), so even an error in a later argument is
reported the way these options ask for.
"""

from __future__ import annotations

import os
from typing import Optional

import click

from xdphints_cli.cli.app import App


def _set(field: str, *more: str):
    def callback(ctx: click.Context, _param, value: bool) -> None:
        if value:
            app = ctx.ensure_object(App)
            for name in (field, *more):
                setattr(app, name, True)
    return callback


def _enter_netns(ctx: click.Context, _param, names) -> None:
    """Enter the namespace once: `-n NS` may come before the command, after it, or
    several times when all name the same namespace (two names are a usage error, as
    `ip` refuses a repeated argument)."""
    for name in names:  # -n '' is an error (netns.enter says so), not "no namespace"
        enter_netns(ctx, name)


def enter_netns(ctx: click.Context, name: str) -> None:
    app = ctx.ensure_object(App)
    if app.netns is not None:
        if app.netns != name:
            raise click.UsageError(f"two network namespaces given: -n {app.netns} and -n {name}")
        return
    from xdphints_cli.process import netns

    netns.enter(name)
    app.netns = name


def netns_in(command: click.Command, ctx: click.Context, args) -> list:
    """The -n names in `args`, as `command` will parse them, found without running any
    callback; [] when there are none or the words do not parse."""
    parser = command.make_parser(click.Context(command, parent=ctx, resilient_parsing=True))
    parser.ignore_unknown_options = True
    try:
        opts = parser.parse_args(list(args))[0]
    except click.UsageError:
        return []
    return list(opts.get("netns") or ())


def complete_netns(ctx, param, incomplete: str):
    try:
        return [n for n in sorted(os.listdir("/run/netns")) if n.startswith(incomplete)]
    except OSError:
        return []


# (option strings, keyword arguments): the one list of global options
GLOBAL_OPTIONS = (
    (("-j", "--json"), dict(is_flag=True, callback=_set("json"), help="JSON output on stdout.")),
    (("-p", "--pretty"), dict(is_flag=True, callback=_set("json", "pretty"),
                              help="Indented JSON (implies --json).")),
    (("-n", "--netns"), dict(metavar="NAME", multiple=True, callback=_enter_netns, shell_complete=complete_netns,
                             help="Run inside the named network namespace (like ip -n).")),
    (("--no-color",), dict(is_flag=True, callback=_set("no_color"),
                           help="No colour (NO_COLOR in the environment does the same).")),
    (("--debug",), dict(is_flag=True, callback=_set("debug"),
                        help="Add a traceback to errors (the exit code stays the same).")),
)


def global_options(f=None, *, netns: bool = True):
    """Add the global options to a command (they set App fields; the command body gets
    none). `netns=False` leaves -n out, for a command that makes its own namespaces."""
    def add(f):
        for opts, kw in reversed(GLOBAL_OPTIONS):
            if netns or opts[0] != "-n":
                f = click.option(*opts, expose_value=False, is_eager=True, **kw)(f)
        return f
    return add(f) if f is not None else add


# the words that ask for JSON (-p implies it); in a cluster of short flags, the letters
JSON_WORDS = ("-j", "--json", "-p", "--pretty")


def json_asked(command: click.Command, argv, resolve) -> bool:
    """Whether a -j/--json/-p/--pretty stands on the line as that flag, wherever it is:
    found before click parses anything, so that an error met before the flag's own
    callback runs (a bad -n before the command, an unknown option) is a JSON error too.

    Words are read as click reads them: nothing after `--`, no option's value (`-d -j`
    names a device -j, `-n -j` a namespace), `--opt=value`, clusters of short flags
    (`-jp`, `-dDEV`). `command` is the root group; the first word that is no option is
    the command, `resolve(word)` its click command (a device given as the command:
    show's), or None when there is none to read the rest with (the global options
    still are)."""
    if not any(w.startswith("-") and ("j" in w or "p" in w) for w in argv):
        return False        # the common case, without importing a command module
    valued, group = _valued_options(command), True
    words = iter(argv)
    for word in words:
        if word == "--":
            return False
        if not word.startswith("-") or word == "-":
            if group:       # the command (or the device standing for `show DEV`)
                group = False
                sub = resolve(word)
                valued = _valued_options(sub) if sub is not None else _valued_options(command)
            continue
        if word.startswith("--"):
            name, eq, _ = word.partition("=")
            if name in ("--json", "--pretty") and not eq:
                return True
            if name in valued and not eq:
                next(words, None)
            continue
        for i, letter in enumerate(word[1:], 1):
            if f"-{letter}" in valued:
                if i == len(word) - 1:      # the value is the next word
                    next(words, None)
                break                       # the rest of the word is the value
            if letter in "jp":
                return True
    return False


def _valued_options(command: click.Command) -> set:
    """The option strings of `command` that take a value (the next word, or after '=')."""
    out = set()
    for p in command.params:
        if isinstance(p, click.Option) and not p.is_flag and not p.count:
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out


def complete_devices(ctx, param, incomplete: str):
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def check_device_name(ctx, param, value: Optional[str]) -> Optional[str]:
    """An empty DEV is a usage error here, before any command could take '' for "not given"."""
    if value == "":
        raise click.BadParameter("an interface name cannot be empty", ctx=ctx, param=param)
    return value


def _one_device(ctx, param, values) -> Optional[str]:
    """-d given once, or several times with the same name (two names: a usage error)."""
    names = list(dict.fromkeys(check_device_name(ctx, param, v) for v in values))
    if len(names) > 1:
        raise click.UsageError(f"two devices given: -d {names[0]} and -d {names[1]}")
    return names[0] if names else None


def dev_option(f):
    return click.option("-d", "--dev", metavar="DEV", multiple=True, shell_complete=complete_devices,
                        callback=_one_device,
                        help="Device name (default: $XDPHINTS_DEV, else the only non-loopback interface that is up).")(f)


def nonempty(ctx, param, value):
    """An option's value, refused when it is the empty string: '' must never pass for
    "not given" (--struct '' for the default mode, --rx-filter '' for all)."""
    if value == "":
        raise click.BadParameter("cannot be empty", ctx=ctx, param=param)
    return value


class AsciiNumber(click.ParamType):
    """A click number type that refuses what int() and float() take but no tool of this
    kind does: the digits of other scripts (int("٣") is 3), "_" between digits and
    surrounding white space. The rest is the inner type's (and its messages)."""

    def __init__(self, inner: click.ParamType):
        self.inner = inner
        self.name = inner.name

    def convert(self, value, param, ctx):
        if isinstance(value, str) and (not value.isascii() or "_" in value or value != value.strip()):
            self.fail(f"'{value}' is not a number in ASCII digits", param, ctx)
        return self.inner.convert(value, param, ctx)


INT = AsciiNumber(click.INT)
FLOAT = AsciiNumber(click.FLOAT)


def usage_error(message: str) -> click.UsageError:
    """A usage error (exit 2) raised from inside a command body."""
    return click.UsageError(message)
